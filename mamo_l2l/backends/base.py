"""What every backend does with a meta-batch, and the per-task loop the clone backends share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from ..algorithms.base import Algorithm
from ..data.batching import PaddedBatch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where mask == 1 (padding never counts)."""
    return ((pred - target) ** 2 * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


@dataclass
class Adapted:
    """A learner after its local steps: call it as (p_u, p_i) -> ratings; ``params`` by name."""
    forward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    params: Dict[str, torch.Tensor]


@dataclass
class BatchOutcome:
    """query_loss [B] (with graph when training), query_pred [B, N_q] (detached), writes per task."""
    query_loss: torch.Tensor
    query_pred: torch.Tensor
    writes: List[Optional[object]]


@dataclass
class InnerLoop:
    steps: int
    lr: float
    first_order: bool


class Backend:
    """Takes the algorithm's start, the support set, the loss and the inner-loop settings and
    returns adapted parameters, with the graph kept (second order) or cut (first order)."""

    name = "base"
    #: tasks per evaluation call (evaluate.py); batched backends take more at once
    eval_chunk = 64

    def adapt(self, learner: nn.Module, overrides: Dict[str, torch.Tensor],
              support_loss: Callable[[Callable], torch.Tensor], inner: InnerLoop, second_order: bool) -> Adapted:
        raise NotImplementedError

    def score_items(self, model, algorithm: Algorithm, batch: PaddedBatch, inner: InnerLoop,
                    item_x: torch.Tensor, chunk: int) -> torch.Tensor:
        """Catalogue scoring: adapt every task of the batch exactly as evaluation does (the
        algorithm's start, ``inner.steps`` first-order steps on the support set, nothing written)
        and score the same items ``item_x`` [C, S_i] for every task, ``chunk`` items at a time.
        Returns unclipped scores [B, C] (detached); the batch's query sets are not used."""
        out = []
        for b in range(len(batch)):
            task = batch.task(b)
            user_x, sx, sy, sm = task.user_x[0], task.support_x[0], task.support_y[0], task.support_mask[0]
            p_u = model.user_embedder(user_x)
            p_s = model.item_embedder(sx)
            overrides, _ = algorithm.start(p_u)

            def support_loss(learner, p_u=p_u, p_s=p_s, sy=sy, sm=sm):
                return masked_mse(learner(p_u, p_s), sy, sm)

            adapted = self.adapt(model.head, overrides, support_loss, inner, second_order=False)
            with torch.no_grad():
                out.append(torch.cat([adapted.forward(p_u, model.item_embedder(item_x[c:c + chunk])).detach()
                                      for c in range(0, item_x.shape[0], chunk)]))
        return torch.stack(out)

    def run_batch(self, model, algorithm: Algorithm, batch: PaddedBatch, inner: InnerLoop,
                  training: bool) -> BatchOutcome:
        """Adapt every task of the batch and score its query set.

        Training: second-order unless ``inner.first_order``; each task's memory write is collected
        (not applied). Evaluation: first-order local steps, nothing written, outputs detached.
        """
        losses, preds, writes = [], [], []
        nq = batch.query_x.shape[1]
        for b in range(len(batch)):
            task = batch.task(b)
            user_x, sx, sy, sm = task.user_x[0], task.support_x[0], task.support_y[0], task.support_mask[0]
            qx, qy, qm = task.query_x[0], task.query_y[0], task.query_mask[0]
            p_u = model.user_embedder(user_x)
            p_s = model.item_embedder(sx)
            p_q = model.item_embedder(qx)
            overrides, context = algorithm.start(p_u)

            def support_loss(learner, p_u=p_u, p_s=p_s, sy=sy, sm=sm):
                return masked_mse(learner(p_u, p_s), sy, sm)

            adapted = self.adapt(model.head, overrides, support_loss, inner,
                                 second_order=training and not inner.first_order)
            pred = adapted.forward(p_u, p_q)
            loss = masked_mse(pred, qy, qm)
            if training:
                writes.append(algorithm.memory_write(p_u, context, adapted.params, loss))
            else:
                loss = loss.detach()
                writes.append(None)
            losses.append(loss)
            preds.append(nn.functional.pad(pred.detach(), (0, nq - pred.shape[0])))
        return BatchOutcome(torch.stack(losses), torch.stack(preds), writes)
