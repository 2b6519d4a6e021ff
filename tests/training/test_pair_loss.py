"""The pairwise ranking term of the outer loss (train.pair_loss, docs/algorithm.md "Global update")."""
import math

import pytest
import synthetic
import torch

from mamo_l2l.algorithms import build_model
from mamo_l2l.backends import get_backend
from mamo_l2l.backends.base import InnerLoop, masked_pair_loss
from mamo_l2l.core.config import ModelConfig
from mamo_l2l.data.batching import pad_tasks


def _softplus(x):
    return math.log1p(math.exp(x))


def test_pair_loss_hand_worked():
    pred, target = torch.tensor([2.0, 1.0, 0.0]), torch.tensor([5.0, 3.0, 3.0])
    # pairs with target[a] > target[b]: (0, 1) and (0, 2); the tie (1, 2) is not a pair
    want = (_softplus(1.0 - 2.0) + _softplus(0.0 - 2.0)) / 2
    assert masked_pair_loss(pred, target, torch.ones(3)).item() == pytest.approx(want, abs=1e-6)
    assert masked_pair_loss(pred, target, torch.tensor([1.0, 1.0, 0.0])).item() == pytest.approx(
        _softplus(-1.0), abs=1e-6
    )
    assert masked_pair_loss(pred, torch.full((3,), 4.0), torch.ones(3)).item() == 0.0  # no pair: 0
    batched = masked_pair_loss(torch.stack([pred, pred]), torch.stack([target, target]), torch.ones(2, 3))
    assert batched.shape == (2,) and batched[0].item() == pytest.approx(want, abs=1e-6)


def _run(backend, pair_weight, training=True):
    data = synthetic.encoded()
    torch.manual_seed(0)
    model, algo = build_model("mamo", ModelConfig(), data, 3.0)
    out = get_backend(backend).run_batch(
        model, algo, pad_tasks(synthetic.tasks(data), data), InnerLoop(1, 0.05, False, pair_weight), training=training
    )
    return out, (synthetic.grads(model, out.query_loss.mean()) if training else None)


@pytest.mark.parametrize("other", ["l2l", "higher"])
def test_backends_agree_with_the_pair_term(other):
    (a, ga), (b, gb) = _run("func", 0.5), _run(other, 0.5)
    assert torch.allclose(a.query_loss, b.query_loss, atol=1e-5)
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, atol=1e-5)
    plain, _ = _run("func", 0.0)
    assert (a.query_loss - plain.query_loss).min() > 0  # the term is there in training...
    assert torch.allclose(a.query_pred, plain.query_pred)  # ...and changes no prediction
    for w in (0.0, 0.5):  # evaluation: the query MSE only
        ev, _ = _run("func", w, training=False)
        assert torch.allclose(ev.query_loss, plain.query_loss.detach(), atol=1e-6)
