"""Per-scenario metrics (PROTOCOL.md): MAE, RMSE over all query ratings; nDCG@k averaged over users.

Ties in the predicted ranking are broken by the query position (stable sort on the negated
prediction): the earlier query entry ranks first. Query order is fixed by the protocol's seed,
so the result is deterministic.
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np

NDCG_KS = (1, 3, 5)


def dcg_at_k(relevance_in_rank_order: np.ndarray, k: int) -> float:
    """sum_{r<=k} (2^rel_r - 1) / log2(r + 1) for ranks r = 1..k."""
    rel = np.asarray(relevance_in_rank_order, dtype=np.float64)[:k]
    return float(((2.0 ** rel - 1.0) / np.log2(np.arange(2, rel.size + 2))).sum())


def ndcg_at_k(pred: np.ndarray, true: np.ndarray, k: int) -> float:
    """nDCG@k of one user's query set (1.0 when every true rating's gain is 0: nothing to rank)."""
    order = np.argsort(-np.asarray(pred, dtype=np.float64), kind="stable")
    ideal = np.sort(np.asarray(true, dtype=np.float64))[::-1]
    idcg = dcg_at_k(ideal, k)
    if idcg == 0.0:
        return 1.0
    return dcg_at_k(np.asarray(true)[order], k) / idcg


def scenario_metrics(preds: Sequence[np.ndarray], trues: Sequence[np.ndarray]) -> Dict[str, float]:
    """Metrics over one scenario's users; preds/trues are per-user arrays of query ratings."""
    if len(preds) == 0:
        out = {"mae": float("nan"), "rmse": float("nan")}
        out.update({f"ndcg@{k}": float("nan") for k in NDCG_KS})
        out.update(users=0, ratings=0)
        return out
    p = np.concatenate(preds).astype(np.float64)
    t = np.concatenate(trues).astype(np.float64)
    err = p - t
    out = {"mae": float(np.abs(err).mean()), "rmse": float(np.sqrt((err ** 2).mean()))}
    for k in NDCG_KS:
        out[f"ndcg@{k}"] = float(np.mean([ndcg_at_k(pu, tu, k) for pu, tu in zip(preds, trues)]))
    out["users"] = len(preds)
    out["ratings"] = int(t.size)
    return out
