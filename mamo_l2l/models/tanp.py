"""TaNP's networks (Lin et al., *Task-adaptive Neural Process for User Cold-Start
Recommendation*, WWW 2021; docs/models.md, "TaNP").

A user's task is read from the ratings themselves, not learned by gradient steps:
- ``SetEncoder``: an MLP over [p_u ; p_i ; rating] for each rating of a set, averaged over the
  set (padding masked out): the permutation-invariant task summary of a neural process;
- ``LatentEncoder``: a set encoder and two linear maps to the mean and scale of the Gaussian of
  the latent variable z (the context posterior from the support set, the target posterior from
  support + query);
- the task identity network: a second set encoder whose mean is the raw task embedding o';
  the task memory holds K learnable cluster centres (``TaNPRecommender.centres``);
- ``TaNPDecoder``: the head, an MLP over [p_u ; p_i ; z] whose hidden layers are modulated by
  the task embedding o (FiLM: h = ReLU(gamma * (W x + b) + beta), gamma and beta linear in o;
  gated FiLM: gamma and beta each scaled by a sigmoid gate linear in o).

z and o reach the decoder as two of its parameters (``z``, ``task``) that the algorithm's start
replaces per user (mamo_l2l/algorithms/tanp.py), so every backend runs TaNP as it runs any
start, with no local steps.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
from torch import nn

from mamo_l2l.models.embedding import profile_dim
from mamo_l2l.models.recommender import Recommender

#: the smallest standard deviation of z (a floor keeps the KL finite; docs/models.md)
MIN_SCALE = 0.1


def relu_mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with ReLU between them (none after the last)."""
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def rating_pairs(p_u: torch.Tensor, p_i: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """[p_u ; p_i ; y] per rating: p_u [P_u], p_i [n, P_i], y [n] -> [n, P_u + P_i + 1]."""
    return torch.cat([p_u.expand(*p_i.shape[:-1], p_u.shape[-1]), p_i, y.unsqueeze(-1).to(p_i.dtype)], dim=-1)


class SetEncoder(nn.Module):
    """forward(p_u [P_u], p_i [n, P_i], y [n], mask [n]) -> the masked mean over the set of
    MLP([p_u ; p_i ; y]) [out]; an empty set (mask all 0) gives the MLP's mean of nothing, 0."""

    def __init__(self, in_dim: int, sizes: Sequence[int]):
        super().__init__()
        self.net = relu_mlp([in_dim, *sizes])

    def forward(self, p_u, p_i, y, mask) -> torch.Tensor:
        s = self.net(rating_pairs(p_u, p_i, y))
        return (s * mask.unsqueeze(-1)).sum(-2) / mask.sum(-1, keepdim=True).clamp(min=1.0)


class LatentEncoder(nn.Module):
    """The Gaussian of z given a set of ratings: (mean [z], scale [z]); the scale is
    MIN_SCALE + (1 - MIN_SCALE) * sigmoid(.), so it lies in (0.1, 1)."""

    def __init__(self, in_dim: int, hidden: int, z_dim: int):
        super().__init__()
        self.set = SetEncoder(in_dim, [hidden, hidden])
        self.act = nn.ReLU()
        self.mean = nn.Linear(hidden, z_dim)
        self.scale = nn.Linear(hidden, z_dim)

    def forward(self, p_u, p_i, y, mask) -> Tuple[torch.Tensor, torch.Tensor]:
        r = self.act(self.set(p_u, p_i, y, mask))
        return self.mean(r), MIN_SCALE + (1.0 - MIN_SCALE) * torch.sigmoid(self.scale(r))


class TaNPDecoder(nn.Module):
    """The head: forward(p_u [P_u], p_i [n, P_i]) -> predicted ratings [n].

    x = [p_u ; p_i ; z] -> three FiLM-modulated ReLU layers (hidden, hidden, hidden // 2, the
    authors' 32-32-16) -> Linear(., 1). Layer l: h = ReLU(gamma_l * (W_l x + b_l) + beta_l) with
    (gamma_l - 1, beta_l) = a linear map of the task embedding ``task`` (gamma starts near 1, the
    identity modulation); ``gated``: gamma_l - 1 and beta_l are each multiplied by a sigmoid gate,
    also linear in ``task``. ``z`` and ``task`` are parameters only so that the start can replace
    them per user (their global values are never used by TaNP). The output bias starts at the
    mean training rating, as in every network here."""

    def __init__(self, user_dim: int, item_dim: int, z_dim: int, task_dim: int, hidden: int,
                 rating_mean: float, gated: bool = False):
        super().__init__()
        widths = [hidden, hidden, max(hidden // 2, 1)]
        sizes = [user_dim + item_dim + z_dim, *widths]
        self.gated = gated
        self.layers = nn.ModuleList(nn.Linear(sizes[k], sizes[k + 1]) for k in range(len(widths)))
        self.films = nn.ModuleList(nn.Linear(task_dim, (4 if gated else 2) * w) for w in widths)
        self.out = nn.Linear(widths[-1], 1)
        self.z = nn.Parameter(torch.zeros(z_dim))
        self.task = nn.Parameter(torch.zeros(task_dim))
        with torch.no_grad():
            self.out.bias.fill_(rating_mean)

    def modulation(self, film: nn.Linear) -> Tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) of one layer from the task embedding."""
        if self.gated:
            gamma, beta, gate_g, gate_b = film(self.task).chunk(4, dim=-1)
            return 1.0 + torch.sigmoid(gate_g) * gamma, torch.sigmoid(gate_b) * beta
        gamma, beta = film(self.task).chunk(2, dim=-1)
        return 1.0 + gamma, beta

    def forward(self, p_u: torch.Tensor, p_i: torch.Tensor) -> torch.Tensor:
        lead = p_i.shape[:-1]
        h = torch.cat([p_u.expand(*lead, p_u.shape[-1]), p_i, self.z.expand(*lead, self.z.shape[-1])], dim=-1)
        for layer, film in zip(self.layers, self.films):
            gamma, beta = self.modulation(film)
            h = torch.relu(gamma * layer(h) + beta)
        return self.out(h).squeeze(-1)


class TaNPRecommender(Recommender):
    """Field embedders, the decoder (the head), the latent encoder, the task identity network,
    the K cluster centres of the task memory (parameters) and ``cluster_share`` [K] (a buffer:
    the mean soft assignment of the last training meta-batch, the cluster frequencies of the
    clustering loss's target distribution; docs/models.md)."""

    def __init__(self, user_layout, item_layout, field_dim: int, hidden: int, z_dim: int, clusters: int,
                 rating_mean: float, gated: bool = False):
        user_dim, item_dim = profile_dim(user_layout, field_dim), profile_dim(item_layout, field_dim)
        task_dim = max(hidden // 2, 1)
        head = TaNPDecoder(user_dim, item_dim, z_dim, task_dim, hidden, rating_mean, gated=gated)
        super().__init__(user_layout, item_layout, field_dim, head)
        in_dim = user_dim + item_dim + 1
        self.latent = LatentEncoder(in_dim, hidden, z_dim)
        self.task_encoder = SetEncoder(in_dim, [hidden, hidden, task_dim])
        self.centres = nn.Parameter(0.1 * torch.randn(clusters, task_dim))
        self.register_buffer("cluster_share", torch.full((clusters,), 1.0 / clusters))
