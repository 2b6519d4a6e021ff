"""Do MAMO's memories personalise? Statistics of a trained (or training) model's memories.

The report of ``mamo-l2l inspect`` (mamo_l2l/api/inspect.py) gives, for each memory, its slot norms and
``slot_distance_min_ratio`` (smallest distance between two slots over the mean slot norm: 0 means
two slots are equal, i.e. collapsed), and over the training and the test users what they read:
the attention entropy (``attention_entropy_max`` = ln K is a uniform attention, which
personalises nothing), how many users pick each slot as their top slot, and how much the
personalised start differs across users (``*_start_spread``: the norm of the per-coordinate
standard deviation over users divided by the mean norm; 0 = every user starts in the same place).
docs/algorithm.md ("Checking that the memories personalise") explains each figure.
"""
from __future__ import annotations

import math
from typing import Any, Dict

import torch

from mamo_l2l.core.errors import MamoError

MEMORIES = ("profile", "user_bias", "preference")


def slot_stats(memory: torch.Tensor) -> Dict[str, Any]:
    """Slot norms and the smallest pairwise slot distance relative to the mean slot norm."""
    flat = memory.detach().reshape(memory.shape[0], -1).to(torch.float64)
    norms = flat.norm(dim=1)
    k = flat.shape[0]
    if k < 2:
        ratio = float("nan")
    else:
        dist = torch.cdist(flat, flat)
        iu = torch.triu_indices(k, k, offset=1)
        ratio = float(dist[iu[0], iu[1]].min() / norms.mean().clamp(min=1e-12))
    return {"slot_norms": [float(v) for v in norms], "slot_distance_min_ratio": ratio}


#: users per chunk of ``users_summary``: reading every training user at once holds the read
#: [users, |theta_u|] and its float64 copies (ML-1M: 4,126 x 10,336, 0.7 GB at the peak of a run)
USERS_PER_CHUNK = 512


class RowMoments:
    """Per-coordinate mean and sum of squared deviations of rows added a chunk at a time (the
    chunks merged exactly: Chan, Golub and LeVeque's pairwise update), and the sum of the row norms."""

    def __init__(self):
        self.n, self.mean, self.m2, self.norms = 0, None, None, 0.0

    def add(self, x: torch.Tensor) -> None:
        nb = x.shape[0]
        if nb == 0:
            return
        x = x.reshape(nb, -1).to(torch.float64)
        mean = x.mean(0)
        m2 = ((x - mean) ** 2).sum(0)
        self.norms += float(x.norm(dim=1).sum())
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mean, m2
            return
        n, delta = self.n + nb, mean - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.n * nb / n)
        self.n = n

    def mean_norm(self) -> float:
        return self.norms / self.n if self.n else float("nan")

    def spread(self) -> float:
        """Norm of the per-coordinate std over the rows over the mean row norm (0 under two rows)."""
        if self.n < 2 or self.norms == 0.0:
            return 0.0
        return float((self.m2 / self.n).sum().sqrt() / self.mean_norm())


@torch.no_grad()
def users_summary(algorithm, profiles: torch.Tensor, chunk: int = USERS_PER_CHUNK) -> Dict[str, Any]:
    """What these users (profiles p_u [n, P_u]) read from the memories, ``chunk`` users at a time."""
    memory = algorithm.memory
    attention, bias, pref = [], RowMoments(), RowMoments()
    for a in range(0, max(profiles.shape[0], 1), chunk):
        read = memory.read(profiles[a:a + chunk].to(memory.profile))
        attention.append(read.attention.to(torch.float64))
        if algorithm.feature_memory:
            bias.add(algorithm.tau * read.bias)                # what theta_u^0 moves by, per user
        if algorithm.task_memory:
            pref.add(read.pref)
    a = torch.cat(attention)
    k = a.shape[-1]
    entropy = -(a * a.clamp(min=1e-300).log()).sum(-1)
    out: Dict[str, Any] = {
        "users": int(a.shape[0]),
        "attention_entropy_mean": float(entropy.mean()),
        "attention_entropy_max": math.log(k),
        "top_slot_counts": [int(c) for c in torch.bincount(a.argmax(-1), minlength=k)],
        "bias_start_spread": None, "bias_start_norm_ratio": None, "pref_start_spread": None,
    }
    if algorithm.feature_memory:
        phi = torch.cat([p.detach().reshape(-1) for n, p in algorithm.model.head.named_parameters()
                         if n in algorithm.user_names])
        out["bias_start_spread"] = bias.spread()
        out["bias_start_norm_ratio"] = float(bias.mean_norm() / phi.norm().clamp(min=1e-12))
    if algorithm.task_memory:
        out["pref_start_spread"] = pref.spread()
    return out


def memory_summary(algorithm, profiles: torch.Tensor) -> Dict[str, Any]:
    """The compact per-epoch record kept in the run history (training users)."""
    users = users_summary(algorithm, profiles)
    return {"attention_entropy_mean": users["attention_entropy_mean"],
            "slot_distance_min_ratio": {name: slot_stats(getattr(algorithm.memory, name))["slot_distance_min_ratio"]
                                        for name in MEMORIES},
            "top_slot_counts": users["top_slot_counts"],
            "pref_start_spread": users["pref_start_spread"], "bias_start_spread": users["bias_start_spread"]}


def inspect_memories(algorithm, groups: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """The full report for a MAMO-family algorithm; ``groups`` maps a name to user feature rows."""
    if not hasattr(algorithm, "memory"):
        raise MamoError(f"model {getattr(algorithm, 'name', '?')!r} has no memories to inspect "
                        "(inspect works on mamo and its ablations)")
    memory = algorithm.memory
    return {
        "slots": memory.slots, "memory_update": memory.update, "key_init": memory.key_init,
        "temperature": memory.temperature, "tau": algorithm.tau,
        "feature_memory": algorithm.feature_memory, "task_memory": algorithm.task_memory,
        "memories": {name: slot_stats(getattr(memory, name)) for name in MEMORIES},
        "users": {name: users_summary(algorithm, algorithm.profiles(rows)) for name, rows in groups.items()},
    }






