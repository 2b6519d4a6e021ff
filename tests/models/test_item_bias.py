"""The item bias (model.item_bias, docs/algorithm.md "The recommender"): where it starts, that it
is global (never adapted per user), and that every backend still computes the same thing."""
import types

import numpy as np
import pytest
import synthetic
import torch

from mamo_l2l.backends import get_backend
from mamo_l2l.backends.base import InnerLoop
from mamo_l2l.data.batching import pad_tasks
from mamo_l2l.data.identity import add_item_identity


def _data_and_tasks():
    return synthetic.with_identity()


def _build(model_name="mamo", item_bias=True, data=None):
    return synthetic.build_with_identity(model_name, data, item_bias=item_bias)


def _bias_of(model, data, items):
    x = torch.from_numpy(np.asarray(data.item_x)[items].astype(np.int64))
    return model.item_embedder(x)[:, -1].detach().numpy()


def test_item_bias_starts_at_training_means_shrunk_toward_the_global_mean():
    data, _ = _data_and_tasks()
    model, _ = _build(data=data)
    # By hand: item 0 rated 5, 5, 2 (mean 4), item 1 rated 1 once; all ratings 5, 5, 2, 1: mu = 3.25.
    # k = 2: b_0 = (12 + 2 * 3.25) / (3 + 2) - 3.25 = 0.45; b_1 = (1 + 6.5) / 3 - 3.25 = -0.75.
    model.init_item_bias(np.array([0, 0, 0, 1]), np.array([5.0, 5.0, 2.0, 1.0]), data.item_x, 2.0)
    np.testing.assert_allclose(_bias_of(model, data, [0, 1]), [0.45, -0.75], atol=1e-6)
    # k = 0 is the plain item mean minus the global mean
    model.init_item_bias(np.array([0, 0, 0, 1]), np.array([5.0, 5.0, 2.0, 1.0]), data.item_x, 0.0)
    np.testing.assert_allclose(_bias_of(model, data, [0, 1]), [0.75, -2.25], atol=1e-6)


def test_items_without_training_ratings_have_no_bias():
    data = synthetic.encoded()
    train = synthetic.tasks(data, n=2)
    data = add_item_identity(data, types.SimpleNamespace(train=train))
    model, _ = _build(data=data)
    rated = np.unique(np.concatenate([np.r_[t.support_items, t.query_items] for t in train]))
    model.init_item_bias(rated, np.full(rated.size, 5.0), data.item_x, 1.0)   # (5 - 5) / 2 = 0 everywhere...
    model.init_item_bias(rated[:1], np.array([5.0]), data.item_x, 0.0)         # ...but mu = 5 here: b = 0
    unrated = np.setdiff1d(np.arange(len(data.item_ids)), rated)
    assert unrated.size and np.all(_bias_of(model, data, unrated) == 0.0)
    model.init_item_bias(np.array([rated[0], rated[1]]), np.array([5.0, 1.0]), data.item_x, 0.0)
    np.testing.assert_allclose(_bias_of(model, data, rated[:2]), [2.0, -2.0])
    assert np.all(_bias_of(model, data, unrated) == 0.0)


def test_the_bias_adds_to_the_prediction_and_is_not_adapted():
    data, tasks = _data_and_tasks()
    model, algo = _build(data=data)
    assert not any("bias.weight" == n for n, _ in model.head.named_parameters())   # global, outside the head
    user_x = torch.from_numpy(data.user_x[:1])
    item_x = torch.from_numpy(data.item_x[:5])
    before = model(user_x[0], item_x).detach()
    model.init_item_bias(np.arange(5), np.array([5.0, 4, 3, 2, 1]), data.item_x, 0.0)   # mu = 3
    after = model(user_x[0], item_x).detach()
    np.testing.assert_allclose((after - before).numpy(), [2.0, 1, 0, -1, -2], atol=1e-5)


@pytest.mark.parametrize("model_name", ["mamo", "maml"])
@pytest.mark.parametrize("other", ["l2l", "higher"])
def test_backends_agree_with_the_item_bias(model_name, other):
    data, tasks = _data_and_tasks()
    outs = {}
    for backend in ("func", other):
        model, algo = _build(model_name, data=data)
        items = np.concatenate([np.r_[t.support_items, t.query_items] for t in tasks])
        ratings = np.concatenate([np.r_[t.support_ratings, t.query_ratings] for t in tasks]).astype(float)
        model.init_item_bias(items, ratings, data.item_x, 3.0)
        out = get_backend(backend).run_batch(model, algo, pad_tasks(tasks, data), InnerLoop(2, 0.05, False),
                                             training=True)
        loss = out.query_loss.mean()
        bias_grad = torch.autograd.grad(loss, model.item_embedder.bias.weight, retain_graph=True)[0]
        outs[backend] = (out, bias_grad, synthetic.grads(model, loss))
    (a, ba, ga), (b, bb, gb) = outs["func"], outs[other]
    assert torch.allclose(a.query_pred, b.query_pred, atol=1e-5)
    assert ba.abs().max() > 1e-4 and torch.allclose(ba, bb, atol=1e-5)   # the outer gradient reaches b_i
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, atol=1e-5)


def test_without_an_identity_field_there_is_no_bias():
    model, _ = _build(data=synthetic.encoded())
    assert model.item_embedder.bias is None
    model.init_item_bias(np.array([0]), np.array([5.0]), synthetic.encoded().item_x, 1.0)   # no-op, no error


def test_identity_dropout_is_seeded_per_epoch_and_only_in_training_mode():
    data, _ = _data_and_tasks()
    model, _ = _build(data=data)
    emb = model.item_embedder
    model.init_item_bias(np.arange(40), np.linspace(1, 5, 40), data.item_x, 0.0)
    x = torch.from_numpy(np.asarray(data.item_x, dtype=np.int64))
    full = emb(x).detach()
    model.begin_epoch(0.5, seed=3, epoch=2)
    first = emb.dropped.clone()
    model.begin_epoch(0.5, seed=3, epoch=2)
    assert torch.equal(emb.dropped, first)                       # a function of (seed, epoch)
    model.begin_epoch(0.5, seed=3, epoch=3)
    assert not torch.equal(emb.dropped, first)
    assert not emb.dropped[:3].any()                             # PAD, UNKNOWN, OTHER never dropped
    assert "dropped" not in model.state_dict().keys() and "item_embedder.dropped" not in model.state_dict()
    col = [f for f in data.item_layout if f.identity][0].start
    gone = emb.dropped[x[:, col]]
    assert 0 < int(gone.sum()) < len(gone)
    model.train()
    dropped_out = emb(x).detach()
    unknown = x.clone()
    unknown[:, col] = 1                                          # UNKNOWN
    as_new = emb(unknown).detach()
    np.testing.assert_allclose(dropped_out[gone], as_new[gone])              # read as a new item: no bias
    assert torch.all(dropped_out[gone][:, -1] == 0)
    np.testing.assert_allclose(dropped_out[~gone], full[~gone])
    model.eval()
    np.testing.assert_allclose(emb(x).detach(), full)                         # evaluation: never dropped
    model.begin_epoch(0.0, seed=3, epoch=4)
    model.train()
    np.testing.assert_allclose(emb(x).detach(), full)                         # share 0: nothing dropped


def test_backends_agree_under_identity_dropout():
    data, tasks = _data_and_tasks()
    preds = {}
    for backend in ("func", "l2l"):
        model, algo = _build("mamo", data=data)
        model.begin_epoch(0.5, seed=0, epoch=1)
        model.train()
        out = get_backend(backend).run_batch(model, algo, pad_tasks(tasks, data), InnerLoop(1, 0.05, False),
                                             training=True)
        preds[backend] = (out.query_pred, synthetic.grads(model, out.query_loss.mean()))
    assert torch.allclose(preds["func"][0], preds["l2l"][0], atol=1e-5)
    for a, b in zip(preds["func"][1], preds["l2l"][1]):
        assert torch.allclose(a, b, atol=1e-5)


def test_training_ends_without_identity_dropout():
    import mamo_l2l as ml
    cfg = synthetic.small_config(epochs=2)
    cfg.model.identity_dropout = 0.5
    bundle = synthetic.bundle(cfg)
    data = add_item_identity(bundle.data, types.SimpleNamespace(train=bundle.splits.train))
    from mamo_l2l.training.run import DataBundle
    run = ml.fit(DataBundle(data, bundle.splits, bundle.encoders, cfg), cfg, model_name="mamo", progress=False)
    assert run.model.item_embedder.dropped is None
