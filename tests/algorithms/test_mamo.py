"""MAMO's memories, gradients and evaluation invariants (docs/algorithm.md)."""
import copy
import math

import numpy as np
import pytest
import synthetic
import torch

from mamo_l2l.algorithms import build_model
from mamo_l2l.backends import get_backend
from mamo_l2l.backends.base import InnerLoop
from mamo_l2l.core.config import ModelConfig
from mamo_l2l.data.batching import pad_tasks
from mamo_l2l.evaluation.scoring import predict_tasks
from mamo_l2l.models.memory import MAMOMemory, MemoryWrite

E = math.e
A0, A1 = E / (E + 1), 1 / (E + 1)     # softmax([1, 0]) by hand


def _memory(alpha=0.5, beta=0.05, gamma=0.1, update="paper"):
    mem = MAMOMemory(2, 2, torch.nn.Linear(1, 1), 2, temperature=1.0, alpha=alpha, beta=beta, gamma=gamma,
                     update=update)
    mem.profile.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    mem.user_bias.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))       # |theta_u| = 2 (weight + bias)
    mem.preference.copy_(torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[0.0, 2.0], [2.0, 0.0]]]))
    return mem


def test_memory_read_matches_hand_values():
    r = _memory().read(torch.tensor([1.0, 0.0]))    # cos = (1, 0)
    assert r.attention.tolist() == pytest.approx([A0, A1], abs=1e-6)
    assert r.bias.tolist() == pytest.approx([A0 * 1 + A1 * 3, A0 * 2 + A1 * 4], abs=1e-6)
    np.testing.assert_allclose(r.pref.numpy(), [[A0, 2 * A1], [2 * A1, A0]], atol=1e-6)


def test_temperature_sharpens_attention():
    mem = _memory()
    mem.temperature = 0.5
    a = mem.attention(torch.tensor([1.0, 0.0]))
    assert a[0].item() == pytest.approx(math.exp(2) / (math.exp(2) + 1), abs=1e-6)


def test_memory_write_matches_hand_values():
    mem = _memory(alpha=0.5, beta=0.1, gamma=0.2)
    w = MemoryWrite(torch.tensor([0.75, 0.25]), torch.tensor([2.0, 0.0]), torch.tensor([4.0, -4.0]),
                    torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    mem.write([w])
    # M_P <- 0.5 * a (x) p + 0.5 * M_P
    np.testing.assert_allclose(mem.profile.numpy(), [[0.5 * 0.75 * 2 + 0.5, 0.0], [0.5 * 0.25 * 2, 0.5]], atol=1e-6)
    # M_U <- 0.1 * a (x) g + 0.9 * M_U
    np.testing.assert_allclose(mem.user_bias.numpy(), [[0.3 + 0.9, -0.3 + 1.8], [0.1 + 2.7, -0.1 + 3.6]], atol=1e-6)
    # M_UI <- 0.2 * a (x) W' + 0.8 * M_UI
    np.testing.assert_allclose(mem.preference[0].numpy(), [[0.15 + 0.8, 0.15], [0.15, 0.15 + 0.8]], atol=1e-6)
    np.testing.assert_allclose(mem.preference[1].numpy(), [[0.05, 0.05 + 1.6], [0.05 + 1.6, 0.05]], atol=1e-6)


def test_interpolating_write_matches_hand_values():
    mem = _memory(alpha=0.5, beta=0.1, gamma=0.2, update="interpolate")
    w = MemoryWrite(torch.tensor([0.75, 0.25]), torch.tensor([2.0, 0.0]), torch.tensor([4.0, -4.0]),
                    torch.tensor([[1.0, 1.0], [1.0, 1.0]]))
    mem.write([w])
    # M[k] <- M[k] + rate * a_k * (v - M[k])
    np.testing.assert_allclose(mem.profile.numpy(), [[1 + 0.375 * 1, 0.0], [0.125 * 2, 1 - 0.125]], atol=1e-6)
    np.testing.assert_allclose(mem.user_bias.numpy(), [[1 + 0.075 * 3, 2 + 0.075 * -6],
                                                      [3 + 0.025 * 1, 4 + 0.025 * -8]], atol=1e-6)
    np.testing.assert_allclose(mem.preference[0].numpy(), [[1.0, 0.15], [0.15, 1.0]], atol=1e-6)
    np.testing.assert_allclose(mem.preference[1].numpy(), [[0.05, 2 - 0.05], [2 - 0.05, 0.05]], atol=1e-6)


def test_paper_rule_shrinks_memory_under_uniform_attention_interpolation_does_not():
    # The reason for the default (docs/algorithm.md): with a_u = (1/2, 1/2) and the written value
    # equal to what was read, the paper's rule decays every slot; interpolation keeps it.
    for update, expected in (("paper", 0.9 * 1 + 0.1 * 0.5), ("interpolate", 1.0)):
        mem = _memory(gamma=0.1, update=update)
        mem.preference.copy_(torch.ones(2, 2, 2))
        w = MemoryWrite(torch.tensor([0.5, 0.5]), torch.zeros(2), torch.zeros(2), torch.ones(2, 2))
        mem.write([w])
        np.testing.assert_allclose(mem.preference.numpy(), np.full((2, 2, 2), expected), atol=1e-6)


def test_writes_apply_in_order():
    one = MemoryWrite(torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0]), torch.zeros(2), torch.zeros(2, 2))
    two = MemoryWrite(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]), torch.zeros(2), torch.zeros(2, 2))
    a, b = _memory(), _memory()
    a.write([one, two])
    b.write([two, one])
    # slot 0 after (one, two): 0.5*(0,2) + 0.5*(0.5*(2,0) + 0.5*(1,0)) = (0.75, 1.0)
    assert a.profile[0].tolist() == pytest.approx([0.75, 1.0])
    assert b.profile[0].tolist() == pytest.approx([1.25, 0.5])


def _setup(name="mamo"):
    data = synthetic.encoded()
    torch.manual_seed(0)
    model, algo = build_model(name, ModelConfig(), data, 3.0)
    return data, model, algo


def test_gradients_reach_embeddings_and_global_networks():
    data, model, algo = _setup()
    batch = pad_tasks(synthetic.tasks(data), data)
    out = get_backend("l2l").run_batch(model, algo, batch, InnerLoop(1, 0.05, False), training=True)
    out.query_loss.mean().backward()
    for name in ("user_embedder.tables.0.weight", "item_embedder.tables.1.weight", "head.user_net.0.weight",
                 "head.item_net.0.weight", "head.rating_net.0.weight", "head.rating_net.2.bias"):
        g = dict(model.named_parameters())[name].grad
        assert g is not None and g.abs().max() > 0, name
    # MAMO replaces W_pref by the memory read: its global value gets no gradient.
    g = model.head.pref.weight.grad
    assert g is None or not g.any()
    for name, buf in model.named_buffers():
        assert not buf.requires_grad, name


def test_attention_path_carries_gradient():
    data, model, algo = _setup()
    p_u = model.user_embedder(torch.from_numpy(data.user_x[0]))
    overrides, _ = algo.start(p_u)
    g = torch.autograd.grad(sum(v.sum() for v in overrides.values()), p_u)[0]
    assert g.abs().max() > 1e-6
    # with identical memory slots the attention cannot matter: the gradient must vanish
    with torch.no_grad():   # M_UI is a parameter when learned (model.preference_memory)
        model.memory.user_bias.copy_(model.memory.user_bias[:1].expand_as(model.memory.user_bias))
        model.memory.preference.copy_(model.memory.preference[:1].expand_as(model.memory.preference))
    p_u = model.user_embedder(torch.from_numpy(data.user_x[0]))
    overrides, _ = algo.start(p_u)
    g = torch.autograd.grad(sum(v.sum() for v in overrides.values()), p_u, allow_unused=True)[0]
    assert g is None or g.abs().max() < 1e-6


def test_personalised_start_formula():
    data, model, algo = _setup()
    p_u = model.user_embedder(torch.from_numpy(data.user_x[3]))
    read = model.memory.read(p_u)
    overrides, _ = algo.start(p_u)
    flat = torch.cat([model.head.user_net[0].weight.reshape(-1), model.head.user_net[0].bias,
                      model.head.user_net[2].weight.reshape(-1), model.head.user_net[2].bias])
    start = torch.cat([overrides[n].reshape(-1) for n in ("user_net.0.weight", "user_net.0.bias",
                                                          "user_net.2.weight", "user_net.2.bias")])
    assert torch.allclose(start, flat - 0.01 * read.bias, atol=1e-7)
    assert torch.allclose(overrides["pref.weight"], read.pref)


def test_ablations_start_differently():
    data, model, algo = _setup("mamo-no-feature-memory")
    p_u = model.user_embedder(torch.from_numpy(data.user_x[0]))
    assert set(algo.start(p_u)[0]) == {"pref.weight"}
    data, model, algo = _setup("mamo-no-task-memory")
    assert "pref.weight" not in algo.start(model.user_embedder(torch.from_numpy(data.user_x[0])))[0]


@pytest.mark.parametrize("backend", ["l2l", "higher"])
def test_evaluation_changes_nothing_and_ignores_order(backend):
    data, model, algo = _setup()
    tasks = synthetic.tasks(data, n=8)
    before = copy.deepcopy(model.state_dict())
    inner = InnerLoop(3, 0.05, False)
    preds = predict_tasks(model, algo, get_backend(backend), tasks, data, inner)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert all(p.grad is None for p in model.parameters())
    rev = predict_tasks(model, algo, get_backend(backend), tasks[::-1], data, inner)[::-1]
    for a, b in zip(preds, rev):
        np.testing.assert_allclose(a, b, atol=1e-6)
    lo, hi = data.rating_range
    assert all(((p >= lo) & (p <= hi)).all() for p in preds)
