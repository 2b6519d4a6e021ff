"""The l2l and higher backends agree, and a hand-worked second-order meta-gradient is matched."""
import pytest
import synthetic
import torch

from mamo_l2l.algorithms import build_model
from mamo_l2l.backends import get_backend
from mamo_l2l.backends.base import InnerLoop
from mamo_l2l.core.config import ModelConfig
from mamo_l2l.data.batching import pad_tasks


def _run(backend, model_name, first_order, steps, clip=0.0):
    data = synthetic.encoded()
    batch = pad_tasks(synthetic.tasks(data), data)
    torch.manual_seed(0)
    model, algo = build_model(model_name, ModelConfig(), data, 3.0)
    inner = InnerLoop(steps, 0.05, first_order, clip=clip)
    out = get_backend(backend).run_batch(model, algo, batch, inner, training=True)
    return out, synthetic.grads(model, out.query_loss.mean())


@pytest.mark.parametrize("model_name", ["mamo", "maml"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 3])
def test_l2l_and_higher_agree(model_name, first_order, steps):
    a, ga = _run("l2l", model_name, first_order, steps)
    b, gb = _run("higher", model_name, first_order, steps)
    assert torch.allclose(a.query_pred, b.query_pred, atol=1e-5)
    assert torch.allclose(a.query_loss, b.query_loss, atol=1e-5)
    assert any(g.abs().max() > 1e-4 for g in ga)          # a meta-gradient that is really there
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, atol=1e-5)
    if model_name == "mamo":
        for wa, wb in zip(a.writes, b.writes):                 # memory writes agree too (g_u, W_pref')
            assert torch.allclose(wa.grad_user, wb.grad_user, atol=1e-5)
            assert torch.allclose(wa.pref, wb.pref, atol=1e-5)


def test_second_order_differs_from_first_order():
    _, g2 = _run("l2l", "mamo", False, 1)
    _, g1 = _run("l2l", "mamo", True, 1)
    assert max((x - y).abs().max().item() for x, y in zip(g1, g2)) > 1e-4


Scalar = synthetic.Scalar


def _meta_grad(backend, steps, second_order, via_override=False):
    learner = Scalar(0.5)
    xs, ys = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 1.0])
    xq, yq = torch.tensor([3.0]), torch.tensor([1.0])
    shift = torch.tensor(0.0, requires_grad=True)
    overrides = {"w": learner.w + shift} if via_override else {}
    adapted = get_backend(backend).adapt(
        learner, overrides, lambda f: ((f(None, xs) - ys) ** 2).mean(), InnerLoop(steps, 0.1, not second_order),
        second_order=second_order)
    loss = ((adapted.forward(None, xq) - yq) ** 2).mean()
    target = shift if via_override else learner.w
    return torch.autograd.grad(loss, target)[0].item(), adapted.params["w"].item()


# By hand (w = 0.5, lr = 0.1, support x = (1, 2), y = (2, 1), query x = 3, y = 1):
#   dLs/dw = mean(2x(wx - y)) = mean(-3, 0) = -1.5  ->  w1 = 0.65;  dw1/dw = 1 - lr*mean(2x^2) = 0.5
#   dLq/dw1 = 2*3*(3*0.65 - 1) = 5.7  ->  second order 5.7*0.5 = 2.85, first order 5.7
#   step 2: dLs/dw1 = mean(2*(-1.35), 4*0.3) = -0.75 -> w2 = 0.725; dLq/dw2 = 6*(2.175 - 1) = 7.05;
#   dw2/dw = 0.25 -> second order 1.7625, first order 7.05
@pytest.mark.parametrize("backend", ["l2l", "higher"])
@pytest.mark.parametrize("steps,second_order,grad,w_adapted", [
    (1, True, 2.85, 0.65), (1, False, 5.7, 0.65), (2, True, 1.7625, 0.725), (2, False, 7.05, 0.725)])
def test_hand_worked_meta_gradient(backend, steps, second_order, grad, w_adapted):
    g, w = _meta_grad(backend, steps, second_order)
    assert w == pytest.approx(w_adapted, abs=1e-6)
    assert g == pytest.approx(grad, abs=1e-5)


@pytest.mark.parametrize("backend", ["l2l", "higher"])
def test_gradient_flows_through_the_start(backend):
    g, _ = _meta_grad(backend, 1, True, via_override=True)
    assert g == pytest.approx(2.85, abs=1e-5)


def test_clip_step_bounds_the_norm_and_keeps_the_direction():
    from mamo_l2l.backends.base import clip_step
    g = [torch.tensor([3.0, 0.0]), None, torch.tensor([[0.0, 4.0]])]     # ||g|| = 5
    out = clip_step(g, 1.0)
    assert out[1] is None
    assert torch.allclose(out[0], torch.tensor([0.6, 0.0])) and torch.allclose(out[2], torch.tensor([[0.0, 0.8]]))
    assert clip_step(g, 10.0)[0] is not g[0] and torch.equal(clip_step(g, 10.0)[0], g[0])   # under the bound: unchanged
    assert clip_step(g, 0.0) is g                                                          # 0 = off


@pytest.mark.parametrize("model_name", ["mamo", "maml"])
@pytest.mark.parametrize("first_order", [False, True])
def test_the_three_backends_agree_with_clipped_local_steps(model_name, first_order):
    """train.local_clip: l2l (its own gradient, then learn2learn's maml_update), higher (grad_callback)
    and func (inside vmap) take the same clipped steps, and the clip really changes them."""
    clip = 0.05
    outs = {b: _run(b, model_name, first_order, 3, clip) for b in ("func", "l2l", "higher")}
    plain, _ = _run("func", model_name, first_order, 3)
    a, ga = outs["func"]
    assert (a.query_loss - plain.query_loss).abs().max() > 1e-4              # the bound bites on these tasks
    for other in ("l2l", "higher"):
        b, gb = outs[other]
        assert torch.allclose(a.query_pred, b.query_pred, atol=1e-5)
        assert torch.allclose(a.query_loss, b.query_loss, atol=1e-5)
        for x, y in zip(ga, gb):
            assert torch.allclose(x, y, atol=1e-5)
