"""Catalogue ranking: the adaptation is exactly evaluation's (query items score as evaluated),
nothing is written, the metrics land in metrics.json, the results table and the references."""
import copy

import numpy as np
import pytest
import synthetic
import torch

import mamo_l2l as ml
from mamo_l2l import api
from mamo_l2l.algorithms import build_model
from mamo_l2l.backends import get_backend
from mamo_l2l.backends.base import InnerLoop
from mamo_l2l.core.config import ModelConfig
from mamo_l2l.data.types import SCENARIOS, Task
from mamo_l2l.evaluation.catalogue import (
    catalogue_metrics,
    catalogue_scores,
    relevant_threshold,
)
from mamo_l2l.evaluation.scoring import predict_tasks
from mamo_l2l.training.fit import fit


@pytest.mark.parametrize("backend", ["func", "l2l"])
@pytest.mark.parametrize("model_name", ["mamo", "maml", "melu", "supervised-finetune"])
def test_query_items_score_as_evaluation_predicts_them(model_name, backend):
    data = synthetic.encoded()
    torch.manual_seed(0)
    model, algo = build_model(model_name, ModelConfig(), data, 3.0)
    tasks = synthetic.tasks(data, n=9, seed=3)
    inner = InnerLoop(2, 0.05, False)
    be = get_backend(backend)
    before = copy.deepcopy(model.state_dict())
    candidates = np.arange(len(data.item_ids))
    scores = catalogue_scores(model, algo, be, tasks, candidates, data, inner)
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v), k            # memories read, never written
    preds = predict_tasks(model, algo, get_backend("func"), tasks, data, inner)
    assert scores.shape == (len(tasks), len(candidates))
    for t, row, p in zip(tasks, scores, preds):
        np.testing.assert_allclose(np.clip(row[t.query_items], *data.rating_range), p, atol=1e-5)
    # the scores are not constant per user (the candidates really are scored one by one)
    assert np.ptp(scores, axis=1).min() > 0


def test_item_chunks_and_user_chunks_do_not_change_scores(monkeypatch):
    import mamo_l2l.evaluation.catalogue as cat
    data = synthetic.encoded()
    torch.manual_seed(0)
    model, algo = build_model("mamo", ModelConfig(), data, 3.0)
    tasks = synthetic.tasks(data, n=7, seed=4)
    inner = InnerLoop(1, 0.05, False)
    be = get_backend("func")
    candidates = np.arange(len(data.item_ids))
    whole = catalogue_scores(model, algo, be, tasks, candidates, data, inner)
    monkeypatch.setattr(cat, "PAIRS_PER_CALL", 9)
    monkeypatch.setattr(be, "eval_chunk", 3)
    np.testing.assert_allclose(catalogue_scores(model, algo, be, tasks, candidates, data, inner), whole, atol=1e-6)


def test_relevance_threshold_and_users_without_relevant_items():
    assert relevant_threshold(None, (1.0, 5.0)) == 4.0
    assert relevant_threshold(None, (1.0, 10.0)) == 7.75
    assert relevant_threshold(3, (1.0, 5.0)) == 3.0
    data = synthetic.encoded()
    model, algo = build_model("maml", ModelConfig(), data, 3.0)
    low = [
        Task(0, np.array([1, 2, 3]), np.full(3, 5.0, np.float32), np.array([4, 5]), np.array([3.0, 2.0], np.float32))
    ]
    m = catalogue_metrics(model, algo, get_backend("func"), low, np.arange(10), data, InnerLoop(1, 0.05, False), 4.0)
    assert m["users"] == 0 and np.isnan(m["ndcg@10"])
    m = catalogue_metrics(model, algo, get_backend("func"), low, np.arange(10), data, InnerLoop(1, 0.05, False), 3.0)
    assert m["users"] == 1 and 0.0 <= m["ndcg@10"] <= 1.0 and m["candidates"] == 10


@pytest.mark.parametrize("model_name", ["mamo", "item-mean"])
def test_evaluate_reports_catalogue_beside_the_references(model_name):
    cfg = synthetic.small_config(epochs=1)
    run = fit(synthetic.bundle(cfg), cfg, model_name=model_name, progress=False)
    m = api.evaluate(run)
    for s in SCENARIOS:
        c = m["scenarios"][s]["catalogue"]
        assert set(c) >= {"recall@10", "ndcg@10", "hit@10", "users", "candidates", "relevant_rating"}
        for ref in ("popularity", "item_mean", "global_mean"):
            assert "ndcg@10" in m["references"][ref][s]["catalogue"]
    assert m["scenarios"]["warm"]["catalogue"]["users"] > 0
    table = ml.results_table(m)
    assert "catalogue ranking" in table and "popularity" in table and "NDCG@10" in table
    assert "catalogue_seconds" in m["timing"]


# ------------------------------------------------------------------ audit (issue 21)
def test_new_item_candidates_are_every_new_item_of_the_item_table():
    import dataclasses

    from mamo_l2l.core.config import DataConfig
    from mamo_l2l.evaluation.catalogue import candidate_items
    data = synthetic.encoded(n_items=12)
    years = np.arange(12, dtype=np.float64) + 1990.0           # items 8..11 are new (after 1997)
    users = np.repeat(np.arange(4), 6)
    items = np.tile(np.arange(6), 4)                           # only items 0..5 rated ...
    users, items = np.r_[users, 0], np.r_[items, 9]            # ... and new item 9
    data = dataclasses.replace(data, item_year=years, rating_user=users, rating_item=items,
                               rating=np.full(items.size, 4.0, np.float32), timestamp=np.full(items.size, np.nan))
    cfg = DataConfig(item_state="year", item_year_cutoff=1997)
    splits = types_splits(tasks=[Task(1, np.array([0, 1]), np.full(2, 4.0, np.float32), np.array([2]),
                                      np.array([4.0], np.float32))])
    cand = candidate_items(data, splits, cfg)
    assert cand["item_cold"].tolist() == [8, 9, 10, 11]       # unrated new items 8, 10, 11 too
    assert cand["user_item_cold"].tolist() == [8, 9, 10, 11]


def types_splits(tasks):
    import types
    return types.SimpleNamespace(train=tasks)


def test_own_ratings_outside_the_task_are_not_candidates():
    import dataclasses

    from mamo_l2l.evaluation.catalogue import CatalogueAccumulator, UserItems
    data = synthetic.encoded(n_items=6)
    # user 0 rated items 0..4 in the data; the task (capped) holds 0, 1 (support) and 2 (query)
    data = dataclasses.replace(data, rating_user=np.array([0, 0, 0, 0, 0, 1]), rating_item=np.array([0, 1, 2, 3, 4, 5]),
                               rating=np.full(6, 4.0, np.float32))
    task = Task(0, np.array([0, 1]), np.full(2, 4.0, np.float32), np.array([2]), np.array([5.0], np.float32))
    candidates = np.arange(6)
    scores = np.array([9.0, 9.0, 1.0, 3.0, 2.0, 0.0])          # the user's own items 3, 4 above the query item
    plain = CatalogueAccumulator(candidates, 4.0)
    plain.add_tasks([task], scores[None])
    assert plain.result()["ndcg@10"] < 1.0
    acc = CatalogueAccumulator(candidates, 4.0, UserItems(data))
    acc.add_tasks([task], scores[None])
    r = acc.result()
    assert r["recall@10"] == 1.0 and r["ndcg@10"] == 1.0       # 3, 4 left out: the query item ranks first


def _per_user_reference(tasks, scores, candidates, threshold, rated, popular):
    """The metrics one user at a time (metrics.catalogue_user_metrics, top_list): what the block
    computation must equal."""
    from mamo_l2l.evaluation.metrics import catalogue_user_metrics, list_metrics, top_list
    pos = {int(i): p for p, i in enumerate(candidates)}
    values, lists = [], []
    for t, s in zip(tasks, scores):
        rel_items = t.query_items[t.query_ratings >= threshold]
        if not rel_items.size:
            continue
        own = rated.of(t.user)
        known = np.concatenate([t.support_items, own[~np.isin(own, t.query_items)]])
        s = s.copy()
        s[[pos[int(i)] for i in known if int(i) in pos]] = -np.inf
        rel = np.zeros(len(candidates), dtype=bool)
        rel[[pos[int(i)] for i in rel_items if int(i) in pos]] = True
        values.append(catalogue_user_metrics(s, rel, int(rel_items.size)))
        lists.append(candidates[top_list(s)])
    return np.mean(values, axis=0), list_metrics(lists, len(candidates), popular)


@pytest.mark.parametrize("block", [1, 7, 200])
def test_block_metrics_equal_the_per_user_reference(block):
    import dataclasses

    from mamo_l2l.evaluation.catalogue import CatalogueAccumulator, UserItems
    rng = np.random.default_rng(block)
    n_items, n_users = 40, 30
    ru = np.repeat(np.arange(n_users), 12)
    ri = np.concatenate([rng.choice(n_items, 12, replace=False) for _ in range(n_users)])
    data = dataclasses.replace(synthetic.encoded(n_items=n_items), rating_user=ru, rating_item=ri,
                               rating=rng.integers(1, 6, ru.size).astype(np.float32))
    tasks = []
    for u in range(n_users):   # support 4, query 6 of the user's 12 (2 left out: the user's own items)
        items = ri[ru == u]
        tasks.append(Task(u, items[:4], data.rating[ru == u][:4], items[4:10], data.rating[ru == u][4:10]))
    candidates = np.sort(rng.choice(n_items, 30, replace=False))       # some rated items are no candidates
    scores = rng.integers(0, 4, (n_users, candidates.size)).astype(np.float64)   # many ties
    popular = rng.random(n_items) < 0.2
    rated = UserItems(data)
    acc = CatalogueAccumulator(candidates, 4.0, rated, popular)
    for a in range(0, n_users, block):
        acc.add_tasks(tasks[a:a + block], scores[a:a + block])
    got = acc.result()
    want, lists = _per_user_reference(tasks, scores, candidates, 4.0, rated, popular)
    assert 0 < got["users"] < n_users                                   # some users have no relevant item
    np.testing.assert_allclose([got["recall@10"], got["ndcg@10"], got["hit@10"]], want, rtol=0, atol=1e-12)
    for m, v in lists.items():
        assert got[m] == pytest.approx(v, abs=1e-12)
