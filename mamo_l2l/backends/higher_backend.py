"""The `higher` backend: a patched functional copy of the head and a differentiable SGD."""
from __future__ import annotations

from typing import Callable, Dict

import torch
from torch import nn

from mamo_l2l.backends.base import Adapted, Backend, InnerLoop, clip_step


def _step_callback(clip: float, second_order: bool):
    """higher's ``grad_callback``: each step's gradients clipped (``clip_step``), then detached in
    first order; None when neither applies."""
    if clip <= 0 and second_order:
        return None

    def callback(grads):
        grads = clip_step(list(grads), clip)
        return grads if second_order else [None if g is None else g.detach() for g in grads]
    return callback


class HigherBackend(Backend):
    """``higher.monkeypatch(head, copy_initial_weights=False)``: the fast weights start at the
    algorithm's start (so gradients flow back to the global parameters and memories' inputs);
    ``DifferentiableSGD`` takes the local steps. First order = the step's gradients detached."""

    name = "higher"

    def __init__(self):
        import higher  # optional dependency
        self.higher = higher

    def adapt(self, learner: nn.Module, overrides: Dict[str, torch.Tensor],
              support_loss: Callable, inner: InnerLoop, second_order: bool) -> Adapted:
        higher = self.higher
        names = [n for n, _ in learner.named_parameters()]
        fmodel = higher.monkeypatch(learner, copy_initial_weights=False, track_higher_grads=True)
        # higher's optimiser steps only the fast weights that require grad: a start computed from
        # inputs without a graph (a recommender's cached profiles) would leave it unadapted, so
        # such a start becomes a leaf that requires grad (no gradient goes anywhere else from it).
        start = [overrides.get(n, p) for n, p in learner.named_parameters()]
        fmodel.update_params([s if s.requires_grad else s.detach().requires_grad_(True) for s in start])
        opt = torch.optim.SGD(learner.parameters(), lr=inner.lr)
        diffopt = higher.optim.get_diff_optim(opt, learner.parameters(), fmodel=fmodel, track_higher_grads=True)
        callback = _step_callback(inner.clip, second_order)
        for _ in range(inner.steps):
            diffopt.step(support_loss(fmodel), grad_callback=callback)
        return Adapted(fmodel, dict(zip(names, fmodel.fast_params)))
