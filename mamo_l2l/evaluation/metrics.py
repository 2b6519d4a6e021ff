"""Per-scenario metrics (docs/algorithm.md, Metrics): MAE, RMSE over all query ratings; nDCG@k
averaged over users; the catalogue-ranking metrics Recall@K, NDCG@K and Hit@K.

Ties in a predicted ranking are not broken by position: every ranking metric is its exact
expected value when tied predictions are put in a uniformly random order. Scores closer than
``TIE_TOLERANCE`` count as tied, so that float32 rounding differences between backends (about
1e-7 on a rating scale) never reorder items: going down the sorted scores, a group starts at the
highest score s not yet grouped and holds every score >= s - TIE_TOLERANCE (no chaining). Under that order each
item of a tied group is equally likely at each of the group's positions, so (by linearity) the
expected DCG gives each of those positions the group's mean gain. Query order (and item index
order) therefore never changes a metric.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

NDCG_KS = (1, 3, 5)
#: scores within this absolute distance of a tie group's top score are tied (module doc)
TIE_TOLERANCE = 1e-5
#: scores beyond the top k looked at for a tie group crossing position k (more: the whole row)
TIE_WINDOW = 32
CATALOGUE_K = 10
CATALOGUE_METRICS = (f"recall@{CATALOGUE_K}", f"ndcg@{CATALOGUE_K}", f"hit@{CATALOGUE_K}")
#: the beyond-accuracy metrics of the users' top-K lists (``list_metrics``)
LIST_METRICS = (f"coverage@{CATALOGUE_K}", f"personalisation@{CATALOGUE_K}", f"popularity@{CATALOGUE_K}")
#: users sampled (seeded) for personalisation@K, and the share of training items that are "popular"
PERSONALISATION_USERS, POPULAR_SHARE = 500, 0.10


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


def dcg_at_k(relevance_in_rank_order: np.ndarray, k: int) -> float:
    """sum_{r<=k} (2^rel_r - 1) / log2(r + 1) for ranks r = 1..k."""
    rel = np.asarray(relevance_in_rank_order, dtype=np.float64)[:k]
    return float(((2.0 ** rel - 1.0) * _discounts(rel.size)).sum())


def _tie_groups(scores: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order, group starts, group sizes): ``order`` sorts by descending score; scores within
    ``TIE_TOLERANCE`` of a group's top score form one group (module doc; their relative order in
    ``order`` is irrelevant to every caller)."""
    order = np.argsort(-scores, kind="stable")
    neg = -scores[order]                    # ascending
    starts = []
    a = 0
    while a < neg.size:
        starts.append(a)
        a = int(np.searchsorted(neg, neg[a] + TIE_TOLERANCE, side="right"))
    starts = np.asarray(starts, dtype=np.int64)
    sizes = np.diff(np.r_[starts, neg.size])
    return order, starts, sizes


def expected_dcg(scores: np.ndarray, gains: np.ndarray, k: int) -> float:
    """E[sum_{r<=k} gain_r / log2(r + 1)] when ties in ``scores`` are ordered uniformly at random."""
    scores = np.asarray(scores, dtype=np.float64)
    gains = np.asarray(gains, dtype=np.float64)
    order, starts, sizes = _tie_groups(scores)
    g = gains[order]
    disc = _discounts(min(k, scores.size))
    total = 0.0
    for a, n in zip(starts, sizes):
        if a >= k:
            break
        total += g[a:a + n].mean() * disc[a:min(a + n, k)].sum()
    return float(total)


def ndcg_at_k(pred: np.ndarray, true: np.ndarray, k: int) -> float:
    """nDCG@k of one user's query set, gain 2^rating - 1, expected over random orders of tied
    predictions (1.0 when every true rating's gain is 0: nothing to rank)."""
    true = np.asarray(true, dtype=np.float64)
    idcg = dcg_at_k(np.sort(true)[::-1], k)
    if idcg == 0.0:
        return 1.0
    return expected_dcg(np.asarray(pred, dtype=np.float64), 2.0 ** true - 1.0, k) / idcg


def _padded(rows: Sequence[np.ndarray], fill: float) -> np.ndarray:
    """float64 [len(rows), longest] of the rows, each padded on the right with ``fill``."""
    lens = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    out = np.full((len(rows), max(int(lens.max(initial=0)), 1)), fill, dtype=np.float64)
    at = np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    out[np.repeat(np.arange(len(rows)), lens), at] = np.concatenate(rows) if len(rows) else []
    return out


def ndcg_rows(preds: Sequence[np.ndarray], trues: Sequence[np.ndarray], ks: Sequence[int]) -> Dict[int, np.ndarray]:
    """{k: nDCG@k of every user} for many users at once: ``ndcg_at_k`` (the per-user definition,
    tested against this) without a Python loop over the users. Users are padded to the longest
    query set with score -inf and gain 0; the padding sorts after every real item, so it takes
    only positions the user's own items do not, and forms tie groups of its own."""
    scores = _padded([np.asarray(p, dtype=np.float64) for p in preds], -np.inf)
    gains = 2.0 ** _padded([np.asarray(t, dtype=np.float64) for t in trues], 0.0) - 1.0
    n_users, width = scores.shape
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked, ranked_gains = np.take_along_axis(scores, order, 1), np.take_along_axis(gains, order, 1)
    group = np.zeros((n_users, width), dtype=np.int64)       # tie group of each rank (module doc)
    top, current = ranked[:, 0].copy(), np.zeros(n_users, dtype=np.int64)
    for j in range(1, width):
        new = ranked[:, j] < top - TIE_TOLERANCE              # -inf padding: one group after the items
        top = np.where(new, ranked[:, j], top)
        current += new
        group[:, j] = current
    flat = (np.arange(n_users)[:, None] * width + group).ravel()
    size = np.bincount(flat, minlength=n_users * width)
    mean_gain = np.bincount(flat, weights=ranked_gains.ravel(), minlength=n_users * width) / np.maximum(size, 1)
    ideal = -np.sort(-gains, axis=1)
    out = {}
    for k in ks:
        disc = np.zeros(width)
        disc[:min(k, width)] = _discounts(min(k, width))
        group_disc = np.bincount(flat, weights=np.tile(disc, n_users), minlength=n_users * width)
        dcg = (mean_gain * group_disc).reshape(n_users, width).sum(axis=1)
        idcg = (ideal * disc).sum(axis=1)
        out[k] = np.where(idcg == 0.0, 1.0, dcg / np.where(idcg == 0.0, 1.0, idcg))
    return out


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
    for k, per_user in ndcg_rows(preds, trues, NDCG_KS).items():
        out[f"ndcg@{k}"] = float(np.mean(per_user))
    out["users"] = len(preds)
    out["ratings"] = int(t.size)
    return out


# ------------------------------------------------------------------ catalogue ranking
def catalogue_user_metrics(scores: np.ndarray, relevant: np.ndarray, n_relevant: int,
                           k: int = CATALOGUE_K) -> Tuple[float, float, float]:
    """(Recall@k, NDCG@k, Hit@k) of one user's ranking of a candidate list, each the exact
    expectation over random orders of tied scores. The definition, one user at a time:
    ``catalogue_chunk_metrics`` computes it for a block of users and is tested against it.

    scores: float [C] candidate scores (-inf = not rankable, e.g. a support item);
    relevant: bool [C]; n_relevant: the user's relevant items in all (>= relevant.sum(): a relevant
    item that is not a candidate counts in the denominators and can never be retrieved).
    Recall = retrieved relevant / n_relevant; NDCG with binary gain, ideal = min(n_relevant, k)
    hits; Hit = P(at least one relevant item in the top k).
    """
    scores = np.asarray(scores, dtype=np.float64)
    relevant = np.asarray(relevant, dtype=bool)
    if n_relevant < 1:
        raise ValueError("catalogue metrics need at least one relevant item")
    finite = np.isfinite(scores)
    scores, relevant = scores[finite], relevant[finite]
    if scores.size > k:   # only the items at or above the k-th largest score can reach the top k
        kth = np.partition(scores, scores.size - k)[scores.size - k]
        top = scores >= kth - TIE_TOLERANCE   # a tie group reaching the top k starts at >= kth
        scores, relevant = scores[top], relevant[top]
    order, starts, sizes = _tie_groups(scores)
    rel = relevant[order].astype(np.float64)
    disc = _discounts(min(k, scores.size))
    dcg = found = 0.0
    miss = 1.0    # P(no relevant item in the top k)
    for a, n in zip(starts, sizes):
        if a >= k:
            break
        slots = min(a + n, k) - a
        r = rel[a:a + n].sum()
        dcg += r / n * disc[a:a + slots].sum()
        found += r * slots / n
        # P(none of the r relevant of n tied items lands in the `slots` top positions)
        if r > 0:
            miss *= math.comb(int(n - r), slots) / math.comb(int(n), slots)
    idcg = _discounts(min(n_relevant, k)).sum()
    return found / n_relevant, float(dcg / idcg), 1.0 - miss


def _top_groups(vals: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(group start flags bool [B, k], last group's start int [B]) of rows of scores sorted
    descending (-inf: none): _tie_groups' greedy grouping, row-wise (module doc)."""
    start = np.zeros(vals.shape, dtype=bool)
    thr = np.full(vals.shape[0], np.inf)
    last = np.zeros(vals.shape[0], dtype=np.int64)
    for j in range(vals.shape[1]):
        v = vals[:, j]
        s = np.isfinite(v) & (v < thr)   # -(-v + tol) == v - tol exactly: _tie_groups' boundary
        start[:, j] = s
        thr = np.where(s, v - TIE_TOLERANCE, thr)
        last = np.where(s, j, last)
    return start, last


def _count_above(s: torch.Tensor, relevant: np.ndarray, w_vals: np.ndarray, w_rel: np.ndarray,
                 thr: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Per row: how many scores, and how many relevant ones, are >= thr, counted in the top
    window (``w_vals``/``w_rel``) and over the whole row where the window is too short."""
    inside = w_vals >= thr[:, None]
    n, r = inside.sum(1), (inside & w_rel).sum(1)
    full = np.flatnonzero(inside[:, -1]) if w_vals.shape[1] < s.shape[1] else np.zeros(0, dtype=np.int64)
    if full.size:
        rows = torch.from_numpy(full)
        above = s[rows] >= torch.from_numpy(thr[full])[:, None]
        n[full] = above.sum(1).numpy()
        r[full] = (above & torch.from_numpy(np.ascontiguousarray(relevant[full], dtype=bool))).sum(1).numpy()
    return n, r


def catalogue_chunk_metrics(scores: np.ndarray, relevant: np.ndarray, n_relevant: np.ndarray,
                            k: int = CATALOGUE_K) -> np.ndarray:
    """float64 [B, 3]: catalogue_user_metrics of every row of ``scores`` [B, C] (non-finite: not
    rankable), ``relevant`` bool [B, C], ``n_relevant`` int [B] (each >= 1), computed row-wise at
    once. Each position r of the top k holds the expected relevance r_g / n_g of its tie group g;
    only the last group reaching the top k can extend beyond it, so its size and relevant count
    are counted over the whole row."""
    s = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float64))
    if s.numel() and not torch.isfinite(s.max()):   # a NaN or +inf somewhere: not rankable (one copy)
        s = torch.nan_to_num(s, nan=-math.inf, posinf=-math.inf, neginf=-math.inf)
    b, c = s.shape
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    if np.any(n_relevant < 1):
        raise ValueError("catalogue metrics need at least one relevant item")
    kk = min(k, c)
    if kk == 0:
        return np.zeros((b, 3))
    # the top kk and a window beyond them, for the last tie group's size (descending; the order
    # inside a tie group changes no metric)
    top = torch.topk(s, min(c, kk + TIE_WINDOW), dim=1)
    w_vals, w_idx = top.values.numpy(), top.indices.numpy()
    w_rel = relevant[np.arange(b)[:, None], w_idx]
    vals, rel = w_vals[:, :kk], w_rel[:, :kk].astype(np.float64)
    valid = np.isfinite(vals)
    start, last = _top_groups(vals)
    group = np.cumsum(start, axis=1)
    same = (group[:, :, None] == group[:, None, :]) & valid[:, :, None] & valid[:, None, :]
    size, hits = same.sum(2).astype(np.float64), (same * rel[:, None, :]).sum(2)
    thr = vals[np.arange(b), last] - TIE_TOLERANCE
    n_above, r_above = _count_above(s, relevant, w_vals, w_rel, thr)
    n_last = n_above - last
    r_last = r_above - (rel * (np.arange(kk) < last[:, None])).sum(1)
    in_last = valid & (group == group[np.arange(b), last][:, None])
    size, hits = np.where(in_last, n_last[:, None], size), np.where(in_last, r_last[:, None], hits)
    p = np.where(valid, hits / np.maximum(size, 1.0), 0.0)   # expected relevance per position
    disc = _discounts(kk)
    dcg, found = (p * disc).sum(1), p.sum(1)
    slots = in_last.sum(1)
    miss = np.ones(b)
    for i in range(kk):   # P(no relevant of the last group in its slots) = prod (n - r - i) / (n - i)
        on = i < slots
        miss = np.where(on, miss * (n_last - r_last - i) / np.where(on, n_last - i, 1), miss)
    early = (valid & ~in_last & (hits > 0)).any(1)            # a relevant item in a group inside the top k
    miss = np.where(early | ~valid[:, 0], np.where(early, 0.0, 1.0), miss)
    idcg = np.cumsum(_discounts(k))[np.minimum(n_relevant, k) - 1]
    return np.stack([found / n_relevant, dcg / idcg, 1.0 - miss], axis=1)


# ------------------------------------------------------------------ beyond accuracy
def top_list(scores: np.ndarray, k: int = CATALOGUE_K) -> np.ndarray:
    """Positions of the (at most) k highest finite scores, by descending score, ties by position
    (a deterministic list: what a user would be shown). The definition for one row: ``top_lists``
    computes it for a block and is tested against it."""
    scores = np.asarray(scores, dtype=np.float64)
    pos = np.flatnonzero(np.isfinite(scores))
    if pos.size > k:
        kth = np.partition(scores[pos], pos.size - k)[pos.size - k]
        pos = pos[scores[pos] >= kth]
    return pos[np.lexsort((pos, -scores[pos]))][:k]


def top_lists(scores: np.ndarray, k: int = CATALOGUE_K) -> List[np.ndarray]:
    """top_list of every row of ``scores`` [B, C], at once."""
    s = np.where(np.isfinite(scores), scores, -np.inf).astype(np.float64, copy=False)
    b, c = s.shape
    if min(k, c) == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(b)]
    finite = np.isfinite(s)
    if k < c:   # the k-th largest of each row (torch.topk: a block's rows at once, faster than np.partition)
        kth = torch.topk(torch.from_numpy(np.ascontiguousarray(s)), k, dim=1).values[:, k - 1:k].numpy()
        eq = (s == kth) & finite
        need = k - (s > kth).sum(1, keepdims=True)
        keep = (s > kth) | (eq & (np.cumsum(eq, axis=1) <= need))   # ties at the k-th by position
        keep = np.where(np.isfinite(kth), keep, finite)
    else:
        keep = finite
    r, col = np.nonzero(keep)
    order = np.lexsort((col, -s[r, col], r))
    return np.split(col[order].astype(np.int64), np.cumsum(keep.sum(1))[:-1])


def popular_items(train_counts: np.ndarray, share: float = POPULAR_SHARE) -> np.ndarray:
    """bool [n_items]: the ceil(share x training items) items with the most training ratings
    (ties by item index); ``train_counts`` int [n_items], 0 = not a training item."""
    counts = np.asarray(train_counts)
    n = int(math.ceil(share * int((counts > 0).sum())))
    order = np.lexsort((np.arange(counts.size), -counts))[:n]
    out = np.zeros(counts.size, dtype=bool)
    out[order] = True
    return out


def list_metrics(lists: Sequence[np.ndarray], n_candidates: int, popular: np.ndarray, seed: int = 0,
                 max_users: int = PERSONALISATION_USERS) -> Dict[str, float]:
    """coverage@K, personalisation@K and popularity@K of users' top-K lists (arrays of item
    indices): coverage = distinct listed items / candidates; personalisation = 1 - mean Jaccard
    overlap |a & b| / |a | b| over all pairs of a seeded sample of at most ``max_users`` users
    (NaN under two users); popularity = mean over users of the share of the list in ``popular``
    (bool [n_items])."""
    lists = [np.asarray(x, dtype=np.int64) for x in lists if len(x)]
    names = LIST_METRICS
    if not lists:
        return {m: float("nan") for m in names}
    listed = np.unique(np.concatenate(lists))
    pop = float(np.mean([popular[x].mean() for x in lists]))
    pers = float("nan")
    if len(lists) >= 2:
        pick = np.random.default_rng(seed).permutation(len(lists))[:max_users]
        sample = [lists[j] for j in pick]
        col = {int(i): c for c, i in enumerate(np.unique(np.concatenate(sample)))}
        m = np.zeros((len(sample), len(col)))
        for r, x in enumerate(sample):
            m[r, [col[int(i)] for i in x]] = 1.0
        inter = m @ m.T
        size = m.sum(1)
        jac = inter / (size[:, None] + size[None, :] - inter)
        iu = np.triu_indices(len(sample), 1)
        pers = float(1.0 - jac[iu].mean())
    return {names[0]: listed.size / max(n_candidates, 1), names[1]: pers, names[2]: pop}
