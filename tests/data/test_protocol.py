"""The cold-start protocol (docs/protocol.md): cutoff rule, partitions, filters, tasks, determinism."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
from synthetic import flat, synthetic_raw

from mamo_l2l.core.config import DataConfig
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.features import FeatureEncoders
from mamo_l2l.data.protocol import build_splits, item_is_new, share_cutoff, user_is_new
from mamo_l2l.data.types import SCENARIOS, EncodedDataset


def encoded(raw=None) -> EncodedDataset:
    raw = raw or synthetic_raw()
    return FeatureEncoders.fit(raw, 1).encode(raw)


@pytest.fixture(scope="module")
def data():
    return encoded()


def pairs(tasks, part):
    """Set of (user, item) in the tasks' support ('s'), query ('q') or both ('sq')."""
    out = set()
    for t in tasks:
        if "s" in part:
            out |= {(t.user, int(i)) for i in t.support_items}
        if "q" in part:
            out |= {(t.user, int(i)) for i in t.query_items}
    return out


# ------------------------------------------------------------------ cutoff rule
def test_cutoff_rule_on_a_hand_made_example():
    years = np.array([1990.0, 1995.0, 1995.0, 2000.0, np.nan])
    # ratings per item 4, 2, 1, 2, 1 -> 10 ratings; after 1990: 5 (0.5), after 1995: 2 (0.2), after 2000: 0
    rating_item = np.repeat(np.arange(5), [4, 2, 1, 2, 1])
    assert share_cutoff(years, rating_item, 0.2) == 1995.0
    assert share_cutoff(years, rating_item, 0.19) == 2000.0
    assert share_cutoff(years, rating_item, 0.5) == 1990.0
    assert share_cutoff(years, rating_item, 0.0) == 2000.0
    assert share_cutoff(np.full(5, np.nan), rating_item, 0.2) is None


def test_cutoff_override_and_first_seen(data):
    new, cut = item_is_new(data, DataConfig(item_year_cutoff=1994))
    assert cut["item_year_cutoff"] == 1994.0
    np.testing.assert_array_equal(new, np.nan_to_num(data.item_year, nan=0) > 1994)
    # first_seen: same share rule on each item's first-rating time
    new_t, cut_t = item_is_new(data, DataConfig(item_state="first_seen"))
    first = pd.Series(data.timestamp).groupby(data.rating_item).min().reindex(range(len(data.item_ids)))
    np.testing.assert_array_equal(new_t, (first > cut_t["item_time_cutoff"]).to_numpy())
    share = new_t[data.rating_item].mean()
    assert share <= 0.2
    # the next smaller first-seen time would put more than 20 % of ratings on new items
    smaller = first[first < cut_t["item_time_cutoff"]].max()
    assert (first.to_numpy()[data.rating_item] > smaller).mean() > 0.2
    with pytest.raises(MamoError, match="item_year_cutoff"):
        item_is_new(data, DataConfig(item_state="first_seen", item_year_cutoff=1990))


def test_user_state_share_and_seed(data):
    new = user_is_new(data, DataConfig(), seed=3)
    assert (~new).sum() == round(0.8 * len(data.user_ids))
    assert not np.array_equal(new, user_is_new(data, DataConfig(), seed=4))


# ------------------------------------------------------------------ invariants
@pytest.mark.parametrize("over_max,warm_eval", [("sample", "heldout"), ("drop", "heldout"), ("sample", "seen")])
def test_protocol_invariants(data, over_max, warm_eval):
    cfg = DataConfig(over_max=over_max, warm_eval=warm_eval)
    s = build_splits(data, cfg, seed=11)
    c = s.counts
    user_new = user_is_new(data, cfg, 11)
    item_new, cut = item_is_new(data, cfg)
    assert c["item_year_cutoff"] == cut["item_year_cutoff"] == s.item_year_cutoff

    # partitions cover every rating exactly once, counted independently with pandas
    df = pd.DataFrame({"u": data.rating_user, "i": data.rating_item})
    df["scen"] = [SCENARIOS[int(un) + 2 * int(inew)]
                  for un, inew in zip(user_new[df.u], item_new[df.i])]
    assert sum(c["partition"].values()) == len(data.rating)
    assert c["partition"] == {k: int(v) for k, v in df.scen.value_counts().reindex(SCENARIOS, fill_value=0).items()}
    check_scenario_states(s, user_new, item_new)
    check_task_sizes(s, cfg)
    warm_ok, train_users = check_user_filter(s, df, over_max, user_new)
    check_warm_test(s, warm_ok, train_users, warm_eval)
    check_counts(s, c)


def check_scenario_states(s, user_new, item_new):
    # scenario states of users and items
    for scen in SCENARIOS:
        for t in s.test[scen]:
            assert user_new[t.user] == (scen in ("user_cold", "user_item_cold"))
            items = np.concatenate([t.support_items, t.query_items])
            assert (item_new[items] == (scen in ("item_cold", "user_item_cold"))).all()
    for t in s.train + s.valid:
        assert not user_new[t.user]
        assert not item_new[np.concatenate([t.support_items, t.query_items])].any()



def check_task_sizes(s, cfg):
    # tasks: query = n_query, support >= min_ratings - n_query, sizes within the filter
    for t in s.train + s.valid + [t for scen in SCENARIOS for t in s.test[scen]]:
        assert len(t.query_items) == cfg.n_query
        assert len(t.support_items) >= cfg.min_ratings - cfg.n_query
        n = len(t.support_items) + len(t.query_items)
        assert cfg.min_ratings <= n <= cfg.max_ratings
        assert len(set(t.support_items) | set(t.query_items)) == n   # no rating twice



def check_user_filter(s, df, over_max, user_new):
    # per-scenario user filter: which users get a task, worked out from the raw counts
    per = df.groupby(["scen", "u"]).size()
    for scen in ("user_cold", "item_cold", "user_item_cold"):
        cnt = per.loc[scen] if scen in per.index.get_level_values(0) else pd.Series(dtype=int)
        ok = cnt[(cnt >= 13) & ((cnt <= 100) if over_max == "drop" else True)]
        if scen == "item_cold":   # validation users are held out of every test scenario
            ok = ok[[u not in {t.user for t in s.valid} for u in ok.index]]
        assert sorted(t.user for t in s.test[scen]) == sorted(ok.index)
        assert {t.user: len(t.support_items) + len(t.query_items) for t in s.test[scen]} == \
            {u: min(n, 100) for u, n in ok.items()}
    warm_cnt = per.loc["warm"]
    warm_ok = warm_cnt[(warm_cnt >= 13) & ((warm_cnt <= 100) if over_max == "drop" else True)]
    train_users = {t.user for t in s.train}
    valid_users = {t.user for t in s.valid}
    assert train_users | valid_users == set(warm_ok.index)
    assert not train_users & valid_users
    assert len(valid_users) == round(0.1 * len(warm_ok))

    # new users never in train or valid; valid users in no test scenario
    assert not (train_users | valid_users) & set(np.flatnonzero(user_new))
    for scen in SCENARIOS:
        assert not valid_users & {t.user for t in s.test[scen]}
    return warm_ok, train_users


def check_warm_test(s, warm_ok, train_users, warm_eval):
    # warm test
    train_pairs = pairs(s.train, "sq")
    if warm_eval == "seen":
        assert s.test["warm"] is s.train
    else:
        eligible = {u for u, n in warm_ok.items() if min(n, 100) >= 23 and u in train_users}
        assert {t.user for t in s.test["warm"]} == eligible
        assert not pairs(s.test["warm"], "q") & train_pairs
        by_user = {t.user: t for t in s.train}
        for t in s.test["warm"]:
            # support = all of the user's training ratings
            assert pairs([t], "s") == pairs([by_user[t.user]], "sq")
        for u, t in by_user.items():
            n_total = min(int(warm_ok[u]), 100)
            n_task = len(t.support_items) + len(t.query_items)
            assert n_task == (n_total - 10 if u in eligible else n_total)



def check_counts(s, c):
    # counts recomputed from the tasks
    for scen in SCENARIOS:
        tasks = s.test[scen]
        assert c["scenarios"][scen]["users"] == len(tasks)
        assert c["scenarios"][scen]["ratings"] == len(pairs(tasks, "sq"))
        assert c["scenarios"][scen]["items"] == len({i for _, i in pairs(tasks, "sq")})
    assert c["splits"]["train"] == {"users": len(s.train), "ratings": len(pairs(s.train, "sq"))}
    assert c["splits"]["valid"] == {"users": len(s.valid), "ratings": len(pairs(s.valid, "sq"))}
    assert c["splits"]["warm_test"] == {"users": c["scenarios"]["warm"]["users"],
                                        "ratings": c["scenarios"]["warm"]["ratings"]}


def test_ratings_in_tasks_are_the_real_ratings(data):
    s = build_splits(data, DataConfig(), seed=0)
    lookup = {(int(u), int(i)): float(r) for u, i, r in zip(data.rating_user, data.rating_item, data.rating)}
    for t in s.train[:20] + s.test["item_cold"][:20] + s.test["warm"][:20]:
        for items, ratings in ((t.support_items, t.support_ratings), (t.query_items, t.query_ratings)):
            assert [lookup[(t.user, int(i))] for i in items] == list(ratings)
            assert ratings.dtype == np.float32 and items.dtype == np.int64




def test_same_seed_same_tasks_byte_for_byte():
    a = build_splits(encoded(), DataConfig(), seed=5)
    b = build_splits(encoded(), DataConfig(), seed=5)
    assert flat(a) == flat(b) and a.counts == b.counts
    c = build_splits(encoded(), DataConfig(), seed=6)
    assert flat(a) != flat(c)
    assert {t.user for t in a.test["user_cold"]} != {t.user for t in c.test["user_cold"]}


def test_file_row_order_does_not_matter():
    raw = synthetic_raw()
    shuffled = dataclasses.replace(raw, ratings=raw.ratings.sample(frac=1.0, random_state=1).reset_index(drop=True))
    assert flat(build_splits(encoded(raw), DataConfig(), 2)) == flat(build_splits(encoded(shuffled), DataConfig(), 2))


def test_steps_draw_from_independent_generators(data):
    a = build_splits(data, DataConfig(valid_user_share=0.1), seed=1)
    b = build_splits(data, DataConfig(valid_user_share=0.3), seed=1)
    # the user split, sub-sampling and query draws do not move when the validation share changes
    assert flat_tasks(a.test["user_cold"]) == flat_tasks(b.test["user_cold"])
    assert flat_tasks(a.test["user_item_cold"]) == flat_tasks(b.test["user_item_cold"])
    assert len(b.valid) > len(a.valid)


def flat_tasks(tasks):
    return [(t.user, t.support_items.tolist(), t.query_items.tolist()) for t in tasks]


def test_no_years_means_no_new_items():
    raw = synthetic_raw(n_users=40)
    raw.items["year"] = np.nan
    s = build_splits(encoded(raw), DataConfig(), seed=0)
    assert s.item_year_cutoff is None
    assert s.counts["partition"]["item_cold"] == s.counts["partition"]["user_item_cold"] == 0
    assert s.test["item_cold"] == [] and s.counts["scenarios"]["item_cold"] == {"users": 0, "items": 0, "ratings": 0}


def test_task_order_is_seeded_not_by_item_index(data):
    """Support and query items are listed in a seeded random order, not ascending item index
    (an item order that correlates with ratings biased tie-breaks, docs/protocol.md step 7)."""
    s = build_splits(data, DataConfig(), seed=0)
    tasks = s.train + [t for scen in s.test.values() for t in scen]
    sorted_q = [bool((np.diff(t.query_items) > 0).all()) for t in tasks]
    sorted_s = [bool((np.diff(t.support_items) > 0).all()) for t in tasks]
    assert np.mean(sorted_q) < 0.1 and np.mean(sorted_s) < 0.1
