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
