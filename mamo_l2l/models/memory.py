"""MAMO's memories (MAMO.md sections 4-5). All tensors are buffers: saved with the model,
never part of autograd, changed only by ``write`` after a training meta-batch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch import nn


@dataclass
class MemoryRead:
    """What one user reads: attention a_u [K] (differentiable w.r.t. p_u), the bias b_u (flat,
    [|theta_u|]) and the preference fast weight W_pref^0 [2d, 2d]."""
    attention: torch.Tensor
    bias: torch.Tensor
    pref: torch.Tensor


@dataclass
class MemoryWrite:
    """What one training task writes (all detached): a_u [K], p_u [P_u], g_u [|theta_u|], W_pref' [2d, 2d]."""
    attention: torch.Tensor
    profile: torch.Tensor
    grad_user: torch.Tensor
    pref: torch.Tensor


# A pytree node, so that a batched backend can return writes from torch.func.vmap.
pytree.register_dataclass(MemoryWrite)


UPDATES = ("paper", "interpolate")


class MAMOMemory(nn.Module):
    """Feature-specific memory (M_P [K, P_u], M_U [K, |theta_u|]) and task-specific memory (M_UI [K, 2d, 2d]).

    Initialisation (a documented choice): M_P ~ N(0, 1) like the field embeddings it is compared
    with; each slot of M_U is a fresh draw of the user network's initialisation (flattened); each
    slot of M_UI a fresh draw of a Linear(2d, 2d) weight, so that reads have a normal layer's scale.
    """

    def __init__(self, slots: int, profile_dim: int, user_net_template: nn.Module, pref_dim: int,
                 temperature: float, alpha: float, beta: float, gamma: float, update: str = "interpolate"):
        super().__init__()
        if update not in UPDATES:
            raise ValueError(f"memory update rule must be one of {UPDATES}, got {update!r}")
        self.temperature, self.alpha, self.beta, self.gamma = temperature, alpha, beta, gamma
        self.update = update
        user_slots = []
        for _ in range(slots):
            fresh = _fresh_copy(user_net_template)
            user_slots.append(torch.cat([p.detach().reshape(-1) for p in fresh.parameters()]))
        pref_slots = [nn.Linear(pref_dim, pref_dim, bias=False).weight.detach().clone() for _ in range(slots)]
        self.register_buffer("profile", torch.randn(slots, profile_dim))
        self.register_buffer("user_bias", torch.stack(user_slots))
        self.register_buffer("preference", torch.stack(pref_slots))

    @property
    def slots(self) -> int:
        return self.profile.shape[0]

    def attention(self, p_u: torch.Tensor) -> torch.Tensor:
        """a_u = softmax_k(cos(p_u, M_P[k]) / T); p_u [..., P_u] -> [..., K]."""
        cos = F.cosine_similarity(p_u.unsqueeze(-2), self.profile, dim=-1, eps=1e-8)
        return torch.softmax(cos / self.temperature, dim=-1)

    def read(self, p_u: torch.Tensor) -> MemoryRead:
        a = self.attention(p_u)
        bias = a @ self.user_bias                                     # [..., |theta_u|]
        pref = torch.einsum("...k,kij->...ij", a, self.preference)   # [..., 2d, 2d]
        return MemoryRead(a, bias, pref)

    @torch.no_grad()
    def write(self, writes: Sequence[MemoryWrite], preference: bool = True) -> None:
        """Apply the writes one task at a time, in order (MAMO.md sections 4, 5, 7).
        ``preference=False`` leaves M_UI untouched (the no-task-memory ablation).

        ``update="paper"``: M <- rate * (a_u outer v) + (1 - rate) * M, the paper's rule.
        ``update="interpolate"``: M[k] <- M[k] + rate * a_u[k] * (v - M[k]): each slot moves toward
        the written value in proportion to its attention. Under a soft attention the paper's rule
        shrinks every slot toward 0 (its only fixed point with uniform attention is M = 0); the
        interpolation keeps the slots at the scale of what is written (docs/algorithm.md).
        """
        for w in writes:
            a = w.attention.reshape(-1, 1)
            self._blend(self.profile, a, w.profile.reshape(1, -1), self.alpha)
            self._blend(self.user_bias, a, w.grad_user.reshape(1, -1), self.beta)
            if preference:
                self._blend(self.preference, a.unsqueeze(-1), w.pref.unsqueeze(0), self.gamma)

    def _blend(self, memory: torch.Tensor, a: torch.Tensor, value: torch.Tensor, rate: float) -> None:
        if self.update == "paper":
            memory.copy_(rate * a * value + (1 - rate) * memory)
        else:
            memory.add_(rate * a * (value - memory))


def _fresh_copy(module: nn.Module) -> nn.Module:
    import copy
    fresh = copy.deepcopy(module)
    for m in fresh.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return fresh


def split_flat(flat: torch.Tensor, shapes: Sequence[torch.Size]) -> List[torch.Tensor]:
    """Cut a flat vector [..., sum(numel)] into tensors of the given shapes (leading dims kept)."""
    out, start = [], 0
    lead = flat.shape[:-1]
    for s in shapes:
        n = int(torch.Size(s).numel())
        out.append(flat[..., start:start + n].reshape(*lead, *s))
        start += n
    return out
