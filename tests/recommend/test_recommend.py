"""Recommending for a new user (mamo_l2l/recommend/recommender.py, docs/serving.md), on the session's tiny
fixture run (conftest.recommend_run)."""
import numpy as np
import pandas as pd
import pytest
import torch

import mamo_l2l as ml
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.readers import read_folder
from mamo_l2l.evaluation.scoring import predict_tasks
from mamo_l2l.training.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def loaded(recommend_run):
    out, cache, _ = recommend_run
    return ml.load_run(out / "best.pt", cache_dir=cache)


@pytest.fixture(scope="module")
def rec(recommend_run):
    return ml.load_recommender(recommend_run[0] / "best.pt")


def _profile(raw, user_id):
    row = raw.users.loc[user_id]
    return {name: row[name] for name in raw.users.columns}


def test_recommend_scores_equal_what_evaluation_predicts(loaded, rec, ml100k_raw_dir):
    """The same task through evaluation (predict_tasks over the test split) and through
    recommend (ids, ratings and profile as a user would give them) gives the same scores."""
    data = loaded.bundle.data
    raw = read_folder(ml100k_raw_dir)
    tasks = loaded.bundle.splits.test["user_cold"][:4]
    assert len(tasks) == 4
    expected = predict_tasks(loaded.model, loaded.algorithm, loaded.backend, tasks, data, loaded.inner)
    for task, want in zip(tasks, expected):
        ratings = [(data.item_ids[i], float(r)) for i, r in zip(task.support_items, task.support_ratings)]
        profile = _profile(raw, data.user_ids[task.user])
        query_ids = [data.item_ids[i] for i in task.query_items]
        for source in (rec, loaded):        # checkpoint alone, and the run with its data
            top = source.recommend(ratings, user=profile, k=len(query_ids), candidates=query_ids)
            got = dict(zip(top["item_id"], top["score"]))
            np.testing.assert_allclose([got[i] for i in query_ids], want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(rec.predict(ratings, query_ids, user=profile), want, rtol=0, atol=1e-5)


def test_load_recommender_needs_only_the_checkpoint(recommend_run, monkeypatch):
    import mamo_l2l.data.prepare as pipeline

    def no_data(*args, **kwargs):
        raise AssertionError("the data set was read")
    monkeypatch.setattr(pipeline, "prepare", no_data)
    monkeypatch.setattr(pipeline, "source_dir", no_data)
    r = ml.load_recommender(recommend_run[0] / "best.pt")
    top = r.recommend([("1", 5), ("2", 4)], k=3)
    assert len(top) == 3


def test_top_k_sorted_excludes_rated_and_has_titles(rec):
    rated = [("1", 5.0), ("2", 1.0), ("3", 4.0)]
    top = rec.recommend(rated, user={"gender": "F", "age": "25"}, k=7)
    assert list(top.columns) == ["item_id", "title", "score", "rank_score"]
    assert len(top) == 7
    assert top["rank_score"].is_monotonic_decreasing        # ordered by the ranking score (ranking.py)
    assert not set(top["item_id"]) & {"1", "2", "3"}
    lo, hi = rec.rating_range
    assert ((top["score"] >= lo) & (top["score"] <= hi)).all()
    titles = dict(zip(rec.catalog.item_ids, rec.catalog.titles))
    assert titles["1"] == "Toy Story (1995)"
    assert list(top["title"]) == [titles[i] for i in top["item_id"]]
    whole = rec.recommend(rated, k=10_000)
    assert len(whole) == len(rec.catalog) - 3          # k larger than the catalogue: every candidate
    kept = rec.recommend(rated, k=10_000, exclude_rated=False)
    assert {"1", "2", "3"} <= set(kept["item_id"])


def test_ratings_change_the_recommendations_and_frames_are_accepted(rec):
    a = rec.recommend([("1", 5), ("2", 5), ("3", 5)], k=len(rec.catalog), exclude_rated=False)
    b = rec.recommend([("1", 1), ("2", 1), ("3", 1)], k=len(rec.catalog), exclude_rated=False)
    assert not np.allclose(a.set_index("item_id")["score"].sort_index(), b.set_index("item_id")["score"].sort_index())
    frame = pd.DataFrame({"item_id": ["1", "2", "3"], "rating": [5, 5, 5]})
    pd.testing.assert_frame_equal(rec.recommend(frame, k=5), rec.recommend({"1": 5, "2": 5, "3": 5}, k=5))
    dicts = [{"item_id": "1", "rating": 5}, {"item_id": 2, "rating": "5"}, {"item_id": "3", "rating": 5.0}]
    pd.testing.assert_frame_equal(rec.recommend(dicts, k=5), rec.recommend(frame, k=5))
    assert len(rec.recommend([], k=4)) == 4              # a profile only / nothing at all still ranks


def test_recommend_batch_equals_one_user_at_a_time(rec):
    frame = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u2", "u2", "u3"],
                          "item_id": ["1", "2", "3", "4", "5", "1"], "rating": [5, 4, 1, 2, 5, 3]})
    both = rec.recommend_batch(frame, k=4, users={"u2": {"gender": "M"}})
    assert list(both["user_id"].unique()) == ["u1", "u2", "u3"]
    for uid, part in frame.groupby("user_id"):
        alone = rec.recommend(part[["item_id", "rating"]], user={"gender": "M"} if uid == "u2" else None, k=4)
        mine = both[both["user_id"] == uid]
        assert list(mine["rank"]) == [1, 2, 3, 4]
        assert list(mine["item_id"]) == list(alone["item_id"])
        np.testing.assert_allclose(mine["score"], alone["score"], atol=1e-5)


@pytest.mark.parametrize("call, message", [
    (lambda r: r.recommend([("no-such-item", 4)]), "unknown item id"),
    (lambda r: r.recommend([("1", 9)]), "outside this data set's rating range 1..5"),
    (lambda r: r.recommend([("1", 0.5)]), "rating range"),
    (lambda r: r.recommend([("1", "great")]), "is not a number"),
    (lambda r: r.recommend([("1", 4), ("1", 5)]), "more than once"),
    (lambda r: r.recommend([("1", 4)], k=0), "k must be an integer >= 1"),
    (lambda r: r.recommend([("1", 4)], user={"height": "2m"}), "unknown user field"),
    (lambda r: r.recommend([("1", 4)], candidates=["1", "zzz"]), "unknown item id(s) in candidates"),
    (lambda r: r.recommend_batch(pd.DataFrame({"item_id": ["1"], "rating": [3]})), "user_id"),
    (lambda r: r.recommend_batch(pd.DataFrame({"user_id": ["a"], "item_id": ["x"], "rating": [3]})), "user a"),
])
def test_bad_input_gives_a_clear_error(rec, call, message):
    with pytest.raises(MamoError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        call(rec)


def test_recommending_never_changes_the_model(rec):
    before = {k: v.clone() for k, v in rec.model.state_dict().items()}
    for n in range(5):
        rec.recommend([("1", 5), (str(2 + n), 1)], user={"gender": "F"}, k=5)
    after = rec.model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


def test_old_checkpoint_without_catalogue(recommend_run, tmp_path):
    out, cache, _ = recommend_run
    ckpt = load_checkpoint(out / "best.pt")
    del ckpt["catalog"]
    old = tmp_path / "best.pt"
    save_checkpoint(old, ckpt)
    with pytest.raises(MamoError, match="no item catalogue"):
        ml.load_recommender(old)
    top = ml.load_run(old, cache_dir=cache).recommend([("1", 5)], k=3)   # re-reads the data instead
    assert len(top) == 3 and top["title"].str.len().gt(0).all()
    with pytest.raises(MamoError, match="resume checkpoint"):
        ml.load_recommender(out / "last.pt")


def test_non_adapting_item_mean_model_recommends_by_item_mean(recommend_run, tmp_path):
    _, cache, cfg = recommend_run
    bundle = ml.load_data(cfg, cache_dir=cache, progress=False)
    ml.fit(bundle, cfg, model_name="item-mean", out_dir=tmp_path, progress=False)
    r = ml.load_recommender(tmp_path / "best.pt")
    top = r.recommend([("1", 5)], k=5)
    means = r.model.item_mean.numpy()
    best = np.argsort(-means, kind="stable")
    best = [r.catalog.item_ids[i] for i in best if r.catalog.item_ids[i] != "1"][:5]
    assert list(top["item_id"]) == best


@pytest.mark.parametrize("backend", ["func", "l2l", "higher"])
def test_single_user_path_equals_the_batched_evaluation_path(recommend_run, backend):
    """recommend (one user, cached item profiles, no padding) scores what predict_tasks -- the
    evaluation path, padded and batched -- predicts, with every backend."""
    r = ml.load_recommender(recommend_run[0] / "best.pt", backend=backend)
    ratings = [("1", 5.0), ("2", 4.0), ("7", 1.0), ("11", 3.0)]
    single = r.recommend(ratings, user={"gender": "F"}, k=10_000)
    items, values = r._support(ratings)
    cand = r._candidates(None, items)
    (batched,) = r._predict([(r.catalog.user_row({"gender": "F"}), items, values, cand)])
    want = dict(zip(r.catalog.item_ids[cand], np.clip(batched, *r.rating_range)))   # _predict: unclipped
    np.testing.assert_allclose(single["score"], [want[i] for i in single["item_id"]], rtol=0, atol=1e-5)
    # the ranking score: predicted + w * prior (+ v * the choice head's score when the run has one)
    want_rank = batched if r.ranking is None else r.ranking.scores(batched, cand, r._choice(items, cand))
    ranked = dict(zip(r.catalog.item_ids[cand], want_rank))
    np.testing.assert_allclose(single["rank_score"], [ranked[i] for i in single["item_id"]], rtol=0, atol=1e-5)
    assert r.recommend_records(ratings, user={"gender": "F"}, k=5) == [
        {"item_id": i, "title": t, "score": s, "rank_score": r}
        for i, t, s, r in zip(single["item_id"][:5], single["title"][:5], single["score"][:5], single["rank_score"][:5])
    ]


def test_item_profile_cache_follows_the_embedder(recommend_run):
    r = ml.load_recommender(recommend_run[0] / "best.pt")
    before = r.recommend([("1", 5.0)], k=5)
    with torch.no_grad():  # changing the item embedder must change the cached profiles
        for p in r.model.item_embedder.parameters():
            p.mul_(0.5)
    fresh = ml.load_recommender(recommend_run[0] / "best.pt")
    fresh.model.load_state_dict(r.model.state_dict())
    after = r.recommend([("1", 5.0)], k=10_000)
    want = fresh.recommend([("1", 5.0)], k=10_000)
    pd.testing.assert_frame_equal(after, want)
    assert not before["score"].equals(after["score"][:5])


def test_top_k_is_a_stable_sort_with_ties():
    from mamo_l2l.recommend.recommender import top_k

    rng = np.random.default_rng(0)
    for _ in range(200):
        scores = rng.integers(0, 5, size=int(rng.integers(1, 40))).astype(float)
        k = int(rng.integers(1, 45))
        assert list(top_k(scores, k)) == list(np.argsort(-scores, kind="stable")[:k])


def test_fifo_lock_grants_in_arrival_order():
    import threading
    import time

    from mamo_l2l.recommend.recommender import FifoLock

    lock, order = FifoLock(), []
    lock.__enter__()  # held while the waiters queue up, one by one
    threads = []
    for n in range(6):

        def waiter(n=n):
            with lock:
                order.append(n)

        t = threading.Thread(target=waiter)
        t.start()
        threads.append(t)
        deadline = time.monotonic() + 5
        while lock.waiting() != n + 1 and time.monotonic() < deadline:  # n is queued
            time.sleep(0.001)
    lock.__exit__(None, None, None)
    for t in threads:
        t.join(5)
    assert order == list(range(6))


def test_a_checkpoint_from_before_the_ranking_keys_loads_as_it_was_trained(recommend_run, tmp_path):
    """A best.pt whose recorded config predates model.item_bias / identity_dropout / choice_prior
    (and train.pair_loss / select_metric) is read with those keys off, as that code trained it:
    today's defaults would build a model with an item-bias table the checkpoint does not have."""
    from mamo_l2l.core.config import ADDED_KEYS, Config

    _, cache, cfg = recommend_run
    cfg = cfg.override("model", **ADDED_KEYS["model"])   # trained as the code before those keys
    cfg = cfg.override("train", **ADDED_KEYS["train"])
    bundle = ml.load_data(cfg, cache_dir=cache, progress=False)
    ml.fit(bundle, cfg, model_name="mamo", out_dir=tmp_path / "run", progress=False)
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    for section, keys in ADDED_KEYS.items():
        for key in keys:
            del ckpt["config"][section][key]
    old = tmp_path / "old.pt"
    save_checkpoint(old, ckpt)
    with pytest.raises(MamoError, match="does not fit"):  # what today's defaults would do
        _load_with_defaults(old)
    want = ml.load_recommender(tmp_path / "run" / "best.pt").recommend([("1", 5.0), ("2", 1.0)], k=8)
    got = ml.load_recommender(old).recommend([("1", 5.0), ("2", 1.0)], k=8)
    pd.testing.assert_frame_equal(got, want)
    assert Config.from_recorded(ckpt["config"]).model.item_bias is False
    assert len(ml.load_run(old, cache_dir=cache).recommend([("1", 5.0)], k=3)) == 3


def _load_with_defaults(path):
    """load_recommender as it was before Config.from_recorded: the recorded config with today's defaults."""
    from mamo_l2l.algorithms import build_model
    from mamo_l2l.core.config import Config
    from mamo_l2l.recommend.catalog import Catalog

    ckpt = load_checkpoint(path)
    config = Config.from_dict(ckpt["config"])
    data = Catalog.from_payload(ckpt["catalog"]).stub_dataset()
    model, _ = build_model(ckpt["model_name"], config.model, data, 0.0)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise MamoError(f"checkpoint does not fit: {e}")
