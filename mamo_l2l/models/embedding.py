"""Field embeddings: an entity's integer feature row -> the concatenation of its field embeddings."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data.types import PAD, UNKNOWN, FieldLayout


def profile_dim(layout: Sequence[FieldLayout], dim: int) -> int:
    """Width of a FieldEmbedder's output (a layout without fields gives one constant field)."""
    return dim * max(len(layout), 1)


class FieldEmbedder(nn.Module):
    """One embedding table per field (docs/algorithm.md, Inputs).

    forward(x [..., S]) -> [..., n_fields * dim]. A single-valued field reads its one column; a
    multi-valued field (e.g. genres) is the mean of the embeddings of its non-PAD columns.
    """

    def __init__(self, layout: Sequence[FieldLayout], dim: int):
        super().__init__()
        self.layout = tuple(layout)
        self.dim = dim
        self.tables = nn.ModuleList(nn.Embedding(f.vocab_size, dim, padding_idx=PAD) for f in self.layout)
        for f, table in zip(self.layout, self.tables):
            if f.identity:  # unknown / never-trained ids must contribute nothing (data/identity.py)
                nn.init.zeros_(table.weight)
            with torch.no_grad():  # UNKNOWN starts at zero in every field (docs/data.md section 3)
                table.weight[UNKNOWN].zero_()
        # No fields at all (e.g. an atomic data set without <name>.user): one learned constant
        # vector stands in, the same for every entity (docs/data.md, "Missing side files").
        self.constant = nn.Parameter(torch.randn(dim)) if not self.layout else None

    @property
    def out_dim(self) -> int:
        return profile_dim(self.layout, self.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.constant is not None:
            return self.constant.expand(*x.shape[:-1], self.dim)
        parts = []
        for f, table in zip(self.layout, self.tables):
            idx = x[..., f.start:f.stop]
            emb = table(idx)                                   # [..., width, dim]
            if f.multi:
                present = (idx != PAD).unsqueeze(-1).to(emb.dtype)
                emb = (emb * present).sum(-2) / present.sum(-2).clamp(min=1.0)
            else:
                emb = emb[..., 0, :]
            parts.append(emb)
        return torch.cat(parts, dim=-1)
