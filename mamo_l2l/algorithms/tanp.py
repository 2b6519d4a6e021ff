"""TaNP (Lin et al., WWW 2021; docs/models.md, "TaNP"): a user's start is read from the support
set by the encoders, with no local gradient steps.

Per task: the context posterior N(mu_C, s_C) of z from the support set and the raw task
embedding o' from the task identity network; the Student-t soft assignment of o' to the K
cluster centres c_k, q_k proportional to (1 + |o' - c_k|^2 / alpha)^(-(alpha + 1) / 2); the task
embedding o = o' + sum_k q_k c_k (the read of the task memory). The decoder gets z and o as its
``z`` and ``task`` parameters. Training: z is drawn from the target posterior N(mu_T, s_T) of
support + query (reparameterised), and the task's loss adds
KL(N(mu_T, s_T) || N(mu_C, s_C)) / (query ratings) + lambda * KL(P || Q), the clustering loss
with the sharpened target p_k proportional to q_k^2 / f_k (held fixed, as a target). Evaluation:
z = mu_C, nothing drawn.
"""
from __future__ import annotations

from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple

import torch

from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.models.tanp import TaNPRecommender

EPS = 1e-12


class TaNPContext(NamedTuple):
    """What one task's start keeps for its loss and its write."""
    assignment: torch.Tensor          # q [K]
    extra: Optional[torch.Tensor]     # the KL and clustering terms (training), or None


def standard_normal_like(t: torch.Tensor) -> torch.Tensor:
    """The training draw of z's noise (N(0, 1) of t's shape). Under func (vmap, randomness
    "different") a batch's draws come from one batched call, under l2l/higher from one call per
    task: the same distribution and seed, different numbers (docs/models.md, "TaNP")."""
    return torch.randn_like(t)


def student_t_assignment(o: torch.Tensor, centres: torch.Tensor, alpha: float) -> torch.Tensor:
    """q [K]: q_k proportional to (1 + |o - c_k|^2 / alpha)^(-(alpha + 1) / 2), summing to 1."""
    dist = ((o.unsqueeze(-2) - centres) ** 2).sum(-1)
    kernel = (1.0 + dist / alpha) ** (-(alpha + 1.0) / 2.0)
    return kernel / kernel.sum(-1, keepdim=True)


def sharpened_target(q: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
    """p [K]: p_k proportional to q_k^2 / f_k, f = ``share`` (the cluster frequencies)."""
    w = q ** 2 / share.clamp(min=EPS)
    return w / w.sum(-1, keepdim=True)


def gaussian_kl(mu_a, s_a, mu_b, s_b) -> torch.Tensor:
    """KL(N(mu_a, s_a^2) || N(mu_b, s_b^2)) of diagonal Gaussians, summed over the dimensions."""
    return (torch.log(s_b / s_a) + (s_a ** 2 + (mu_a - mu_b) ** 2) / (2.0 * s_b ** 2) - 0.5).sum(-1)


class TaNP(Algorithm):
    """TaNP's per-task start, its extra loss terms and its write (the task's soft assignment,
    which sets the cluster frequencies of the next meta-batch's clustering target)."""

    name = "tanp"
    takes_local_steps = False

    def __init__(self, model: TaNPRecommender, alpha: float, lam: float):
        super().__init__(model)
        self.alpha = alpha
        self.lam = lam

    def task_start(self, p_u, support, query=None) -> Tuple[Dict[str, torch.Tensor], Any]:
        m = self.model
        p_s, sy, sm = support
        mu_c, s_c = m.latent(p_u, p_s, sy, sm)
        raw = m.task_encoder(p_u, p_s, sy, sm)
        q = student_t_assignment(raw, m.centres, self.alpha)
        task = raw + q @ m.centres
        if query is None:
            return {"z": mu_c, "task": task}, TaNPContext(q, None)
        p_q, qy, qm = query
        mu_t, s_t = m.latent(p_u, torch.cat([p_s, p_q], dim=-2), torch.cat([sy, qy], dim=-1),
                             torch.cat([sm, qm], dim=-1))
        z = mu_t + s_t * standard_normal_like(mu_t)
        kl = gaussian_kl(mu_t, s_t, mu_c, s_c) / qm.sum(-1).clamp(min=1.0)
        target = sharpened_target(q.detach(), m.cluster_share)
        clustering = (target * (torch.log(target.clamp(min=EPS)) - torch.log(q.clamp(min=EPS)))).sum(-1)
        return {"z": z, "task": task}, TaNPContext(q, kl + self.lam * clustering)

    def task_loss(self, context: TaNPContext) -> Optional[torch.Tensor]:
        return context.extra

    def functional_write(self, p_u, context, adapted, query_loss):
        return context.assignment.detach()

    @torch.no_grad()
    def apply_writes(self, writes: Sequence[Optional[torch.Tensor]]) -> None:
        qs = [w for w in writes if w is not None]
        if qs:
            self.model.cluster_share.copy_(torch.stack(qs).mean(0).to(self.model.cluster_share))

    @torch.no_grad()
    def begin_training(self, user_x: torch.Tensor, seed: int) -> None:
        self.model.cluster_share.fill_(1.0 / self.model.cluster_share.numel())

    def end_epoch(self, user_x: torch.Tensor) -> Dict[str, Any]:
        share = self.model.cluster_share.detach().cpu()
        return {"tanp": {"cluster_share": [round(float(v), 4) for v in share]}}
