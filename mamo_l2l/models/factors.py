"""Item taste factors' starting values (``model.taste_dim``; docs/algorithm.md, "The recommender"):
alternating least squares with biases on the training tasks' ratings.

r_ui ~ mu + b_u + b_i + p_u . q_i, each half-step a ridge regression per user (per item) of the
ratings minus the other biases on the other side's factors and a constant, penalty ``penalty`` on
factors and bias alike. Only the item factors q_i are returned: the users of the training tasks are
not the users the model will meet (a user's taste is fitted from the support set by the local
update, the model's own inner loop), and the item biases have their own start (shrunk means).
Plain numpy; the cost is one (k+1) x (k+1) solve per user and per item per iteration.

``implicit_item_factors``: the choice head's start (models/choice.py), implicit ALS on who rated
what, in torch (two sparse-dense products and one batched solve per half-step).
"""
from __future__ import annotations

import numpy as np
import torch

#: ridge penalty and ALS iterations of the start (docs/algorithm.md)
PENALTY = 20.0
ITERATIONS = 6


def _groups(keys: np.ndarray, n: int):
    """(key, row indices) for every key 0..n-1 that occurs, by one stable sort."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n + 1))
    return [(j, order[bounds[j]:bounds[j + 1]]) for j in np.flatnonzero(np.diff(bounds))]


def _half_step(rows, other, target, k, penalty, out, out_bias):
    eye = penalty * np.eye(k + 1)
    for j, idx in rows:
        x = np.empty((idx.size, k + 1))
        x[:, :k] = other[idx]
        x[:, k] = 1.0
        w = np.linalg.solve(x.T @ x + eye, x.T @ target[idx])
        out[j], out_bias[j] = w[:k], w[k]


def als_item_factors(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
                     k: int, seed: int, penalty: float = PENALTY, iterations: int = ITERATIONS) -> np.ndarray:
    """Item factors [n_items, k] (float32) of ALS with biases; items without a rating keep 0.

    ``users``/``items``/``ratings``: one entry per training rating (user and item indices)."""
    users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
    r = np.asarray(ratings, np.float64)
    rng = np.random.default_rng([seed, 0xA15])
    p = rng.normal(0.0, 0.1, (n_users, k))
    q = rng.normal(0.0, 0.1, (n_items, k))
    b_u, b_i = np.zeros(n_users), np.zeros(n_items)
    mu = float(r.mean()) if r.size else 0.0
    by_user, by_item = _groups(users, n_users), _groups(items, n_items)
    for _ in range(iterations):
        _half_step(by_user, q[items], r - mu - b_i[items], k, penalty, p, b_u)
        _half_step(by_item, p[users], r - mu - b_u[users], k, penalty, q, b_i)
    rated = np.bincount(items, minlength=n_items) > 0
    q[~rated] = 0.0
    return q.astype(np.float32)


#: implicit ALS of the choice head's start (docs/algorithm.md, "The choice head")
IMPLICIT_ITERATIONS = 6


def row_grams(chosen: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """[rows, k, k]: per row e of the sparse ``chosen`` [rows, cols], sum_c chosen_ec o_c o_c^T
    (``other`` [cols, k]: the o_c), the normal equations' matrices of a row-wise ridge solve. The
    products o_ci o_cj are symmetric, so only the upper triangle's k (k + 1) / 2 columns pass
    through the sparse product and the lower half is a copy: half the work of the k x k products,
    and bitwise the same sums (each entry adds the same products in the same order)."""
    k = other.shape[1]
    i, j = torch.triu_indices(k, k)
    half = chosen @ (other[:, i] * other[:, j])   # contiguous [cols, k (k + 1) / 2]
    full = torch.empty(half.shape[0], k, k, dtype=half.dtype)
    full[:, i, j] = half
    full[:, j, i] = half
    return full


def implicit_side(chosen: torch.Tensor, other: torch.Tensor, alpha: float, penalty: float,
                  gram: torch.Tensor = None) -> torch.Tensor:
    """One half-step of implicit ALS: per row e, argmin_w sum_c (1 + alpha x_ec) (x_ec - o_c . w)^2
    + penalty |w|^2 over every column c (x binary, ``chosen`` the sparse x [rows, cols]), i.e.
    (O^T O + alpha O_e^T O_e + penalty I) w = (1 + alpha) O_e^T 1 (Hu et al. 2008). ``gram``: O^T O
    when it sums over more columns than ``chosen`` has (columns no row chose)."""
    k = other.shape[1]
    # contiguous rows: ``other`` comes out of linalg.solve column-major, and sparse.mm with a
    # non-contiguous dense side took 25x longer (ML-1M: 12.5 s against 0.5 s per half-step)
    other = other.contiguous()
    a = row_grams(chosen, other) * alpha + (other.T @ other if gram is None else gram)
    a = a + penalty * torch.eye(k, dtype=other.dtype)
    return torch.linalg.solve(a, (1.0 + alpha) * torch.sparse.mm(chosen, other))


def implicit_item_factors(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, k: int,
                          alpha: float, penalty: float, seed: int,
                          iterations: int = IMPLICIT_ITERATIONS) -> np.ndarray:
    """Item factors [n_items, k] (float32) of implicit ALS on the binary matrix of who rated what
    (``users``/``items``: one entry per training rating); items without a rating keep 0.

    Only the rated items' rows are solved (an unrated item's solve has a zero right-hand side:
    its factors are exactly 0 after the first half-step); their random start still enters the
    first users' half-step, through O^T O over every item (summed over all n_items rows, zeros
    included, so that the sums are those of a solve over every item)."""
    idx = np.unique(np.stack([np.asarray(users, np.int64), np.asarray(items, np.int64)]), axis=1)
    rated = np.unique(idx[1])
    col = np.searchsorted(rated, idx[1])                      # rated items renumbered, order kept
    x = torch.sparse_coo_tensor(torch.from_numpy(np.stack([idx[0], col])), torch.ones(idx.shape[1]),
                                (n_users, len(rated)), check_invariants=False).coalesce()
    xt = x.t().coalesce()
    gen = torch.Generator().manual_seed(int(seed) * 7919 + 0x1A1)
    q_all = torch.randn(n_items, k, generator=gen) * 0.01
    rows = torch.from_numpy(rated)
    for _ in range(iterations):
        p = implicit_side(x, q_all[rows], alpha, penalty, gram=q_all.T @ q_all)
        q_all = torch.zeros(n_items, k)
        q_all[rows] = implicit_side(xt, p, alpha, penalty)
    return q_all.numpy().astype(np.float32)
