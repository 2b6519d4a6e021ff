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


def _spread(x: torch.Tensor) -> float:
    """Norm of the per-coordinate std over users (rows) over the mean row norm."""
    x = x.reshape(x.shape[0], -1).to(torch.float64)
    if x.shape[0] < 2:
        return 0.0
    mean_norm = float(x.norm(dim=1).mean())
    if mean_norm == 0.0:
        return 0.0
    return float(x.std(dim=0, unbiased=False).norm() / mean_norm)


@torch.no_grad()
def users_summary(algorithm, profiles: torch.Tensor) -> Dict[str, Any]:
    """What these users (profiles p_u [n, P_u]) read from the memories."""
    memory = algorithm.memory
    read = memory.read(profiles.to(memory.profile))
    a = read.attention.to(torch.float64)
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
        shift = algorithm.tau * read.bias                       # what theta_u^0 moves by, per user
        phi = torch.cat([p.detach().reshape(-1) for n, p in algorithm.model.head.named_parameters()
                         if n in algorithm.user_names])
        out["bias_start_spread"] = _spread(shift)
        out["bias_start_norm_ratio"] = float(shift.norm(dim=-1).mean() / phi.norm().clamp(min=1e-12))
    if algorithm.task_memory:
        out["pref_start_spread"] = _spread(read.pref)
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






