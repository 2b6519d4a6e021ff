"""MAMO's memories (docs/algorithm.md, "Feature-specific memory", "Task-specific memory" and "The
memory write rule"). Buffers, saved with the model, never part of autograd, changed only by
``write`` after a training meta-batch and by the epoch-end ``reseed``; the one exception is M_UI
with ``preference_memory: learned``, a parameter trained by the outer gradient and never written."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import List, Optional, Sequence

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
    """What one training task writes (all detached): a_u [K], p_u [P_u], g_u [|theta_u|], W_pref' [2d, 2d]
    and W_pref^0 [2d, 2d], the start it was adapted from (the competitive rule writes the change
    W_pref' - W_pref^0; None when unknown, e.g. a hand-made write for the other rules)."""
    attention: torch.Tensor
    profile: torch.Tensor
    grad_user: torch.Tensor
    pref: torch.Tensor
    pref_start: Optional[torch.Tensor] = None


# A pytree node, so that a batched backend can return writes from torch.func.vmap.
pytree.register_dataclass(MemoryWrite)


UPDATES = ("paper", "interpolate", "competitive")
KEY_INITS = ("random", "kmeans")


class MAMOMemory(nn.Module):
    """Feature-specific memory (M_P [K, P_u], M_U [K, |theta_u|]) and task-specific memory (M_UI [K, 2d, 2d]).

    Initialisation (a documented choice): M_P ~ N(0, 1) like the field embeddings it is compared
    with; each slot of M_U is a fresh draw of the user network's initialisation (flattened); each
    slot of M_UI a fresh draw of a Linear(2d, 2d) weight, so that reads have a normal layer's scale.
    """

    def __init__(self, slots: int, profile_dim: int, user_net_template: nn.Module, pref_dim: int,
                 temperature: float, alpha: float, beta: float, gamma: float, update: str = "competitive",
                 key_init: str = "kmeans", learned_preference: bool = False):
        super().__init__()
        if update not in UPDATES:
            raise ValueError(f"memory update rule must be one of {UPDATES}, got {update!r}")
        if key_init not in KEY_INITS:
            raise ValueError(f"memory key initialisation must be one of {KEY_INITS}, got {key_init!r}")
        self.temperature, self.alpha, self.beta, self.gamma = temperature, alpha, beta, gamma
        self.update, self.key_init = update, key_init
        user_slots = []
        for _ in range(slots):
            fresh = _fresh_copy(user_net_template)
            user_slots.append(torch.cat([p.detach().reshape(-1) for p in fresh.parameters()]))
        pref_slots = [nn.Linear(pref_dim, pref_dim, bias=False).weight.detach().clone() for _ in range(slots)]
        self.register_buffer("profile", torch.randn(slots, profile_dim))
        self.register_buffer("user_bias", torch.stack(user_slots))
        if learned_preference:
            # M_UI learned by the outer gradient through the attention-weighted read, not written
            # (``model.preference_memory: learned``, docs/algorithm.md).
            self.preference = nn.Parameter(torch.stack(pref_slots))
        else:
            self.register_buffer("preference", torch.stack(pref_slots))
        self.learned_preference = learned_preference
        # How many training tasks each slot won (its top attention) since the last ``reseed``, counted
        # by the competitive rule (the only one that re-seeds);
        # bookkeeping for the epoch-end re-seeding, reset every epoch, so not saved.
        self.register_buffer("wins", torch.zeros(slots), persistent=False)

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
        """Apply the writes one task at a time, in order (docs/algorithm.md, "The memory write rule").
        ``preference=False`` leaves M_UI untouched (the no-task-memory ablation).

        ``update="paper"``: M <- rate * (a_u outer v) + (1 - rate) * M, the paper's rule.
        ``update="interpolate"``: M[k] <- M[k] + rate * a_u[k] * (v - M[k]): each slot moves toward
        the written value in proportion to its attention. Under a soft attention the paper's rule
        shrinks every slot toward 0 (its only fixed point with uniform attention is M = 0); the
        interpolation keeps the slots at the scale of what is written, but moves every slot toward
        the same values, so the slots merge (docs/algorithm.md).
        ``update="competitive"`` (default): only the user's top slot k* = argmax a_u is written,
        M[k*] <- M[k*] + rate * (v - M[k*]): online k-means on the keys, and each slot's values are
        written only by the users it wins. For M_UI the written value is the slot plus the user's
        local change, v = M_UI[k*] + (W_pref' - W_pref^0), i.e. M_UI[k*] += gamma * (W_pref' - W_pref^0):
        writing W_pref' itself would pull every slot toward the attention-weighted mixture that
        was read, and over thousands of writes the slots merge even under a sharp attention
        (measured; docs/algorithm.md). The competitive writes of a batch are applied at once in
        closed form (``_competitive``), equal to applying them one at a time in order.
        """
        writes = list(writes)
        if not writes:
            return
        if self.update == "competitive":
            self._competitive(writes, preference)
            return
        for w in writes:
            a = w.attention.reshape(-1, 1)
            self._blend(self.profile, a, w.profile.reshape(1, -1), self.alpha)
            self._blend(self.user_bias, a, w.grad_user.reshape(1, -1), self.beta)
            if preference and not self.learned_preference:
                self._blend(self.preference, a.unsqueeze(-1), w.pref.unsqueeze(0), self.gamma)

    def _competitive(self, writes: Sequence[MemoryWrite], preference: bool) -> None:
        """n sequential top-slot interpolations, vectorised. For a slot k won by tasks j_1 < ... < j_m
        of the batch, writing v one at a time, M[k] <- M[k] + r (v - M[k]), ends at
        (1 - r)^m M[k] + sum_i r (1 - r)^(m - i) v_{j_i}; the preference change is added, so
        M_UI[k] ends at M_UI[k] + gamma * sum_i (W_pref' - W_pref^0)_{j_i}."""
        k = self.slots
        win = torch.stack([w.attention for w in writes]).argmax(-1)              # [n]
        onehot = F.one_hot(win, k).to(self.profile.dtype)                       # [n, K]
        count = onehot.sum(0)                                                     # [K]
        self.wins += count.to(self.wins)
        # how many later tasks of the batch win the same slot as task i
        later = (onehot.flip(0).cumsum(0).flip(0) * onehot).sum(1) - 1.0        # [n]

        def interpolate(memory: torch.Tensor, values: torch.Tensor, rate: float) -> None:
            flat = memory.view(k, -1)
            weight = rate * (1.0 - rate) ** later                                 # [n]
            flat.mul_(((1.0 - rate) ** count).unsqueeze(-1))
            flat.add_(onehot.T @ (weight.unsqueeze(-1) * values.reshape(len(writes), -1).to(flat)))

        interpolate(self.profile, torch.stack([w.profile for w in writes]), self.alpha)
        interpolate(self.user_bias, torch.stack([w.grad_user for w in writes]), self.beta)
        if preference and not self.learned_preference:
            if any(w.pref_start is None for w in writes):
                raise ValueError("the competitive rule writes W_pref' - W_pref^0: MemoryWrite.pref_start is required")
            change = torch.stack([(w.pref - w.pref_start).reshape(-1) for w in writes])   # [n, 4d^2]
            self.preference.view(k, -1).add_(self.gamma * (onehot.T @ change.to(self.preference)))

    @torch.no_grad()
    def init_keys(self, profiles: torch.Tensor, seed: int, iterations: int = 20) -> None:
        """Keys M_P from spherical k-means of the training users' profiles (``key_init="kmeans"``):
        k-means++ seeding, then Lloyd steps on unit vectors; each key is the mean (unnormalised)
        profile of its cluster, so that it has the scale of what the writes move it toward.
        ``key_init="random"`` keeps the N(0, 1) keys. Seeded, so a run is reproducible."""
        if self.key_init != "kmeans" or profiles.shape[0] < self.slots:
            return
        gen = torch.Generator().manual_seed(int(seed) * 7919 + 17)
        x = profiles.detach().to(torch.float32).cpu()
        unit = F.normalize(x, dim=-1, eps=1e-8)
        centres = [unit[int(torch.randint(len(unit), (1,), generator=gen))]]
        for _ in range(1, self.slots):          # k-means++: far points are likelier
            dist = 1.0 - (unit @ torch.stack(centres).T).max(dim=1).values
            weights = dist.clamp(min=0) ** 2
            if float(weights.sum()) <= 0:
                weights = torch.ones_like(weights)
            centres.append(unit[int(torch.multinomial(weights, 1, generator=gen))])
        c = torch.stack(centres)
        for _ in range(iterations):
            assign = (unit @ c.T).argmax(dim=1)
            for k in range(self.slots):
                members = unit[assign == k]
                if len(members):
                    c[k] = F.normalize(members.mean(0), dim=-1, eps=1e-8)
        assign = (unit @ c.T).argmax(dim=1)
        keys = self.profile.clone()
        for k in range(self.slots):
            members = x[assign == k]
            keys[k] = members.mean(0) if len(members) else c[k] * x.norm(dim=-1).mean()
        self.profile.copy_(keys.to(self.profile))

    @torch.no_grad()
    def reseed(self, profiles: torch.Tensor) -> int:
        """Epoch-end repair (competitive writes): a slot that won no training task since the last
        call, or whose key duplicates another's (cosine > 0.999), gets as key the profile of the
        training user worst served by the current keys (lowest best cosine) and the values of
        that user's current top slot, so it starts where that user reads. Returns how many slots
        were re-seeded. Deterministic given the memory and the profiles."""
        if self.update != "competitive" or profiles.shape[0] == 0:
            self.wins.zero_()
            return 0
        keys = F.normalize(self.profile, dim=-1, eps=1e-8)
        sims = keys @ keys.T
        dead = [k for k in range(self.slots) if self.wins[k] == 0]
        for i in range(self.slots):
            for j in range(i):
                if sims[i, j] > 0.999 and i not in dead and j not in dead:
                    dead.append(i)
        unit = F.normalize(profiles.to(self.profile), dim=-1, eps=1e-8)
        for k in dead:
            cos = unit @ F.normalize(self.profile, dim=-1, eps=1e-8).T      # [n, K]
            worst = int(cos.max(dim=1).values.argmin())
            source = int(cos[worst].argmax())
            self.profile[k] = profiles[worst].to(self.profile)
            if source != k:
                self.user_bias[k] = self.user_bias[source]
                self.preference[k] = self.preference[source]
        self.wins.zero_()
        return len(dead)

    def _blend(self, memory: torch.Tensor, a: torch.Tensor, value: torch.Tensor, rate: float) -> None:
        if self.update == "paper":
            memory.copy_(rate * a * value + (1 - rate) * memory)
        else:
            memory.add_(rate * a * (value - memory))


def _fresh_copy(module: nn.Module) -> nn.Module:
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
