"""The algorithm side of the algorithm x backend seam (DESIGN.md).

An algorithm says where a user's adaptation starts, and what happens after a training task
(MAMO's memory writes). It knows nothing about learn2learn, higher or torch.func: a backend
asks it for the start, runs the local steps, and hands it the adapted parameters.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import torch

from ..models.recommender import Recommender


class Algorithm:
    """MAML's behaviour: every user starts from the global head parameters; nothing is written."""

    name = "maml"
    #: whether the model adapts per user at all (non-meta references set this False)
    adapts = True

    def __init__(self, model: Recommender):
        self.model = model

    def start(self, p_u: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], Any]:
        """Return (overrides, context).

        overrides: head parameter name -> this user's starting value (differentiable w.r.t. the
        global parameters and p_u); names not in it start from the global value.
        context: whatever ``memory_write`` needs later (e.g. the attention).
        """
        return {}, None

    def memory_write(self, p_u: torch.Tensor, context: Any, adapted: Dict[str, torch.Tensor],
                     query_loss: torch.Tensor):
        """What this training task writes to memory (None: nothing)."""
        return None

    def apply_writes(self, writes: Sequence[Optional[Any]]) -> None:
        """Apply a meta-batch's writes, in batch order, after the outer step."""
        return None
