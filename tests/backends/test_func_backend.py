"""The batched torch.func backend equals the l2l reference: predictions, losses, meta-gradients,
memory writes, padding invariance, a whole training run, and the hand-worked meta-gradient."""
import copy

import numpy as np
import pytest
import synthetic
import torch
from torch import nn

from mamo_l2l import api
from mamo_l2l.algorithms import build_model
from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.backends import BACKENDS, get_backend
from mamo_l2l.backends.base import InnerLoop
from mamo_l2l.backends.func import FuncBackend
from mamo_l2l.core.config import Config, ModelConfig
from mamo_l2l.data.batching import pad_tasks
from mamo_l2l.data.types import Task
from mamo_l2l.evaluation.scoring import predict_tasks
from mamo_l2l.training.fit import fit

MODELS = ["mamo", "maml", "mamo-no-feature-memory", "mamo-no-task-memory", "melu"]
NO_WRITES = ("maml", "melu")
WRITE_FIELDS = ("attention", "profile", "grad_user", "pref")


def _setup(model_name):
    data = synthetic.encoded()
    torch.manual_seed(0)
    model, algo = build_model(model_name, ModelConfig(), data, 3.0)
    return data, model, algo


def _run(backend, model_name, tasks, first_order=False, steps=1, training=True):
    data, model, algo = _setup(model_name)
    batch = pad_tasks(tasks(data) if callable(tasks) else tasks, data)
    out = get_backend(backend).run_batch(model, algo, batch, InnerLoop(steps, 0.05, first_order), training=training)
    grads = synthetic.grads(model, out.query_loss.mean()) if training else None
    return out, grads, model


def test_func_is_registered():
    assert "func" in BACKENDS
    assert isinstance(get_backend("func"), FuncBackend)


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 3])
def test_func_equals_l2l(model_name, first_order, steps):
    a, ga, _ = _run("l2l", model_name, synthetic.tasks, first_order, steps)
    b, gb, _ = _run("func", model_name, synthetic.tasks, first_order, steps)
    assert torch.allclose(a.query_pred, b.query_pred, atol=1e-5)
    assert torch.allclose(a.query_loss, b.query_loss, atol=1e-5)
    assert b.query_loss.requires_grad
    assert any(g.abs().max() > 1e-4 for g in ga)          # a meta-gradient that is really there
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, atol=1e-5)
    assert len(b.writes) == len(a.writes) == 6
    if model_name in NO_WRITES:
        assert all(w is None for w in b.writes)
    else:
        for wa, wb in zip(a.writes, b.writes):                 # per task, in batch order
            for f in WRITE_FIELDS:
                x, y = getattr(wa, f), getattr(wb, f)
                assert x.shape == y.shape and not y.requires_grad, f
                assert torch.allclose(x, y, atol=1e-5), f
        assert max(w.grad_user.abs().max() for w in b.writes) > 1e-4


def test_first_and_second_order_differ_in_func():
    _, g2, _ = _run("func", "mamo", synthetic.tasks, first_order=False)
    _, g1, _ = _run("func", "mamo", synthetic.tasks, first_order=True)
    assert max((x - y).abs().max().item() for x, y in zip(g1, g2)) > 1e-4


def _task(data, seed, n_support, n_query, user):
    rng = np.random.default_rng(seed)
    items = rng.choice(len(data.item_ids), n_support + n_query, replace=False)
    ratings = rng.integers(1, 6, items.size).astype(np.float32)
    return Task(user, items[n_query:], ratings[n_query:], items[:n_query], ratings[:n_query])


@pytest.mark.parametrize("model_name", ["mamo", "maml"])
@pytest.mark.parametrize("first_order", [False, True])
def test_padding_changes_nothing(model_name, first_order):
    data = synthetic.encoded()
    short = _task(data, 1, 4, 3, user=2)
    longer = _task(data, 2, 15, 8, user=5)   # longer support and query: short is padded in both
    alone, g_alone, _ = _run("func", model_name, [short], first_order, steps=2)
    for tasks, k in (([short, longer], 0), ([longer, short], 1)):
        batch = pad_tasks(tasks, data)
        assert batch.support_x.shape[1] == 15 and batch.query_x.shape[1] == 8
        _, model, algo = _setup(model_name)
        out = get_backend("func").run_batch(model, algo, batch, InnerLoop(2, 0.05, first_order), training=True)
        assert out.query_loss[k].item() == pytest.approx(alone.query_loss[0].item(), abs=1e-6)
        assert torch.allclose(out.query_pred[k, :3], alone.query_pred[0], atol=1e-6)
        assert torch.equal(out.query_pred[k, 3:], torch.zeros(5))   # padded predictions are 0
        for x, y in zip(synthetic.grads(model, out.query_loss[k]), g_alone):
            assert torch.allclose(x, y, atol=1e-6)
        if model_name == "mamo":
            for f in WRITE_FIELDS:
                assert torch.allclose(getattr(out.writes[k], f), getattr(alone.writes[0], f), atol=1e-6), f


@pytest.mark.parametrize("model_name", ["mamo", "maml", "melu", "supervised-finetune"])
def test_evaluation_equals_l2l_changes_nothing_and_ignores_chunking(model_name):
    data, model, algo = _setup(model_name)
    tasks = synthetic.tasks(data, n=9, seed=3)
    inner = InnerLoop(2, 0.05, False)
    before = copy.deepcopy(model.state_dict())
    func = get_backend("func")
    preds = predict_tasks(model, algo, func, tasks, data, inner)
    for k, v in model.state_dict().items():
        assert torch.equal(before[k], v), k
    assert all(p.grad is None for p in model.parameters())
    ref = predict_tasks(model, algo, get_backend("l2l"), tasks, data, inner)
    func.eval_chunk = 2                                   # other chunks, other padding: same numbers
    small = predict_tasks(model, algo, func, tasks[::-1], data, inner)[::-1]
    for a, b, c, t in zip(preds, ref, small, tasks):
        assert a.shape == (len(t.query_items),)
        np.testing.assert_allclose(a, b, atol=1e-5)
        np.testing.assert_allclose(a, c, atol=1e-6)
    out = func.run_batch(model, algo, pad_tasks(tasks, data), inner, training=False)
    assert not out.query_loss.requires_grad and all(w is None for w in out.writes)


def _small_config(backend):
    cfg = Config()
    cfg.train.epochs = 2
    cfg.train.meta_batch_size = 4
    cfg.train.patience = 10
    cfg.train.backend = backend
    cfg.model.hidden = 16
    cfg.model.embed_dim = 8
    cfg.model.field_dim = 8
    return cfg.validate()


@pytest.mark.parametrize("model_name", ["mamo", "maml", "melu"])
def test_training_run_equals_l2l(model_name):
    runs = {}
    for backend in ("l2l", "func"):
        cfg = _small_config(backend)
        runs[backend] = fit(synthetic.bundle(cfg), cfg, model_name=model_name, progress=False)
    a, b = runs["l2l"], runs["func"]
    assert [h["epoch"] for h in b.history] == [1, 2] and b.best_epoch == a.best_epoch
    sa, sb = a.model.state_dict(), b.model.state_dict()
    torch.manual_seed(0)
    init = build_model(model_name, _small_config("l2l").model, a.bundle.data, 3.0)[0].state_dict()
    assert sa.keys() == sb.keys()
    moved = 0
    for k in sa:
        assert torch.allclose(sa[k], sb[k], atol=1e-5), k
        moved += not torch.allclose(sa[k], init[k], atol=1e-4)
    assert moved >= 5                                       # the runs really trained (and wrote memory)
    if model_name == "mamo":
        assert not torch.allclose(sb["memory.profile"], init["memory.profile"], atol=1e-4)
    for h1, h2 in zip(a.history, b.history):
        for key in ("train_loss", "valid_mae", "valid_rmse", "valid_ndcg@3"):
            assert h1[key] == pytest.approx(h2[key], abs=1e-5), key
    ma, mb = api.evaluate(a)["scenarios"], api.evaluate(b)["scenarios"]
    assert ma.keys() == mb.keys()
    for scen in ma:
        for key, value in ma[scen].items():
            assert mb[scen][key] == pytest.approx(value, abs=1e-5, nan_ok=True), (scen, key)


Scalar = synthetic.Scalar


def _scalar_meta_grad(steps, second_order, via_override=False):
    learner = Scalar(0.5)
    xs, ys = torch.tensor([1.0, 2.0]), torch.tensor([2.0, 1.0])
    xq, yq = torch.tensor([3.0]), torch.tensor([1.0])
    shift = torch.tensor(0.0, requires_grad=True)
    overrides = {"w": learner.w + shift} if via_override else {}
    adapted = FuncBackend().adapt(learner, overrides, lambda f: ((f(None, xs) - ys) ** 2).mean(),
                                  InnerLoop(steps, 0.1, not second_order), second_order=second_order)
    loss = ((adapted.forward(None, xq) - yq) ** 2).mean()
    target = shift if via_override else learner.w
    return torch.autograd.grad(loss, target)[0].item(), adapted.params["w"].item()


# By hand (w = 0.5, lr = 0.1, support x = (1, 2), y = (2, 1), query x = 3, y = 1):
#   dLs/dw = mean(2x(wx - y)) = mean(-3, 0) = -1.5  ->  w1 = 0.65;  dw1/dw = 1 - lr*mean(2x^2) = 0.5
#   dLq/dw1 = 2*3*(3*0.65 - 1) = 5.7  ->  second order 5.7*0.5 = 2.85, first order 5.7
#   step 2: dLs/dw1 = mean(2*(-1.35), 4*0.3) = -0.75 -> w2 = 0.725; dLq/dw2 = 6*(2.175 - 1) = 7.05;
#   dw2/dw = 0.25 -> second order 1.7625, first order 7.05
@pytest.mark.parametrize("steps,second_order,grad,w_adapted", [
    (1, True, 2.85, 0.65), (1, False, 5.7, 0.65), (2, True, 1.7625, 0.725), (2, False, 7.05, 0.725)])
def test_hand_worked_meta_gradient(steps, second_order, grad, w_adapted):
    g, w = _scalar_meta_grad(steps, second_order)
    assert w == pytest.approx(w_adapted, abs=1e-6)
    assert g == pytest.approx(grad, abs=1e-5)
    g, _ = _scalar_meta_grad(steps, second_order, via_override=True)   # through the algorithm's start
    assert g == pytest.approx(grad, abs=1e-5)


class _ScalarHead(nn.Module):
    """A head f(p_u, p_i) = w * p_i[:, 0]: the hand-worked learner, batched through run_batch."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(0.5))

    def forward(self, p_u, p_i):
        return self.w * p_i[..., 0]


class _Identity(nn.Module):
    def forward(self, x):
        return x.to(torch.float32)


def test_hand_worked_meta_gradient_batched():
    """Two copies of the hand-worked task, one padded, in one vmapped call: each query loss's
    gradient is 2.85 (one second-order step), so the mean's is 2.85 too; adapted w = 0.65."""
    model = nn.Module()
    model.user_embedder, model.item_embedder, model.head = _Identity(), _Identity(), _ScalarHead()
    from mamo_l2l.data.batching import PaddedBatch
    batch = PaddedBatch(user_x=torch.zeros(2, 1),
                        support_x=torch.tensor([[[1.0], [2.0], [0.0]], [[2.0], [1.0], [7.0]]]),
                        support_y=torch.tensor([[2.0, 1.0, 0.0], [1.0, 2.0, 5.0]]),
                        support_mask=torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]),
                        query_x=torch.tensor([[[3.0]], [[3.0]]]), query_y=torch.tensor([[1.0], [1.0]]),
                        query_mask=torch.ones(2, 1))
    out = FuncBackend().run_batch(model, Algorithm(model), batch, InnerLoop(1, 0.1, False), training=True)
    # query loss at w1 = 0.65: (3 * 0.65 - 1)^2 = 0.9025
    assert out.query_loss.tolist() == pytest.approx([0.9025, 0.9025], abs=1e-6)
    g = torch.autograd.grad(out.query_loss.mean(), model.head.w)[0].item()
    assert g == pytest.approx(2.85, abs=1e-5)


class _Recorder(Algorithm):
    """A non-MAMO algorithm with a write: shifts the last rating bias by sum(p_u) and writes a dict
    (the task's query loss at the adapted parameters and p_u). The backend must stay generic."""

    name = "recorder"
    BIAS = "rating_net.2.bias"

    def start(self, p_u):
        return {self.BIAS: self.model.head.rating_net[2].bias + 0.01 * p_u.sum()}, p_u

    def functional_write(self, p_u, context, adapted, query_loss):
        return {"loss": query_loss(adapted).detach(), "p_u": context.detach()}


def test_generic_algorithm_writes_come_back_per_task():
    """One functional_write serves every backend: called per task by l2l/higher, vmapped by func."""
    data, model, _ = _setup("maml")
    algo = _Recorder(model)
    batch = pad_tasks(synthetic.tasks(data), data)
    outs = {b: get_backend(b).run_batch(model, algo, batch, InnerLoop(1, 0.05, False), training=True)
            for b in BACKENDS}
    for name, out in outs.items():
        for k, (wa, wb) in enumerate(zip(outs["l2l"].writes, out.writes)):
            assert set(wb) == {"loss", "p_u"}, name
            assert wb["loss"].item() == pytest.approx(out.query_loss[k].item(), abs=1e-6)
            assert wb["loss"].item() == pytest.approx(wa["loss"].item(), abs=1e-5)
            assert torch.allclose(wb["p_u"], model.user_embedder(batch.user_x[k]), atol=1e-6)


def test_an_old_style_memory_write_is_refused():
    """The write is stated once (functional_write); a class still defining the old autograd twin
    would silently write nothing, so it is refused when defined."""
    with pytest.raises(TypeError, match="functional_write"):
        class OnlyAutograd(Algorithm):
            def memory_write(self, p_u, context, adapted, query_loss):
                return query_loss.detach()
