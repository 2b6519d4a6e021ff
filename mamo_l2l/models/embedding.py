"""Field embeddings: an entity's integer feature row -> the concatenation of its field embeddings."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..data.types import PAD, UNKNOWN, FieldLayout


class FieldEmbedder(nn.Module):
    """One embedding table per field (MAMO.md section 2).

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

    @property
    def out_dim(self) -> int:
        return self.dim * len(self.layout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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
