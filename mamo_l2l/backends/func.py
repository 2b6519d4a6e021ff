"""The batched backend: ``torch.func`` (functional_call, grad, vmap) over a whole meta-batch.

Where l2l and higher loop over the users of a meta-batch in Python (one clone and one small
graph per user), this backend runs one user's whole task -- personalised start, local SGD steps,
query prediction, memory write -- as a pure function of that user's tensors and maps it over the
padded meta-batch with ``torch.func.vmap``: each operation runs once for all B users.

- Local steps: ``torch.func.grad`` of the masked support MSE with respect to the head
  parameters (a dict, as ``functional_call`` takes it); ``p - lr * g``. Second order: the
  gradient keeps its graph, so the outer ``backward()`` differentiates through the steps; first
  order: the gradient is detached (as learn2learn's ``adapt(first_order=True)``).
- Padding: every loss is ``masked_mse``, so padded support/query rows add exact zeros to a loss
  and to every gradient; padded query predictions are returned as 0 (like the other backends).
- Algorithms stay generic: ``algorithm.start`` is called inside the vmapped function (one user's
  view) and the write comes from ``algorithm.functional_write`` (torch.func only); the backend
  knows nothing of what a start or a write contains (any pytree of tensors).
- Memory semantics are the other backends': every task reads the memories as they stand (the
  batch start), writes are returned in batch order and applied by the caller after the step.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Dict

import torch
import torch.utils._pytree as pytree
from torch import nn
from torch.func import functional_call, grad, vmap

from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.backends.base import (
    Adapted,
    Backend,
    BatchOutcome,
    InnerLoop,
    adapt_task,
    clip_step,
    task_step,
)
from mamo_l2l.data.batching import PaddedBatch
from mamo_l2l.models.recommender import RatingHead

Params = Dict[str, torch.Tensor]


def local_steps(loss: Callable[[Params], torch.Tensor], params: Params, inner: InnerLoop,
                second_order: bool) -> Params:
    """``inner.steps`` plain SGD steps on ``loss(params)``, each gradient clipped to ``inner.clip``
    (``clip_step``); gradients detached unless second order."""
    names = list(params)
    for _ in range(inner.steps):
        g = grad(loss)(params)
        g = dict(zip(names, clip_step([g[n] for n in names], inner.clip)))
        params = {n: p - inner.lr * (g[n] if second_order else g[n].detach()) for n, p in params.items()}
    return params


class FuncBackend(Backend):
    """torch.func backend: one vmapped call per meta-batch (training) or evaluation chunk."""

    name = "func"
    #: tasks per evaluation call (scoring.py): a chunk is one vmapped call, so bigger is faster until
    #: padding to the chunk's longest task and memory traffic dominate; on a 2-core CPU 128-256 were
    #: best, 512+ slower (docs/backends.md).
    eval_chunk = 256

    def adapt(self, learner: nn.Module, overrides: Dict[str, torch.Tensor],
              support_loss: Callable[[Callable], torch.Tensor], inner: InnerLoop, second_order: bool) -> Adapted:
        """``inner.steps`` functional SGD steps (``local_steps``) from the start; works unbatched and
        under ``vmap`` alike."""
        start = {n: overrides.get(n, p) for n, p in learner.named_parameters()}

        def as_callable(params: Params) -> Callable:
            return lambda *args: functional_call(learner, params, args)

        adapted = local_steps(lambda prm: support_loss(as_callable(prm)), start, inner, second_order)
        return Adapted(as_callable(adapted), adapted)

    def score_items(self, model, algorithm: Algorithm, batch: PaddedBatch, inner: InnerLoop,
                    item_x: torch.Tensor, chunk: int) -> torch.Tensor:
        """The Backend API's catalogue scoring, batched: ``adapt_task`` vmapped over the batch (the
        same first-order local steps as evaluation), then each chunk of items embedded once and
        scored by every task's adapted head in one call (a RatingHead's batched form,
        ``RatingHead.catalogue``; other heads vmapped)."""
        head = model.head

        def adapt(p_u, p_s, sy, sm):
            return adapt_task(self.adapt, head, algorithm, p_u, p_s, sy, sm, inner, second_order=False)[0].params

        with torch.no_grad():
            p_u = model.user_embedder(batch.user_x)
            p_s = model.item_embedder(batch.support_x)
            adapted = vmap(adapt)(p_u, p_s, batch.support_y, batch.support_mask)
            out = []
            for c in range(0, item_x.shape[0], chunk):
                p_c = model.item_embedder(item_x[c:c + chunk])
                if isinstance(head, RatingHead):   # the users' heads in one batched call (RatingHead.catalogue)
                    out.append(head.catalogue(adapted, p_u, p_c))
                else:
                    out.append(vmap(lambda prm, pu: functional_call(head, prm, (pu, p_c)))(adapted, p_u))
        return torch.cat(out, dim=1)

    def run_batch(self, model, algorithm: Algorithm, batch: PaddedBatch, inner: InnerLoop,
                  training: bool) -> BatchOutcome:
        """``task_step`` vmapped over the padded batch; the writes come back as one batched
        pytree and are cut into one per task."""
        def task(*tensors):
            return task_step(self.adapt, model.head, algorithm, *tensors, inner, training)

        # Evaluation needs no outer graph; torch.func.grad ignores the outer no_grad, so the
        # local steps are still taken.
        with contextlib.nullcontext() if training else torch.no_grad():
            p_u = model.user_embedder(batch.user_x)          # [B, P_u]
            p_s = model.item_embedder(batch.support_x)       # [B, N_s, P_i]
            p_q = model.item_embedder(batch.query_x)         # [B, N_q, P_i]
            # randomness="different": a random draw in an algorithm's task_start (TaNP's z) is
            # drawn independently per task, as the per-task backends draw it
            loss, pred, write = vmap(task, randomness="different")(p_u, p_s, batch.support_y, batch.support_mask,
                                                                   p_q, batch.query_y, batch.query_mask)
        if write:
            writes = [pytree.tree_map(lambda leaf, b=b: leaf[b], write[0]) for b in range(len(batch))]
        else:
            writes = [None] * len(batch)
        return BatchOutcome(loss, pred.detach(), writes)
