"""The reference backend: learn2learn's MAML (clone, update_module, adapt)."""
from __future__ import annotations

from typing import Callable, Dict

import torch
from torch import nn

from mamo_l2l.backends.base import Adapted, Backend, InnerLoop, clip_step
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
            if inner.clip > 0:
                self._clipped_step(clone, support_loss(clone), inner, second_order)
            else:
                clone.adapt(support_loss(clone), first_order=not second_order)
        return Adapted(clone, dict(clone.module.named_parameters()))

    def _clipped_step(self, clone, loss: torch.Tensor, inner: InnerLoop, second_order: bool) -> None:
        """``clone.adapt`` with the gradient clipped first (``clip_step``): the gradient taken here,
        then learn2learn's own ``maml_update`` (p <- p - lr * g, kept differentiable)."""
        params = list(clone.module.parameters())
        grads = torch.autograd.grad(loss, params, retain_graph=second_order, create_graph=second_order,
                                    allow_unused=True)
        grads = clip_step(list(grads), inner.clip)
        self.l2l.algorithms.maml.maml_update(clone.module, inner.lr, grads)
