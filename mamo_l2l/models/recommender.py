"""The recommender f (docs/algorithm.md, "The recommender"): user/item embedding networks and the rating network.

The model is split in two, because that split is exactly "what adapts per user":
- ``user_embedder`` / ``item_embedder`` (field embeddings): global, learned in the outer loop only.
- ``head`` (the *learner*): everything that a user's local update changes. Backends clone or
  functionalise ``head`` only; profiles p_u, p_i are computed with the global embedders, so the
  outer gradient reaches the embeddings through them.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ..data.types import FieldLayout
from .embedding import FieldEmbedder, profile_dim


def mlp(sizes: Sequence[int], act_last: bool) -> nn.Sequential:
    """Linear layers with LeakyReLU between them (and after the last one if ``act_last``)."""
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2 or act_last:
            layers.append(nn.LeakyReLU())
    return nn.Sequential(*layers)


class RatingHead(nn.Module):
    """theta_u, theta_i, W_pref and theta_r.

    forward(p_u [P_u], p_i [n, P_i]) -> predicted ratings [n].
    e_u = user_net(p_u) [d]; e_i = item_net(p_i) [n, d]; x = [e_u ; e_i] [n, 2d];
    z = pref(x) (the preference layer, 2d x 2d, no bias, no activation); rating = rating_net(z).
    """

    def __init__(self, user_dim: int, item_dim: int, embed_dim: int, hidden: int, rating_mean: float):
        super().__init__()
        self.user_net = mlp([user_dim, hidden, embed_dim], act_last=True)
        self.item_net = mlp([item_dim, hidden, embed_dim], act_last=True)
        self.pref = nn.Linear(2 * embed_dim, 2 * embed_dim, bias=False)
        self.rating_net = mlp([2 * embed_dim, hidden, 1], act_last=False)
        with torch.no_grad():  # start predictions at the training mean rating (faster, no leakage)
            self.rating_net[-1].bias.fill_(rating_mean)

    def forward(self, p_u: torch.Tensor, p_i: torch.Tensor) -> torch.Tensor:
        e_u = self.user_net(p_u)
        e_i = self.item_net(p_i)
        x = torch.cat([e_u.unsqueeze(-2).expand(*e_i.shape[:-1], e_u.shape[-1]), e_i], dim=-1)
        return self.rating_net(self.pref(x)).squeeze(-1)


class Recommender(nn.Module):
    """Field embedders + an adaptable head. Subclasses may add memories (buffers).

    ``predict(learner, user_x [S_u], item_x [n, S_i]) -> [n]`` is the one prediction function that
    every backend and the evaluation use: ``learner`` is the head itself, a clone of it, a patched
    functional copy, or any callable (p_u, p_i) -> ratings.
    """

    def __init__(self, user_layout: Sequence[FieldLayout], item_layout: Sequence[FieldLayout],
                 field_dim: int, head: nn.Module):
        super().__init__()
        self.user_embedder = FieldEmbedder(user_layout, field_dim)
        self.item_embedder = FieldEmbedder(item_layout, field_dim)
        self.head = head

    def profiles(self, user_x: torch.Tensor, item_x: torch.Tensor):
        return self.user_embedder(user_x), self.item_embedder(item_x)

    def predict(self, learner: Callable, user_x: torch.Tensor, item_x: torch.Tensor) -> torch.Tensor:
        p_u, p_i = self.profiles(user_x, item_x)
        return learner(p_u, p_i)

    def forward(self, user_x: torch.Tensor, item_x: torch.Tensor) -> torch.Tensor:
        return self.predict(self.head, user_x, item_x)


def build_recommender(user_layout, item_layout, field_dim: int, embed_dim: int, hidden: int,
                      rating_mean: float) -> Recommender:
    user_dim = profile_dim(user_layout, field_dim)
    item_dim = profile_dim(item_layout, field_dim)
    head = RatingHead(user_dim, item_dim, embed_dim, hidden, rating_mean)
    return Recommender(user_layout, item_layout, field_dim, head)
