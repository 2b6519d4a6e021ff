"""The choice head (docs/algorithm.md, "The choice head"): which items a user will choose to rate,
beside the rating head's how much the user will like them.

- Item choice factors g_i [k]: the sum of one k-vector per item field value (the identity and
  every content field; a multi-valued field contributes the mean of its values' vectors), a
  FieldEmbedder summed over fields. The identity vectors start at the item factors of implicit ALS
  on the training tasks (models/factors.py), the content vectors at 0; identity dropout (the
  rating model's draw, ``begin_epoch``) makes the content vectors learn where a new item (UNKNOWN
  identity) lands among the existing ones.
- ``model.choice_content: either`` instead gives an item the identity vector alone when it has
  one and the content sum only when it has none (a new item, or a dropped identity in training),
  so the content vectors learn the new-item path without moving the existing items' factors.
- A user's choice vector c_u, the head's local update, in closed form from the support items S
  alone (implicit ALS's fold-in, Hu et al. 2008, confidence 1 + alpha on the chosen items):
  c_u = (G^T G + alpha sum_{j in S} g_j g_j^T + lambda I)^-1 (1 + alpha) sum_{j in S} g_j, with G the
  factors of the catalogue (the training items). Differentiable, so the outer loop learns the
  factors through it.
- A user's choice score of item i: s_ui = exp(log_scale) c_u . g_i.
- Outer loss of a training task: softmax over the catalogue of the scores, the support items left
  out, and minus the mean log-probability of the query items (the items the user chose next).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from mamo_l2l.data.types import FIRST_VALUE, FieldLayout
from mamo_l2l.models.embedding import FieldEmbedder

#: the masked-out logit of the outer softmax (support items, padding)
MASKED = -1e9


class ChoiceHead(nn.Module):
    """g_i, the fold-in c_u and the scores s_ui (module doc). ``catalogue``: the feature rows of the
    training items [C, S_i] (set by ``set_catalogue``), the items of G and of the outer softmax."""

    def __init__(self, item_layout: Sequence[FieldLayout], dim: int, alpha: float, penalty: float,
                 train_identity: bool = True, content: str = "sum"):
        super().__init__()
        self.dim, self.alpha, self.penalty = dim, float(alpha), float(penalty)
        self.content = content   # model.choice_content: "sum" or "either" (``factors``)
        self.embedder = FieldEmbedder(item_layout, dim)
        for table in self.embedder.tables:
            nn.init.zeros_(table.weight)
        self.n_fields = max(len(self.embedder.layout), 1)
        self.identity = next((f for f in self.embedder.layout if f.identity), None)
        if not train_identity and self.identity is not None:   # model.choice_identity: fixed
            self.identity_table.weight.requires_grad_(False)
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.register_buffer("catalogue", torch.zeros(0, sum(f.stop - f.start for f in item_layout), dtype=torch.long))

    @property
    def identity_table(self) -> nn.Embedding:
        """The embedding table of the item identity field (the vectors the implicit ALS start fills)."""
        return self.embedder.tables[self.embedder.layout.index(self.identity)]

    def set_catalogue(self, item_x: np.ndarray) -> None:
        self.catalogue = torch.as_tensor(np.asarray(item_x, dtype=np.int64), device=self.log_scale.device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # a checkpoint's catalogue has its own length: take its shape before the copy (a model
        # built for loading has no training tasks to set it from)
        saved = state_dict.get(prefix + "catalogue")
        if saved is not None and saved.shape != self.catalogue.shape:
            self.catalogue = torch.zeros_like(saved, device=self.log_scale.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _positions(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Catalogue position of each row of ``x`` [B, N, S_i] by its identity value, C (one past
        the end) for padding and for items outside the catalogue."""
        n = len(self.catalogue)
        pos = self._catalogue_index()[x[..., self.identity.start]]
        return torch.where(mask > 0, pos, torch.full_like(pos, n))

    def _catalogue_index(self) -> torch.Tensor:
        """Per identity value [V]: its catalogue position, C (one past the end) when the value is no
        catalogue item's (PAD, UNKNOWN, an item outside the training tasks)."""
        ident = self.catalogue[:, self.identity.start]
        where = torch.full((self.identity.vocab_size,), len(ident), dtype=torch.long, device=ident.device)
        where[ident] = torch.arange(len(ident), device=ident.device)
        where[:FIRST_VALUE] = len(ident)
        return where

    @torch.no_grad()
    def set_identity_factors(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        """Identity vectors of ``rows`` (identity vocabulary indices) := ``values`` [n, k]."""
        table = self.identity_table
        table.weight[rows.long()] = values.to(table.weight.dtype)

    def factors(self, item_x: torch.Tensor) -> torch.Tensor:
        """g_i of item feature rows [..., S_i] -> [..., k]. ``content`` "sum": the identity vector
        plus the content vectors; "either": the identity vector of an item in the catalogue whose
        identity is not dropped this epoch, the sum of its content vectors otherwise (a new item)."""
        e = self.embedder(item_x)
        e = e.reshape(*e.shape[:-1], self.n_fields, self.dim)
        if self.content == "sum" or self.identity is None:
            return e.sum(-2)
        at = self.embedder.layout.index(self.identity)
        rest = e.sum(-2) - e[..., at, :]
        return torch.where(self._has_identity(item_x).unsqueeze(-1), e[..., at, :], rest)

    def _has_identity(self, item_x: torch.Tensor) -> torch.Tensor:
        """Whether each row's identity value is a catalogue item's and, in training mode, not
        dropped this epoch (the embedder's identity dropout) [...]."""
        member = self._catalogue_index() < len(self.catalogue)
        dropped = self.embedder.dropped
        if self.training and dropped is not None:
            member[:len(dropped)] &= ~dropped
        return member[item_x[..., self.identity.start]]

    def fold_in(self, g_s: torch.Tensor, mask: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
        """c_u [B, k] from the support factors g_s [B, N, k] (padding: mask 0) and G^T G [k, k]."""
        g_s = g_s * mask.unsqueeze(-1)
        a = gram + self.alpha * g_s.transpose(-1, -2) @ g_s + self.penalty * torch.eye(self.dim, dtype=g_s.dtype,
                                                                                       device=g_s.device)
        return torch.linalg.solve(a, (1.0 + self.alpha) * g_s.sum(-2))

    def user_vectors(self, support_x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """c_u [B, k] of padded support rows [B, N, S_i] with their mask [B, N]."""
        g = self.factors(self.catalogue)
        return self.fold_in(self.factors(support_x), mask, g.T @ g)

    def scores(self, c: torch.Tensor, item_x: torch.Tensor) -> torch.Tensor:
        """s_ui [B, C] of the users' c [B, k] and the items' rows [C, S_i]."""
        return self.log_scale.exp() * c @ self.factors(item_x).T

    def loss(self, support_x: torch.Tensor, support_mask: torch.Tensor, query_x: torch.Tensor,
             query_mask: torch.Tensor) -> torch.Tensor:
        """Per task [B]: minus the mean log-softmax probability of the query items over the
        catalogue, the support items left out (module doc)."""
        g = self.factors(self.catalogue)                                 # [C, k]
        c = self.fold_in(self.factors(support_x), support_mask, g.T @ g)
        logits = self.log_scale.exp() * c @ g.T                          # [B, C]
        n = logits.shape[1]
        pad = logits.new_zeros(len(logits), 1)                           # column C: padding
        known = torch.zeros(len(logits), n + 1, dtype=torch.bool, device=logits.device)
        known.scatter_(1, self._positions(support_x, support_mask), True)
        log_p = torch.log_softmax(logits.masked_fill(known[:, :n], MASKED), -1)
        q_pos = self._positions(query_x, query_mask)
        found = (q_pos < n) & ~known.gather(1, q_pos)
        picked = torch.cat([log_p, pad], 1).gather(1, q_pos)             # [B, N_q]
        found = found.to(log_p.dtype)
        return -(picked * found).sum(-1) / found.sum(-1).clamp(min=1.0)
