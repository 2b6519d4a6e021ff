"""Baselines through the same pipeline: MeLU, supervised (+ fine-tuning), global-mean, item-mean."""
import copy
import json

import numpy as np
import pytest
import synthetic
import torch
import yaml
from click.testing import CliRunner

from mamo_l2l import api
from mamo_l2l.algorithms import build_model
from mamo_l2l.backends import BACKENDS, get_backend
from mamo_l2l.backends.base import InnerLoop, masked_mse
from mamo_l2l.cli.main import app
from mamo_l2l.core.config import Config, ModelConfig, load_config
from mamo_l2l.data.batching import pad_tasks
from mamo_l2l.data.types import SCENARIOS
from mamo_l2l.evaluation.scoring import predict_tasks
from mamo_l2l.training.fit import fit
from mamo_l2l.training.run import build_run
from mamo_l2l.training.supervised import predict_pairs

BASELINES = ["melu", "supervised", "supervised-finetune", "global-mean", "item-mean"]


def _config(**train):
    return synthetic.small_config(**{"epochs": 2, **train})


@pytest.mark.parametrize("model_name", BASELINES)
def test_each_baseline_trains_and_evaluates(model_name):
    cfg = _config()
    run = fit(synthetic.bundle(cfg), cfg, model_name=model_name, progress=False)
    m = api.evaluate(run)
    assert m["model"] == model_name
    for scen in SCENARIOS:
        r = m["scenarios"][scen]
        assert r["users"] == 4 and np.isfinite(r["mae"]) and 0 <= r["ndcg@3"] <= 1
    trains = model_name not in ("global-mean", "item-mean")
    assert len(run.history) == (2 if trains else 0)
    assert m["local_steps_at_evaluation"] == (1 if model_name in ("melu", "supervised-finetune") else 0)


# ------------------------------------------------------------------ MeLU
def test_melu_network_shape():
    model, _ = build_model("melu", ModelConfig(field_dim=4, hidden=64), synthetic.encoded(), 3.0)
    head = model.head
    assert [tuple(layer.weight.shape) for layer in (head.fc1, head.fc2, head.out)] == [(64, 16), (64, 64), (1, 64)]
    x = torch.cat([torch.zeros(8), torch.ones(8)]).expand(3, 16)
    p_u, p_i = torch.zeros(8), torch.ones(3, 8)
    expected = head.out(torch.relu(head.fc2(torch.relu(head.fc1(x))))).squeeze(-1)
    assert torch.allclose(head(p_u, p_i), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_melu_adapts_only_the_decision_layers(backend):
    data = synthetic.encoded()
    batch = pad_tasks(synthetic.tasks(data, n=1), data).task(0)
    torch.manual_seed(0)
    model, algo = build_model("melu", ModelConfig(hidden=16, field_dim=8), data, 3.0)
    before = copy.deepcopy(model.state_dict())
    p_u = model.user_embedder(batch.user_x[0])
    p_s = model.item_embedder(batch.support_x[0])
    overrides, _ = algo.start(p_u)
    assert overrides == {}
    adapted = get_backend(backend).adapt(
        model.head, overrides, lambda f: masked_mse(f(p_u, p_s), batch.support_y[0], batch.support_mask[0]),
        InnerLoop(5, 0.05, False), second_order=True)
    # what adapts: exactly the head's parameters, every one of them changed by the local steps
    assert set(adapted.params) == {n for n, _ in model.head.named_parameters()}
    for name, p in model.head.named_parameters():
        assert not torch.allclose(adapted.params[name], p), name
    # the field embeddings (and the global head) are untouched by the local steps
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_melu_backends_agree_on_meta_gradients():
    data = synthetic.encoded()
    batch = pad_tasks(synthetic.tasks(data), data)
    outs = []
    for backend in BACKENDS:
        torch.manual_seed(0)
        model, algo = build_model("melu", ModelConfig(hidden=16, field_dim=8), data, 3.0)
        out = get_backend(backend).run_batch(model, algo, batch, InnerLoop(2, 0.05, False), training=True)
        grads = torch.autograd.grad(out.query_loss.mean(), list(model.parameters()), allow_unused=True)
        outs.append((out, [torch.zeros_like(p) if g is None else g for p, g in zip(model.parameters(), grads)]))
    (a, ga) = outs[0]
    assert any(g.abs().max() > 1e-4 for g in ga)
    for b, gb in outs[1:]:
        assert torch.allclose(a.query_pred, b.query_pred, atol=1e-5)
        for x, y in zip(ga, gb):
            assert torch.allclose(x, y, atol=1e-5)


def test_melu_configs_resolve_by_name():
    paper = load_config("melu-paper")
    assert paper.model.name == "melu"
    assert (paper.train.local_lr, paper.train.outer_lr, paper.train.local_steps) == (5e-6, 5e-5, 5)
    five = load_config("melu-5")
    assert five.model.name == "melu" and five.train.local_steps == 5
    assert (five.train.local_lr, five.train.outer_lr) == (Config().train.local_lr, Config().train.outer_lr)
    assert load_config("default").to_dict() == Config().to_dict()


def test_unknown_config_name_lists_the_packaged_ones():
    from mamo_l2l.core.errors import MamoError
    with pytest.raises(MamoError, match="melu-paper"):
        load_config("melu-papr")


# ------------------------------------------------------------------ supervised
def _direct_predictions(model, tasks, data):
    lo, hi = data.rating_range
    out = []
    with torch.no_grad():
        for t in tasks:
            ux = torch.from_numpy(data.user_x[[t.user] * len(t.query_items)])
            ix = torch.from_numpy(data.item_x[t.query_items])
            out.append(predict_pairs(model, ux, ix).clamp(lo, hi).numpy())
    return out


def test_supervised_trains_without_adaptation():
    cfg = _config(epochs=3, patience=10)
    bundle = synthetic.bundle(cfg)
    init = build_run(bundle, cfg, "supervised")
    run = fit(bundle, cfg, model_name="supervised", progress=False)
    assert run.inner.steps == 0
    # training changed the parameters and lowered the training loss
    assert any(not torch.equal(a, b) for a, b in zip(init.model.state_dict().values(),
                                                      run.model.state_dict().values()))
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    # evaluation = prediction from the global parameters, pair by pair
    tasks = bundle.splits.test["user_cold"]
    got = predict_tasks(run.model, run.algorithm, run.backend, tasks, bundle.data, run.inner)
    for g, e in zip(got, _direct_predictions(run.model, tasks, bundle.data)):
        assert np.allclose(g, e, atol=1e-5)


def test_supervised_finetune_changes_predictions_of_the_same_checkpoint(tmp_path):
    cfg = _config()
    bundle = synthetic.bundle(cfg)
    fit(bundle, cfg, model_name="supervised", out_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / "best.pt", weights_only=True)["state_dict"]
    plain, tuned = build_run(bundle, cfg, "supervised"), build_run(bundle, cfg, "supervised-finetune")
    plain.model.load_state_dict(state)
    tuned.model.load_state_dict(state)
    assert (plain.inner.steps, tuned.inner.steps) == (0, cfg.train.local_steps)
    tasks = bundle.splits.test["warm"]
    a = predict_tasks(plain.model, plain.algorithm, plain.backend, tasks, bundle.data, plain.inner)
    b = predict_tasks(tuned.model, tuned.algorithm, tuned.backend, tasks, bundle.data, tuned.inner)
    assert max(np.abs(x - y).max() for x, y in zip(a, b)) > 1e-4
    # with 0 local steps fine-tuning is exactly the plain prediction
    zero = build_run(bundle, _config(local_steps=0), "supervised-finetune")
    zero.model.load_state_dict(state)
    c = predict_tasks(zero.model, zero.algorithm, zero.backend, tasks, bundle.data, zero.inner)
    for x, y in zip(a, c):
        assert np.array_equal(x, y)
    # evaluation changed no parameter
    for k, v in tuned.model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_supervised_resume_ends_like_an_uninterrupted_run(tmp_path):
    cfg = _config(epochs=3, patience=10)
    full = fit(synthetic.bundle(cfg), cfg, model_name="supervised", out_dir=tmp_path / "a", progress=False)
    fit(synthetic.bundle(cfg), cfg, model_name="supervised", out_dir=tmp_path / "b", progress=False,
        stop_after_epoch=1)
    resumed = fit(synthetic.bundle(cfg), cfg, model_name="supervised", out_dir=tmp_path / "b", resume=True,
                  progress=False)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    # compared as JSON text: a list metric is NaN where fewer than two users are scored (NaN != NaN)
    assert (json.dumps(api.evaluate(full)["scenarios"], sort_keys=True)
            == json.dumps(api.evaluate(resumed)["scenarios"], sort_keys=True))


# ------------------------------------------------------------------ mean references as models
@pytest.mark.parametrize("model_name,ref", [("global-mean", "global_mean"), ("item-mean", "item_mean")])
def test_mean_models_equal_the_references(model_name, ref):
    cfg = _config()
    m = api.evaluate(fit(synthetic.bundle(cfg), cfg, model_name=model_name, progress=False))
    assert json.dumps(m["scenarios"], sort_keys=True) == json.dumps(m["references"][ref], sort_keys=True)


def test_item_mean_by_hand():
    cfg = _config()
    bundle = synthetic.bundle(cfg)
    run = fit(bundle, cfg, model_name="item-mean", progress=False)
    ratings = {}
    for t in bundle.splits.train:
        for i, r in zip(np.concatenate([t.support_items, t.query_items]),
                        np.concatenate([t.support_ratings, t.query_ratings])):
            ratings.setdefault(int(i), []).append(float(r))
    overall = sum(sum(v) for v in ratings.values()) / sum(len(v) for v in ratings.values())
    task = bundle.splits.test["item_cold"][0]
    got = run.algorithm.predict_direct([task])[0]
    want = [sum(ratings[i]) / len(ratings[i]) if i in ratings else overall for i in task.query_items.tolist()]
    assert np.allclose(got, want)


# ------------------------------------------------------------------ CLI: train, metrics.json, evaluate
@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump({"model": {"field_dim": 8, "embed_dim": 8, "hidden": 16},
                                    "train": {"meta_batch_size": 8, "batch_size": 64}}))
    return str(path)


@pytest.mark.parametrize("model_name", BASELINES)
def test_cli_train_then_evaluate_every_baseline(model_name, tmp_path, ml100k_raw_dir, small_config):
    out, cache = tmp_path / "r", tmp_path / "cache"
    res = CliRunner().invoke(app, ["train", "--dataset", "fixture", "--data-dir", str(ml100k_raw_dir),
                                   "--config", small_config, "--model", model_name, "--epochs", "1",
                                   "--warm-eval", "seen", "--out", str(out), "--cache-dir", str(cache), "--quiet"])
    assert res.exit_code == 0, res.output
    first = json.loads((out / "metrics.json").read_text())
    assert first["model"] == model_name and first["warm_eval"] == "seen"
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(out / "best.pt"), "--cache-dir", str(cache),
                                   "--json", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "m.json").read_text())
    assert json.dumps(again["scenarios"], sort_keys=True) == json.dumps(first["scenarios"], sort_keys=True)


def test_cli_train_with_a_named_config(tmp_path, ml100k_raw_dir):
    out = tmp_path / "r"
    res = CliRunner().invoke(app, ["train", "--dataset", "fixture", "--data-dir", str(ml100k_raw_dir),
                                   "--config", "melu-paper", "--epochs", "1", "--out", str(out),
                                   "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert res.exit_code == 0, res.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"]["name"] == "melu" and saved["train"]["local_lr"] == 5e-6
