"""MeLU's network (Lee et al., KDD 2019): field embeddings -> [p_u ; p_i] -> hidden -> hidden -> 1 (ReLU).

Only the decision layers (this head) adapt per user; the field embeddings are the global
``FieldEmbedder``s of ``Recommender``, exactly as in MeLU.
"""
from __future__ import annotations

import torch
from torch import nn

from mamo_l2l.models.embedding import profile_dim
from mamo_l2l.models.recommender import Recommender


class MeLUHead(nn.Module):
    """The decision layers: forward(p_u [P_u], p_i [n, P_i]) -> predicted ratings [n].

    x = [p_u ; p_i] -> Linear(P_u + P_i, hidden) -> ReLU -> Linear(hidden, hidden) -> ReLU -> Linear(hidden, 1).
    MeLU's widths are 64 and 64 (``model.hidden``). The output bias starts at the mean training
    rating, the same choice as the MAMO/MAML recommender (docs/algorithm.md).
    """

    def __init__(self, user_dim: int, item_dim: int, hidden: int, rating_mean: float):
        super().__init__()
        self.fc1 = nn.Linear(user_dim + item_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)
        with torch.no_grad():
            self.out.bias.fill_(rating_mean)

    def forward(self, p_u: torch.Tensor, p_i: torch.Tensor) -> torch.Tensor:
        x = torch.cat([p_u.unsqueeze(-2).expand(*p_i.shape[:-1], p_u.shape[-1]), p_i], dim=-1)
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.out(x).squeeze(-1)


def build_melu(user_layout, item_layout, field_dim: int, hidden: int, rating_mean: float) -> Recommender:
    head = MeLUHead(profile_dim(user_layout, field_dim), profile_dim(item_layout, field_dim), hidden, rating_mean)
    return Recommender(user_layout, item_layout, field_dim, head)
