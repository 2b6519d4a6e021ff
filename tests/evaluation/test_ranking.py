"""The ranking score of catalogue ranking and recommend (mamo_l2l/evaluation/ranking.py, docs/algorithm.md
"Ranking score"): the choice prior, the weight chosen on validation, and that evaluation and
recommend order items by the same score."""
import numpy as np
import pytest
import synthetic

import mamo_l2l as ml
from mamo_l2l import api
from mamo_l2l.data.types import Task
from mamo_l2l.evaluation.catalogue import (
    CatalogueAccumulator,
    candidate_items,
    catalogue_scores,
    relevant_threshold,
)
from mamo_l2l.evaluation.ranking import Ranking, choice_prior, choice_scores, rank_scores, uses_choice
from mamo_l2l.training.fit import fit
from mamo_l2l.training.ranking_weight import CHOICE_WEIGHTS, WEIGHTS, weight_key


def _task(user, items):
    items = np.asarray(items)
    return Task(user, items[1:], np.full(items.size - 1, 4.0, np.float32), items[:1], np.array([5.0], np.float32))


def test_choice_prior_is_log_counts_on_training_items_and_learned_from_features_elsewhere():
    data = synthetic.encoded(n_items=40)
    year = data.item_x[:, 0]
    popular, rare = (year == 1), (year == 2)          # year value 1: rated by every user; 2: once
    trained = np.arange(30)
    pop_items = [i for i in trained if popular[i]]
    rare_items = [i for i in trained if rare[i]]
    tasks = [_task(u, pop_items + rare_items[u:u + 1]) for u in range(len(rare_items))]
    prior = choice_prior(data, tasks)
    counts = np.bincount(np.concatenate([np.r_[t.support_items, t.query_items] for t in tasks]), minlength=40)
    seen = counts > 0
    np.testing.assert_allclose(prior[seen], np.log1p(counts[seen]))
    new = np.arange(30, 40)
    new_pop, new_rare = new[popular[new]], new[rare[new]]
    assert new_pop.size and new_rare.size
    assert prior[new_pop].min() > prior[new_rare].max()      # learned from the year field


def test_rank_scores_hand_worked():
    r = Ranking(0.5, np.array([0.0, 2.0, 1.0]))
    np.testing.assert_allclose(r.scores(np.array([[4.0, 3.0]]), np.array([0, 1])), [[4.0, 4.0]])
    np.testing.assert_allclose(rank_scores(None, np.array([4.0, 3.0]), np.array([0, 1])), [4.0, 3.0])
    back = Ranking.from_payload(r.to_payload())
    assert back.weight == 0.5 and np.array_equal(back.prior, r.prior)
    assert Ranking.from_payload(None) is None


def _manual_recall(run, ranking, tasks, candidates):
    threshold = relevant_threshold(None, run.bundle.data.rating_range)
    raw = catalogue_scores(run.model, run.algorithm, run.backend, tasks, candidates, run.bundle.data, run.inner)
    acc = CatalogueAccumulator(candidates, threshold)
    acc.add_tasks(tasks, raw + (0 if ranking is None else ranking.weight * ranking.prior[candidates]))
    return acc.result()


def test_the_weight_is_the_best_on_validation_and_evaluation_ranks_by_it():
    cfg = synthetic.small_config(epochs=1)
    cfg.model.choice_prior = True
    run = fit(synthetic.bundle(cfg), cfg, model_name="maml", progress=False)
    notes = run.ranking_notes
    assert set(notes["valid"]) == {f"{w:g}" for w in WEIGHTS}
    best = max(v["recall@10"] for v in notes["valid"].values())
    assert notes["valid"][f"{notes['weight']:g}"]["recall@10"] == best
    assert run.ranking.weight == notes["weight"]
    from mamo_l2l.data.identity import training_items
    for w in (0.0, 5.0):     # the recorded table is the validation users' Recall@10 at that weight
        got = _manual_recall(
            run, Ranking(w, run.ranking.prior), run.bundle.splits.valid, training_items(run.bundle.splits)
        )
        assert got["recall@10"] == pytest.approx(notes["valid"][f"{w:g}"]["recall@10"])
    run.ranking = Ranking(3.0, run.ranking.prior)  # evaluation orders by the run's ranking score
    m = api.evaluate(run)
    cands = candidate_items(run.bundle.data, run.bundle.splits, run.config.data)
    for s in ("warm", "item_cold"):
        want = _manual_recall(run, run.ranking, run.bundle.splits.test[s], cands[s])
        assert m["scenarios"][s]["catalogue"]["recall@10"] == pytest.approx(want["recall@10"])
        assert m["scenarios"][s]["catalogue"]["ndcg@10"] == pytest.approx(want["ndcg@10"])
    assert m["ranking"]["weight"] == notes["weight"]
    assert f"by predicted rating + {notes['weight']:g} x item choice prior" in ml.results_table(m)


def test_without_the_prior_nothing_is_chosen():
    cfg = synthetic.small_config(epochs=1)
    cfg.model.choice_prior = False
    run = fit(synthetic.bundle(cfg), cfg, model_name="maml", progress=False)
    assert run.ranking is None and api.evaluate(run, catalogue=False)["ranking"] is None


def test_recommend_orders_by_the_same_ranking_score_as_catalogue_ranking(recommend_run, tmp_path):
    _, cache, cfg = recommend_run
    # the prior alone (no choice head): the weights are w's grid; the head's pair is the next test
    cfg = cfg.override("model", choice_prior=True, item_bias=True, choice_dim=0)
    bundle = ml.load_data(cfg, cache_dir=cache, progress=False)
    ml.fit(bundle, cfg, model_name="mamo", out_dir=tmp_path, progress=False)
    run = ml.load_run(tmp_path / "best.pt", cache_dir=cache)
    assert run.ranking_notes["weight"] == run.ranking.weight and set(run.ranking_notes["valid"]) == {
        f"{w:g}" for w in WEIGHTS
    }
    rec = ml.load_recommender(tmp_path / "best.pt")
    assert run.ranking is not None and rec.ranking.weight == run.ranking.weight
    np.testing.assert_array_equal(rec.ranking.prior, run.ranking.prior)
    data = run.bundle.data
    cands = candidate_items(data, run.bundle.splits, run.config.data)["warm"]
    tasks = run.bundle.splits.test["user_cold"][:3]
    raw = catalogue_scores(run.model, run.algorithm, run.backend, tasks, cands, data, run.inner)
    for task, row in zip(tasks, raw):
        # recommend's own prediction path (predict_tasks) for the test task's user row and support set
        got = run.recommender()._predict([(data.user_x[task.user], task.support_items, task.support_ratings, cands)])[0]
        np.testing.assert_allclose(got, row, atol=1e-5)  # same unclipped prediction
        top = run.recommender()._frame(cands, got, 10, task.support_items)
        want = run.ranking.scores(row, cands)
        np.testing.assert_allclose(top["rank_score"], np.sort(want)[::-1][:10], atol=1e-5)
        assert top["rank_score"].is_monotonic_decreasing
        assert ((top["score"] >= 1) & (top["score"] <= 5)).all()


def test_with_a_choice_head_the_pair_is_chosen_on_validation_and_recommend_orders_by_it(recommend_run, tmp_path):
    _, cache, cfg = recommend_run
    cfg = cfg.override("model", choice_prior=True, item_bias=True, choice_dim=8)
    bundle = ml.load_data(cfg, cache_dir=cache, progress=False)
    ml.fit(bundle, cfg, model_name="mamo", out_dir=tmp_path, progress=False)
    run = ml.load_run(tmp_path / "best.pt", cache_dir=cache)
    notes = run.ranking_notes
    assert run.model.choice is not None and run.ranking.choice_weight == notes["choice_weight"]
    assert set(notes["valid"]) == {weight_key(w, v) for w in WEIGHTS for v in CHOICE_WEIGHTS}
    best = max(r["recall@10"] for r in notes["valid"].values())
    assert notes["valid"][weight_key(run.ranking.weight, run.ranking.choice_weight)]["recall@10"] == best
    data = run.bundle.data
    cands = candidate_items(data, run.bundle.splits, run.config.data)["warm"]
    tasks = run.bundle.splits.test["user_cold"][:3]
    raw = catalogue_scores(run.model, run.algorithm, run.backend, tasks, cands, data, run.inner)
    choice = choice_scores(run.model, tasks, cands, data)
    assert choice.shape == raw.shape and np.ptp(choice, axis=1).min() > 0      # the head scores differ per item
    ranking = Ranking(run.ranking.weight, run.ranking.prior, 1.0)             # v = 1 so the head counts here
    rec = ml.load_recommender(tmp_path / "best.pt")
    rec.ranking = ranking
    for task, row, c in zip(tasks, raw, choice):
        top = rec._frame(cands, row, 10, task.support_items)
        want = ranking.scores(row, cands, c)
        np.testing.assert_allclose(top["rank_score"], np.sort(want)[::-1][:10], atol=1e-5)
    with pytest.raises(ValueError, match="choice head"):
        ranking.scores(raw, cands)
    back = Ranking.from_payload(ranking.to_payload())
    assert back.choice_weight == 1.0 and uses_choice(back) and not uses_choice(Ranking(1.0, ranking.prior))
