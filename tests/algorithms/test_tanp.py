"""TaNP through the pipeline (mamo_l2l/algorithms/tanp.py; docs/models.md, "TaNP"): the
Student-t assignment, the sharpened target and the Gaussian KL by hand; no local steps on any
backend, whatever train.local_steps says; every backend computes the same losses, gradients and
predictions; evaluation draws nothing and changes nothing; it learns on the fixture data; and it
trains, saves, loads, evaluates, recommends and compares like every model."""
import copy

import numpy as np
import pytest
import synthetic
import torch
from click.testing import CliRunner

import mamo_l2l as ml
from mamo_l2l.algorithms import build_model
from mamo_l2l.algorithms import tanp as tanp_algorithm
from mamo_l2l.algorithms.tanp import gaussian_kl, sharpened_target, student_t_assignment
from mamo_l2l.backends import BACKENDS, get_backend
from mamo_l2l.backends.base import InnerLoop
from mamo_l2l.cli.main import app
from mamo_l2l.core.config import ModelConfig
from mamo_l2l.data.batching import pad_tasks
from mamo_l2l.data.types import SCENARIOS


def test_student_t_assignment_and_sharpened_target_by_hand():
    o = torch.tensor([0.0, 0.0])
    centres = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])          # squared distances 1, 4, 25
    for alpha in (1.0, 2.0):
        kernel = torch.tensor([(1 + d / alpha) ** (-(alpha + 1) / 2) for d in (1.0, 4.0, 25.0)])
        q = student_t_assignment(o, centres, alpha)
        assert torch.allclose(q, kernel / kernel.sum()) and abs(float(q.sum()) - 1) < 1e-6
    q = torch.tensor([0.5, 0.3, 0.2])
    f = torch.tensor([0.6, 0.2, 0.2])
    w = torch.tensor([0.25 / 0.6, 0.09 / 0.2, 0.04 / 0.2])
    assert torch.allclose(sharpened_target(q, f), w / w.sum())
    assert float(sharpened_target(q, torch.full((3,), 1 / 3)).max()) > 0.5    # sharper than q


def test_gaussian_kl_matches_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu_a, mu_b = torch.randn(4, generator=gen), torch.randn(4, generator=gen)
    s_a, s_b = torch.rand(4, generator=gen) + 0.1, torch.rand(4, generator=gen) + 0.1
    normal = torch.distributions.Normal
    ref = torch.distributions.kl_divergence(normal(mu_a, s_a), normal(mu_b, s_b))
    assert torch.allclose(gaussian_kl(mu_a, s_a, mu_b, s_b), ref.sum(), atol=1e-6)
    assert abs(float(gaussian_kl(mu_a, s_a, mu_a, s_a))) < 1e-6


def _build(gated=False):
    torch.manual_seed(0)
    return build_model("tanp", ModelConfig(field_dim=8, tanp_hidden=8, tanp_z_dim=4, tanp_clusters=3,
                                           tanp_film="gated" if gated else "film"), synthetic.encoded(), 3.0)


@pytest.mark.parametrize("gated", [False, True])
def test_backends_agree_on_losses_gradients_writes_and_predictions(gated, monkeypatch):
    # z's training draw held at a fixed value: func draws a batch's noise in one call, the loop
    # backends one task at a time (same distribution, different numbers); all else must agree
    fixed = torch.linspace(-1, 1, 4)
    monkeypatch.setattr(tanp_algorithm, "standard_normal_like", lambda t: fixed.expand_as(t))
    data = synthetic.encoded()
    batch = pad_tasks(synthetic.tasks(data), data)
    outs = []
    for backend in BACKENDS:
        model, algo = _build(gated)
        out = get_backend(backend).run_batch(model, algo, batch, InnerLoop(0, 0.05, False), training=True)
        grads = synthetic.grads(model, out.query_loss.mean())
        evaluated = get_backend(backend).run_batch(model, algo, batch, InnerLoop(0, 0.05, False), training=False)
        outs.append((out, grads, evaluated))
    a, ga, ea = outs[0]
    assert any(float(g.abs().max()) > 1e-4 for g in ga)
    assert all(w is not None and abs(float(w.sum()) - 1) < 1e-5 for w in a.writes)
    for b, gb, eb in outs[1:]:
        assert torch.allclose(a.query_loss, b.query_loss, atol=1e-5)
        assert torch.allclose(ea.query_pred, eb.query_pred, atol=1e-5)
        for x, y in zip(a.writes, b.writes):
            assert torch.allclose(x, y, atol=1e-6)
        for x, y in zip(ga, gb):
            assert torch.allclose(x, y, atol=1e-5)


def test_training_loss_adds_the_kl_and_clustering_terms_and_evaluation_draws_nothing():
    data = synthetic.encoded()
    batch = pad_tasks(synthetic.tasks(data), data)
    model, algo = _build()
    backend = get_backend("func")
    # the encoders and the centres get an outer gradient only through the start
    out = backend.run_batch(model, algo, batch, InnerLoop(0, 0.05, False), training=True)
    grads = dict(zip([n for n, _ in model.named_parameters()], synthetic.grads(model, out.query_loss.mean())))
    for prefix in ("latent.", "task_encoder.", "centres", "head.layers.", "head.films."):
        assert any(float(g.abs().max()) > 0 for n, g in grads.items() if n.startswith(prefix)), prefix
    assert float(grads["head.z"].abs().max()) == 0 and float(grads["head.task"].abs().max()) == 0
    # evaluation: the same predictions twice, whatever the random state; nothing changes
    state = copy.deepcopy(model.state_dict())
    torch.manual_seed(1)
    e1 = backend.run_batch(model, algo, batch, InnerLoop(0, 0.05, False), training=False)
    torch.manual_seed(2)
    e2 = backend.run_batch(model, algo, batch, InnerLoop(0, 0.05, False), training=False)
    assert torch.equal(e1.query_pred, e2.query_pred)
    assert float((e1.query_loss - out.query_loss.detach()).abs().max()) > 0   # training adds its terms
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    # the write: the batch's mean assignment becomes the clustering target's cluster share
    algo.apply_writes(out.writes)
    assert torch.allclose(model.cluster_share, torch.stack(out.writes).mean(0))


def _fixture_config(ml100k_raw_dir, **train):
    cfg = ml.load_config().override("data", dataset="fixture", data_dir=str(ml100k_raw_dir))
    cfg = cfg.override("model", name="tanp", field_dim=8, tanp_hidden=16)
    return cfg.override("train", **{"epochs": 4, "meta_batch_size": 8, "seed": 0, "threads": 1, **train})


@pytest.fixture(scope="module")
def tanp_run(tmp_path_factory, ml100k_raw_dir):
    """(run folder, cache, config, RunResult) of a short TaNP run on the ml-100k-raw fixture, with
    train.local_steps 3 (which TaNP must ignore) and a higher outer rate to learn in 4 epochs."""
    out, cache = tmp_path_factory.mktemp("tanp-run"), tmp_path_factory.mktemp("tanp-cache")
    cfg = _fixture_config(ml100k_raw_dir, local_steps=3, outer_lr=0.01, select_metric="mae")
    return out, cache, cfg, ml.run(cfg, out, cache_dir=cache)


def test_learns_on_the_fixtures_without_local_steps(tanp_run):
    _, _, _, result = tanp_run
    history = result.run.history
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    m = result.metrics
    assert m["local_steps_at_evaluation"] == 0 and result.run.inner.steps == 0
    maes = [m["scenarios"][s]["mae"] for s in SCENARIOS]
    refs = [m["references"]["global_mean"][s]["mae"] for s in SCENARIOS]
    assert np.mean(maes) < np.mean(refs), (maes, refs)
    assert "tanp" in history[-1] and len(history[-1]["tanp"]["cluster_share"]) == 10


def test_save_load_evaluate_recommend_round_trip(tanp_run):
    out, cache, _, result = tanp_run
    loaded = ml.load_run(out / "best.pt", cache_dir=cache)
    assert loaded.model_name == "tanp" and loaded.inner.steps == 0
    again = ml.evaluate(loaded)
    for s in SCENARIOS:
        assert again["scenarios"][s]["mae"] == pytest.approx(result.metrics["scenarios"][s]["mae"], abs=1e-9)
    for backend in ("l2l", "higher"):     # no local steps: another backend scores the same
        other = ml.load_run(out / "best.pt", cache_dir=cache, backend=backend)
        assert ml.evaluate(other, catalogue=False)["scenarios"]["warm"]["mae"] == pytest.approx(
            result.metrics["scenarios"]["warm"]["mae"], abs=1e-5)
    rec = ml.load_recommender(out / "best.pt")
    items = rec.catalog.item_ids[:3]
    top = rec.recommend([(items[0], 5.0), (items[1], 1.0)], k=5)
    assert len(top) == 5 and not set(top["item_id"]) & {items[0], items[1]}
    assert list(top["rank_score"]) == sorted(top["rank_score"], reverse=True)
    # the ratings decide the list: the opposite ratings give other scores
    flipped = rec.recommend([(items[0], 1.0), (items[1], 5.0)], k=5)
    assert not np.allclose(top["score"].to_numpy(), flipped["score"].to_numpy())
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(out / "best.pt"), "--cache-dir", str(cache)])
    assert res.exit_code == 0, res.output


def test_compare_accepts_tanp(tmp_path, ml100k_raw_dir):
    res, results = synthetic.compare_fixture(tmp_path, ml100k_raw_dir, "tanp,global-mean", "--epochs", "1",
                                             "--quiet", "--no-catalogue")
    assert res.exit_code == 0, res.output
    assert set(results["results"]) == {"tanp", "global-mean"}
    assert np.isfinite(results["results"]["tanp"]["warm"]["mae"]["mean"])
