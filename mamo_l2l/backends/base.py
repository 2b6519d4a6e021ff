"""What every backend does with a meta-batch, and the one per-task step they all run.

``task_step`` is a user's whole task as a pure function of that user's tensors: the algorithm's
start, the backend's local steps on the support set, the query prediction and loss, and the
algorithm's memory write. The per-task backends (l2l, higher) call it task by task; the func
backend maps the same function over a padded meta-batch with ``torch.func.vmap``
(docs/backends.md).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.func import functional_call

from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.data.batching import PaddedBatch


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where mask == 1 (padding never counts)."""
    return ((pred - target) ** 2 * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)


def masked_pair_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pairwise ranking loss over one task's rated items (docs/algorithm.md, "Global update"): the
    mean over the ordered pairs (a, b) of real entries with target[a] > target[b] of
    softplus(pred[b] - pred[a]) (a logistic loss on the predicted difference); 0 without such a pair."""
    pairs = (target.unsqueeze(-1) > target.unsqueeze(-2)).to(pred.dtype) * mask.unsqueeze(-1) * mask.unsqueeze(-2)
    loss = torch.nn.functional.softplus(pred.unsqueeze(-2) - pred.unsqueeze(-1))
    return (loss * pairs).sum((-1, -2)) / pairs.sum((-1, -2)).clamp(min=1.0)


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
    #: weight of the pairwise ranking term in the training query loss (``train.pair_loss``)
    pair_weight: float = 0.0
    #: largest L2 norm of one local step's gradient, per task over every adapted parameter
    #: (``train.local_clip``; ``clip_step``); 0 = no clipping
    clip: float = 0.0


def clip_step(grads: List[Optional[torch.Tensor]], clip: float) -> List[Optional[torch.Tensor]]:
    """One task's local-step gradients scaled by min(1, clip / ||g||), ||g|| the L2 norm over all of
    them (None: a parameter the loss does not use, left None): the step keeps its direction and is
    at most lr * clip long (docs/algorithm.md, "Step clipping"). Pure tensor ops, so it runs under
    ``vmap`` and differentiates in second order; ``clip`` <= 0 returns ``grads`` unchanged."""
    if clip <= 0:
        return grads
    norm = torch.sqrt(sum((g * g).sum() for g in grads if g is not None))
    scale = (clip / norm.clamp(min=1e-12)).clamp(max=1.0)
    return [None if g is None else g * scale for g in grads]


#: ``Backend.adapt``: (learner, overrides, support_loss, inner, second_order) -> Adapted
AdaptFn = Callable[..., Adapted]


def adapt_task(adapt: AdaptFn, head: nn.Module, algorithm: Algorithm, p_u: torch.Tensor, p_s: torch.Tensor,
               sy: torch.Tensor, sm: torch.Tensor, inner: InnerLoop, second_order: bool,
               query: Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None) -> Tuple[Adapted, Any]:
    """One user's adaptation: the algorithm's start (``task_start``: it may read the support set,
    and ``query`` = (p_q, qy, qm) in training), then ``inner.steps`` local steps of ``adapt`` on
    the (masked) support MSE. Returns (adapted head, the start's context)."""
    overrides, context = algorithm.task_start(p_u, (p_s, sy, sm), query)
    adapted = adapt(head, overrides, lambda learner: masked_mse(learner(p_u, p_s), sy, sm), inner, second_order)
    return adapted, context


def task_step(adapt: AdaptFn, head: nn.Module, algorithm: Algorithm, p_u, p_s, sy, sm, p_q, qy, qm,
              inner: InnerLoop, training: bool) -> Tuple[torch.Tensor, torch.Tensor, tuple]:
    """One user's task: (query loss [], query prediction [N_q] with padding as 0, write).

    ``p_u`` [P_u], ``p_s`` [N_s, P_i], ``sy``/``sm`` [N_s], ``p_q`` [N_q, P_i], ``qy``/``qm`` [N_q].
    Training: second-order local steps unless ``inner.first_order``, the algorithm's
    ``task_loss`` added to the query loss, and its ``functional_write`` (torch.func only, so this
    function can run under ``vmap``); the write is
    returned as ``(write,)``, or ``()`` when there is none (vmap cannot return None).
    Evaluation: first-order steps, no write, the loss detached."""
    adapted, context = adapt_task(adapt, head, algorithm, p_u, p_s, sy, sm, inner,
                                  second_order=training and not inner.first_order,
                                  query=(p_q, qy, qm) if training else None)
    pred = adapted.forward(p_u, p_q)
    loss = masked_mse(pred, qy, qm)
    if not training:
        return loss.detach(), pred * qm, ()
    if inner.pair_weight:   # the outer objective only: local steps and memory writes stay on the MSE
        loss = loss + inner.pair_weight * masked_pair_loss(pred, qy, qm)
    extra = algorithm.task_loss(context)
    if extra is not None:   # e.g. TaNP's KL and clustering terms
        loss = loss + extra

    def query_loss(params: Dict[str, torch.Tensor]) -> torch.Tensor:
        return masked_mse(functional_call(head, params, (p_u, p_q)), qy, qm)

    write = algorithm.functional_write(p_u, context, adapted.params, query_loss)
    return loss, pred * qm, (() if write is None else (write,))


class Backend:
    """Takes the algorithm's start, the support set, the loss and the inner-loop settings and
    returns adapted parameters, with the graph kept (second order) or cut (first order).
    A backend supplies ``adapt``; ``run_batch``/``score_items`` run ``task_step``/``adapt_task``
    task by task (batched backends override them)."""

    name = "base"
    #: tasks per evaluation call (scoring.py); batched backends take more at once
    eval_chunk = 64

    def adapt(self, learner: nn.Module, overrides: Dict[str, torch.Tensor],
              support_loss: Callable[[Callable], torch.Tensor], inner: InnerLoop, second_order: bool) -> Adapted:
        raise NotImplementedError

    def _tasks(self, model, batch: PaddedBatch):
        """Per task (padding removed): p_u, p_s, sy, sm, p_q, qy, qm."""
        for b in range(len(batch)):
            t = batch.task(b)
            yield (model.user_embedder(t.user_x[0]), model.item_embedder(t.support_x[0]), t.support_y[0],
                   t.support_mask[0], t.query_x[0], t.query_y[0], t.query_mask[0])

    def score_items(self, model, algorithm: Algorithm, batch: PaddedBatch, inner: InnerLoop,
                    item_x: torch.Tensor, chunk: int) -> torch.Tensor:
        """Catalogue scoring: adapt every task of the batch exactly as evaluation does (the
        algorithm's start, ``inner.steps`` first-order steps on the support set, nothing written)
        and score the same items ``item_x`` [C, S_i] for every task, ``chunk`` items at a time.
        Returns unclipped scores [B, C] (detached); the batch's query sets are not used."""
        out = []
        for p_u, p_s, sy, sm, *_ in self._tasks(model, batch):
            adapted, _ = adapt_task(self.adapt, model.head, algorithm, p_u, p_s, sy, sm, inner, second_order=False)
            with torch.no_grad():
                out.append(torch.cat([adapted.forward(p_u, model.item_embedder(item_x[c:c + chunk])).detach()
                                      for c in range(0, item_x.shape[0], chunk)]))
        return torch.stack(out)

    def run_batch(self, model, algorithm: Algorithm, batch: PaddedBatch, inner: InnerLoop,
                  training: bool) -> BatchOutcome:
        """Adapt every task of the batch and score its query set (``task_step`` per task).

        Training: second-order unless ``inner.first_order``; each task's memory write is collected
        (not applied). Evaluation: first-order local steps, nothing written, outputs detached.
        """
        losses, preds, writes = [], [], []
        nq = batch.query_x.shape[1]
        for p_u, p_s, sy, sm, qx, qy, qm in self._tasks(model, batch):
            loss, pred, write = task_step(self.adapt, model.head, algorithm, p_u, p_s, sy, sm,
                                          model.item_embedder(qx), qy, qm, inner, training)
            losses.append(loss)
            preds.append(nn.functional.pad(pred.detach(), (0, nq - pred.shape[0])))
            writes.append(write[0] if write else None)
        return BatchOutcome(torch.stack(losses), torch.stack(preds), writes)
