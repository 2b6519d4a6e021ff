"""The `higher` backend: a patched functional copy of the head and a differentiable SGD."""
from __future__ import annotations

from typing import Callable, Dict

import torch
from torch import nn

from .base import Adapted, Backend, InnerLoop


def _detach_all(grads):
    return [None if g is None else g.detach() for g in grads]


class HigherBackend(Backend):
    """``higher.monkeypatch(head, copy_initial_weights=False)``: the fast weights start at the
    algorithm's start (so gradients flow back to the global parameters and memories' inputs);
    ``DifferentiableSGD`` takes the local steps. First order = the step's gradients detached."""

    name = "higher"

    def __init__(self):
        import higher
        self.higher = higher

    def adapt(self, learner: nn.Module, overrides: Dict[str, torch.Tensor],
              support_loss: Callable, inner: InnerLoop, second_order: bool) -> Adapted:
        higher = self.higher
        names = [n for n, _ in learner.named_parameters()]
        fmodel = higher.monkeypatch(learner, copy_initial_weights=False, track_higher_grads=True)
        fmodel.update_params([overrides.get(n, p) for n, p in learner.named_parameters()])
        opt = torch.optim.SGD(learner.parameters(), lr=inner.lr)
        diffopt = higher.optim.get_diff_optim(opt, learner.parameters(), fmodel=fmodel, track_higher_grads=True)
        callback = None if second_order else _detach_all
        for _ in range(inner.steps):
            diffopt.step(support_loss(fmodel), grad_callback=callback)
        return Adapted(fmodel, dict(zip(names, fmodel.fast_params)))
