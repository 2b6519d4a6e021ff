"""Field embeddings: an entity's integer feature row -> the concatenation of its field embeddings."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from mamo_l2l.data.types import FIRST_VALUE, PAD, UNKNOWN, FieldLayout


def profile_dim(layout: Sequence[FieldLayout], dim: int) -> int:
    """Width of a FieldEmbedder's output (a layout without fields gives one constant field)."""
    return dim * max(len(layout), 1)


class FieldEmbedder(nn.Module):
    """One embedding table per field (docs/algorithm.md, Inputs).

    forward(x [..., S]) -> [..., n_fields * dim]. A single-valued field reads its one column; a
    multi-valued field (e.g. genres) is the mean of the embeddings of its non-PAD columns.

    ``bias_field``: the name of a single-valued field (the item identity field) whose values also
    get a learned scalar, appended as one last column: the output is then [..., n_fields * dim + 1]
    (the item bias, docs/algorithm.md "The recommender"). Its rows start at zero (UNKNOWN stays 0);
    ``set_bias`` writes a starting value per row. ``factors`` = k > 0 (needs ``bias_field``) also
    gives each value of that field k learned taste factors, placed before the bias column: the
    output is then [..., n_fields * dim + k + 1]; they start at zero, ``set_factors`` writes them.
    """

    def __init__(self, layout: Sequence[FieldLayout], dim: int, bias_field: Optional[str] = None,
                 factors: int = 0):
        super().__init__()
        self.layout = tuple(layout)
        self.dim = dim
        # identity dropout (``drop_identities``): identity values read as UNKNOWN in training mode;
        # not saved (a function of the seed and the epoch), never used in eval mode
        self.register_buffer("dropped", None, persistent=False)
        self.bias_column: Optional[int] = None
        self.bias: Optional[nn.Embedding] = None
        if bias_field is not None:
            found = [f for f in self.layout if f.name == bias_field and not f.multi]
            if not found:
                raise ValueError(f"no single-valued field {bias_field!r} for the bias")
            self.bias_column = found[0].start
            self.bias = nn.Embedding(found[0].vocab_size, 1, padding_idx=PAD)
            nn.init.zeros_(self.bias.weight)
        if factors and bias_field is None:
            raise ValueError("taste factors need the bias field (the item identity)")
        self.factors: Optional[nn.Embedding] = None
        if factors:
            self.factors = nn.Embedding(self.bias.num_embeddings, factors, padding_idx=PAD)
            nn.init.zeros_(self.factors.weight)
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
        return (profile_dim(self.layout, self.dim) + (1 if self.bias is not None else 0)
                + (self.factors.embedding_dim if self.factors is not None else 0))

    @torch.no_grad()
    def drop_identities(self, share: float, seed: int, epoch: int) -> None:
        """Identity dropout (docs/algorithm.md, "The recommender"): for this training epoch a seeded
        ``share`` of the values of every identity field read as UNKNOWN (in training mode only),
        so the item network and the other fields learn to predict without the identity, as they
        must for new items. Depends only on (seed, epoch), so a resumed run draws the same."""
        identity = [f for f in self.layout if f.identity]
        if share <= 0 or not identity:
            self.dropped = None
            return
        gen = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch))
        size = max(f.vocab_size for f in identity)
        dropped = torch.rand(size, generator=gen) < share
        dropped[:FIRST_VALUE] = False
        self.dropped = dropped.to(self.tables[0].weight.device)

    def _drop(self, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        for f in self.layout:
            if f.identity:
                col = out[..., f.start]
                out[..., f.start] = torch.where(self.dropped[col], torch.full_like(col, UNKNOWN), col)
        return out

    @torch.no_grad()
    def set_bias(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        """Bias rows ``rows`` (indices into the bias field's vocabulary) := ``values``."""
        self.bias.weight[rows.long(), 0] = values.to(self.bias.weight.dtype)

    @torch.no_grad()
    def set_factors(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        """Taste factor rows ``rows`` (indices into the bias field's vocabulary) := ``values`` [n, k]."""
        self.factors.weight[rows.long()] = values.to(self.factors.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.constant is not None:
            return self.constant.expand(*x.shape[:-1], self.dim)
        if self.training and self.dropped is not None:
            x = self._drop(x)
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
        if self.factors is not None:
            parts.append(self.factors(x[..., self.bias_column]))   # [..., k]
        if self.bias is not None:
            parts.append(self.bias(x[..., self.bias_column]))   # [..., 1]
        return torch.cat(parts, dim=-1)
