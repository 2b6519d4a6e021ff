"""The reference backend: learn2learn's MAML (clone, update_module, adapt)."""
from __future__ import annotations

from typing import Callable, Dict

import torch
from torch import nn

from mamo_l2l.backends.base import Adapted, Backend, InnerLoop
from mamo_l2l.backends.compat import import_learn2learn


class L2LBackend(Backend):
    """Per user: ``MAML(head).clone()``; the algorithm's start is applied to the clone with
    ``learn2learn.utils.update_module`` (differentiably: p + (start - p)); then ``adapt()`` once per
    local step, second order unless told otherwise."""

    name = "l2l"

    def __init__(self):
        self.l2l = import_learn2learn()

    def adapt(self, learner: nn.Module, overrides: Dict[str, torch.Tensor],
              support_loss: Callable, inner: InnerLoop, second_order: bool) -> Adapted:
        maml = self.l2l.algorithms.MAML(learner, lr=inner.lr, first_order=not second_order, allow_unused=True)
        clone = maml.clone()
        if overrides:
            updates = [overrides[n] - p if n in overrides else None for n, p in clone.module.named_parameters()]
            self.l2l.utils.update_module(clone.module, updates=updates)
        for _ in range(inner.steps):
            clone.adapt(support_loss(clone), first_order=not second_order)
        return Adapted(clone, dict(clone.module.named_parameters()))
