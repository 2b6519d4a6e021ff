"""The cold-start protocol (docs/protocol.md, `protocol: melu`): scenarios, splits and tasks.

Order of the steps (each random step draws from its own generator
``np.random.default_rng([seed, STEP])``, so changing one step never shifts another):

1. item state: new = released after the cutoff year (or first rated after the cutoff time);
2. user state: a seeded ``existing_user_share`` of the rated users are existing;
3. partition: every rating falls in one scenario by (user state, item state);
4. per scenario and user: fewer than ``min_ratings`` ratings -> dropped; more than
   ``max_ratings`` -> sub-sampled to ``max_ratings`` (``over_max: sample``) or dropped;
5. validation users: a seeded ``valid_user_share`` of the existing users that kept a warm task;
   they are held out of training and of every test scenario;
6. warm hold-out (``warm_eval: heldout``): a training user with >= min_ratings + n_query warm
   ratings (after step 4) has ``n_query`` random ones held out; the training task is built from
   the rest, the warm test task has support = the rest and query = the held-out ratings;
7. tasks: query = ``n_query`` random ratings of the task's ratings, support = the others; both
   listed in a seeded random order (step 6's generator), never by item index, so that nothing
   downstream can profit from an item order that correlates with ratings (docs/protocol.md).

Random selection "k of a user's n ratings" is done for all users at once: every rating gets a
uniform key from the step's generator, in the canonical rating order (user index, item index),
and within each (scenario, user) group the k smallest keys are taken.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from mamo_l2l.core.config import DataConfig
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.types import SCENARIOS, EncodedDataset, Splits, Task

# Generator step ids (never renumber: that would change every split made so far).
STEP_USER_STATE = 1
STEP_VALID_USERS = 2
STEP_SUBSAMPLE = 3
STEP_WARM_HOLDOUT = 4
STEP_QUERY = 5
STEP_ORDER = 6

WARM, USER_COLD, ITEM_COLD, USER_ITEM_COLD = range(4)   # scenario code = user_new + 2 * item_new


def _rng(seed: int, step: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), step])


# ------------------------------------------------------------------ item state
def share_cutoff(item_value: np.ndarray, rating_item: np.ndarray, new_share: float) -> Optional[float]:
    """Smallest value c among the items' known values such that at most ``new_share`` of all
    ratings fall on items with value > c. None when no item has a known value.

    item_value: float64 [n_items] (year or first-rating time; NaN = unknown, never new);
    rating_item: int64 [n_ratings]. The share's denominator is all ratings, unknown ones included.
    """
    known = ~np.isnan(item_value)
    if not known.any():
        return None
    per_item = np.bincount(rating_item, minlength=len(item_value)).astype(np.int64)
    values, inverse = np.unique(item_value[known], return_inverse=True)
    ratings_at = np.bincount(inverse, weights=per_item[known], minlength=len(values))
    # after[k] = ratings on items with value > values[k]
    after = ratings_at[::-1].cumsum()[::-1] - ratings_at
    total = len(rating_item)
    ok = after <= new_share * total + 1e-9 * max(total, 1)
    return float(values[np.argmax(ok)])   # `after` falls with k and is 0 at the last value


def item_is_new(data: EncodedDataset, cfg: DataConfig) -> Tuple[np.ndarray, Dict[str, Optional[float]]]:
    """bool [n_items] (True = new item) and {"item_year_cutoff", "item_time_cutoff"} used."""
    if cfg.item_state == "year":
        if cfg.item_year_cutoff is not None:
            cutoff = float(cfg.item_year_cutoff)
        else:
            cutoff = share_cutoff(data.item_year, data.rating_item, cfg.new_item_share)
        new = np.zeros(len(data.item_ids), dtype=bool) if cutoff is None else data.item_year > cutoff
        return new, {"item_year_cutoff": cutoff, "item_time_cutoff": None}
    if cfg.item_year_cutoff is not None:
        raise MamoError("config key data.item_year_cutoff applies only to data.item_state: year")
    if np.isnan(data.timestamp).all():
        raise MamoError(f"data set {data.name} has no rating timestamps; data.item_state: first_seen needs them")
    first = np.full(len(data.item_ids), np.inf)
    np.minimum.at(first, data.rating_item, np.where(np.isnan(data.timestamp), np.inf, data.timestamp))
    first[np.isinf(first)] = np.nan
    cutoff = share_cutoff(first, data.rating_item, cfg.new_item_share)
    new = np.zeros(len(data.item_ids), dtype=bool) if cutoff is None else first > cutoff
    return new, {"item_year_cutoff": None, "item_time_cutoff": cutoff}


# ------------------------------------------------------------------ user state
def user_is_new(data: EncodedDataset, cfg: DataConfig, seed: int) -> np.ndarray:
    """bool [n_users]: a seeded round(existing_user_share * rated users) of the rated users are
    existing (False), the other rated users new; users without ratings are False (irrelevant)."""
    rated = np.flatnonzero(np.bincount(data.rating_user, minlength=len(data.user_ids)) > 0)
    n_existing = int(round(cfg.existing_user_share * len(rated)))
    perm = _rng(seed, STEP_USER_STATE).permutation(len(rated))
    new = np.zeros(len(data.user_ids), dtype=bool)
    new[rated[perm[n_existing:]]] = True
    return new


# ------------------------------------------------------------------ grouped sampling
def _rank_in_group(group: np.ndarray, key: np.ndarray) -> np.ndarray:
    """int64 [n]: rank of each element's key within its group (0 = smallest)."""
    order = np.lexsort((key, group))
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, len(g)])
    rank_sorted = np.arange(len(g)) - np.repeat(starts, sizes)
    rank = np.empty(len(g), dtype=np.int64)
    rank[order] = rank_sorted
    return rank


def _group_size(group: np.ndarray) -> np.ndarray:
    """int64 [n]: size of each element's group."""
    _, inverse, counts = np.unique(group, return_inverse=True, return_counts=True)
    return counts[inverse]


def _tasks(rows: np.ndarray, in_query: np.ndarray, data: EncodedDataset, order_key: np.ndarray) -> List[Task]:
    """One Task per user among the ratings ``rows`` (indices into data's rating arrays), in
    ascending user order; support/query items in ascending ``order_key`` (a seeded uniform key per
    rating), i.e. in a random order that does not depend on item ids (docs/protocol.md, step 7)."""
    users = data.rating_user[rows]
    order = np.lexsort((order_key[rows], users))
    rows, users, q = rows[order], users[order], in_query[order]
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(rows) else np.zeros(0, np.int64)
    out = []
    for a, b in zip(bounds, np.r_[bounds[1:], len(rows)]):
        r, qq = rows[a:b], q[a:b]
        s_rows, q_rows = r[~qq], r[qq]
        out.append(Task(int(users[a]), data.rating_item[s_rows].copy(), data.rating[s_rows].copy(),
                        data.rating_item[q_rows].copy(), data.rating[q_rows].copy()))
    return out


# ------------------------------------------------------------------ the protocol
def _filter_tasks(data: EncodedDataset, cfg: DataConfig, seed: int, scenario: np.ndarray) -> np.ndarray:
    """Step 4: the ratings kept per (scenario, user): groups under ``min_ratings`` go, groups over
    ``max_ratings`` are sub-sampled (``over_max: sample``) or dropped."""
    n = len(data.rating)
    group = scenario * len(data.user_ids) + data.rating_user
    size = _group_size(group)
    keep = size >= cfg.min_ratings
    if cfg.over_max == "drop":
        keep &= size <= cfg.max_ratings
    else:
        sub_rank = _rank_in_group(group, _rng(seed, STEP_SUBSAMPLE).random(n))
        keep &= sub_rank < cfg.max_ratings
    kept = np.zeros(n, dtype=bool)
    kept[np.arange(n)[keep]] = True
    return kept


def _validation_users(data: EncodedDataset, cfg: DataConfig, seed: int, warm_kept: np.ndarray) -> np.ndarray:
    """Step 5: a boolean per user, the validation users drawn among the existing users that kept a
    warm task."""
    warm_users = np.unique(data.rating_user[warm_kept])
    n_valid = int(round(cfg.valid_user_share * len(warm_users)))
    valid_users = np.sort(warm_users[_rng(seed, STEP_VALID_USERS).permutation(len(warm_users))[:n_valid]])
    is_valid_user = np.zeros(len(data.user_ids), dtype=bool)
    is_valid_user[valid_users] = True
    return is_valid_user


def build_splits(data: EncodedDataset, cfg: DataConfig, seed: int) -> Splits:
    """Scenarios, training/validation tasks and the four test scenarios' tasks (see module doc)."""
    cfg.validate()
    n = len(data.rating)
    all_rows = np.arange(n)
    item_new, cutoffs = item_is_new(data, cfg)
    user_new = user_is_new(data, cfg, seed)
    scenario = user_new[data.rating_user].astype(np.int64) + 2 * item_new[data.rating_item].astype(np.int64)
    partition = np.bincount(scenario, minlength=4)

    kept = _filter_tasks(data, cfg, seed, scenario)
    is_valid_user = _validation_users(data, cfg, seed, kept & (scenario == WARM))
    # valid users take no part in training nor in any test scenario
    kept &= ~is_valid_user[data.rating_user] | (scenario == WARM)

    # step 6: warm hold-out for training users
    train_pool = kept & (scenario == WARM) & ~is_valid_user[data.rating_user]
    held_out = np.zeros(n, dtype=bool)
    if cfg.warm_eval == "heldout":
        pool_rows = all_rows[train_pool]
        g = data.rating_user[pool_rows]
        rank = _rank_in_group(g, _rng(seed, STEP_WARM_HOLDOUT).random(n)[pool_rows])
        eligible = _group_size(g) >= cfg.min_ratings + cfg.n_query
        held_out[pool_rows[eligible & (rank < cfg.n_query)]] = True
    train_rows = all_rows[train_pool & ~held_out]

    # step 7: queries, one key per rating; every task's rows are disjoint, so one rank suffices
    query_key = _rng(seed, STEP_QUERY).random(n)
    order_key = _rng(seed, STEP_ORDER).random(n)

    def with_query(rows: np.ndarray) -> List[Task]:
        rank = _rank_in_group(data.rating_user[rows], query_key[rows])
        return _tasks(rows, rank < cfg.n_query, data, order_key)

    train = with_query(train_rows)
    valid = with_query(all_rows[kept & (scenario == WARM) & is_valid_user[data.rating_user]])
    if cfg.warm_eval == "heldout":
        test_users = np.unique(data.rating_user[held_out])
        warm_rows = all_rows[train_pool & np.isin(data.rating_user, test_users)]
        warm_test = _tasks(warm_rows, held_out[warm_rows], data, order_key)
    else:
        warm_test = train
    test = {"warm": warm_test}
    for code in (USER_COLD, ITEM_COLD, USER_ITEM_COLD):
        test[SCENARIOS[code]] = with_query(all_rows[kept & (scenario == code)])

    counts = _counts(data, cfg, seed, cutoffs, partition, train, valid, test)
    return Splits(train=train, valid=valid, test=test, item_year_cutoff=cutoffs["item_year_cutoff"],
                  counts=counts)


def _task_counts(tasks: List[Task], with_items: bool) -> Dict[str, int]:
    out = {"users": len(tasks),
           "ratings": int(sum(len(t.support_items) + len(t.query_items) for t in tasks))}
    if with_items:
        items = [np.concatenate([t.support_items, t.query_items]) for t in tasks]
        out = {"users": out["users"], "items": int(len(np.unique(np.concatenate(items)))) if items else 0,
               "ratings": out["ratings"]}
    return out


def _counts(data: EncodedDataset, cfg: DataConfig, seed: int, cutoffs: Dict[str, Optional[float]],
            partition: np.ndarray, train: List[Task], valid: List[Task],
            test: Dict[str, List[Task]]) -> dict:
    """The counts dict that `mamo-l2l data info --json` writes (docs/protocol.md, The counts, says what each counts)."""
    return {
        "dataset": data.name,
        "seed": int(seed),
        "item_state": cfg.item_state,
        "item_year_cutoff": cutoffs["item_year_cutoff"],
        "item_time_cutoff": cutoffs["item_time_cutoff"],
        "warm_eval": cfg.warm_eval,
        "totals": {"users": int(len(np.unique(data.rating_user))),
                   "items": int(len(np.unique(data.rating_item))),
                   "ratings": int(len(data.rating))},
        "partition": {s: int(partition[k]) for k, s in enumerate(SCENARIOS)},
        "scenarios": {s: _task_counts(test[s], with_items=True) for s in SCENARIOS},
        "splits": {"train": _task_counts(train, False), "valid": _task_counts(valid, False),
                   "warm_test": _task_counts(test["warm"], False)},
    }


def format_counts(c: dict) -> str:
    """The counts dict (``build_splits``) as a readable table: `mamo-l2l data info` prints it, a run logs it."""
    if c.get("item_state") == "first_seen":
        cutoff = (f"items first rated after t={c['item_time_cutoff']:.0f} are new"
                  if c.get("item_time_cutoff") is not None else "no timestamps: all items existing")
    elif c.get("item_year_cutoff") is not None:
        cutoff = f"items released after {c['item_year_cutoff']:g} are new"
    else:
        cutoff = "no item years: all items existing"
    t = c["totals"]
    lines = [
        f"data set {c['dataset']}  (seed {c['seed']}; {cutoff}; warm test: {c['warm_eval']})",
        f"all: {t['users']:,} users, {t['items']:,} items, {t['ratings']:,} ratings",
        "",
        f"{'scenario':<16}{'raw ratings':>12}{'users':>9}{'items':>9}{'ratings':>10}",
    ]
    for s in SCENARIOS:
        v = c["scenarios"][s]
        lines.append(f"{s:<16}{c['partition'][s]:>12,}{v['users']:>9,}{v['items']:>9,}{v['ratings']:>10,}")
    lines += ["", f"{'split':<16}{'users':>9}{'ratings':>10}"]
    for s in ("train", "valid", "warm_test"):
        v = c["splits"][s]
        lines.append(f"{s:<16}{v['users']:>9,}{v['ratings']:>10,}")
    lines += ["", "raw ratings: the scenario's share of all ratings before the user filter; users/items/ratings:",
              "what the scenario's test tasks hold (support + query); each task scores its query ratings."]
    return "\n".join(lines)
