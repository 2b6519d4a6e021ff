"""Strong top-N references (docs/algorithm.md, "Top-N references"), fitted on the training tasks
only, each hyperparameter chosen on the validation users (``tune_references``), scored by the
same catalogue code (catalogue.scorer_catalogue) on the same users as the models:

- ``ease`` (Steck, WWW 2019): X the binary matrix of the training tasks' ratings (training users x
  items), P = (X^T X + lambda I)^-1, B = I - P / diag(P) (column j divided by P_jj, so diag B = 0);
  a user's scores = x_support B (x_support: the binary row of the support items). lambda: ``EASE_LAMBDAS``.
- ``item-knn``: cosine item-item similarity S_ij = (X^T X)_ij / (|x_i| |x_j| + shrink), diagonal
  0, only each item's ``k`` most similar items kept (column-wise); scores = x_support S. (k, shrink):
  ``KNN_GRID``.
- ``als``: explicit ALS with biases, r_ui = mu + b_u + b_i + p_u . q_i, alternating ridge solves
  (penalty lambda on b and p / q) over the training ratings, ``ALS_ITERS`` sweeps; a test user's
  (b_u, p_u) is solved from the support ratings with the items fixed; an item without training
  ratings has b_i = 0, q_i = 0. Its predicted ratings serve MAE/RMSE/nDCG@k on the query and the
  catalogue. (factors, lambda): ``ALS_GRID``, chosen on the validation users' MAE.
- ``content-knn``: F the items' one-hot feature rows (every non-identity field; ``idf`` weighting:
  each value weighted by log(n_items / items with the value)), rows L2-normalised; a user's scores
  = sum over the liked support items j (rating >= the relevant rating; all support items when
  none is) of cos(F_c, F_j). Weighting: ``CONTENT_WEIGHTINGS``.
- ``choice-prior``: the choice prior c_i alone (ranking.choice_prior), no hyperparameter.

The rankers (all but ``als``) are chosen on the validation users' catalogue Recall@10 over the
training items (users' own non-query items left out, as in the test scenarios); ties go to the
first grid entry. A scorer maps (tasks, candidate items) to float64 scores [len(tasks), len(candidates)].
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mamo_l2l.data.batching import part_ratings, rating_tasks, task_ratings
from mamo_l2l.data.types import EncodedDataset, Splits, Task
from mamo_l2l.evaluation.catalogue import CatalogueTargets, UserItems, scorer_catalogue
from mamo_l2l.evaluation.metrics import scenario_metrics
from mamo_l2l.evaluation.ranking import choice_prior

EASE_LAMBDAS = (50.0, 200.0, 500.0, 1000.0, 3000.0)
KNN_GRID = ((50, 0.0), (50, 20.0), (200, 0.0), (200, 20.0), (0, 0.0), (0, 20.0))   # k = 0: all
ALS_GRID = ((16, 3.0), (16, 8.0), (16, 20.0), (32, 8.0))
ALS_ITERS = 8
CONTENT_WEIGHTINGS = ("binary", "idf")
TOPN_REFERENCES = ("ease", "item-knn", "als", "content-knn", "choice-prior")


# ------------------------------------------------------------------ matrices
def binary_rows(tasks: Sequence[Task], n_items: int, support_only: bool = True) -> torch.Tensor:
    """float32 [len(tasks), n_items]: 1 on each task's support items (and query items unless
    ``support_only``)."""
    x = torch.zeros(len(tasks), n_items)
    for r, t in enumerate(tasks):
        x[r, torch.from_numpy(t.support_items)] = 1.0
        if not support_only:
            x[r, torch.from_numpy(t.query_items)] = 1.0
    return x


def ease_matrix(gram: torch.Tensor, lam: float) -> torch.Tensor:
    """B = I - P / diag(P), P = (G + lambda I)^-1 (float64 in, float32 out; diag B = 0)."""
    g = gram.clone()
    g.diagonal().add_(lam)
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))
    b = -p / p.diagonal()[None, :]
    b.diagonal().zero_()
    return b.float()


def knn_matrix(gram: torch.Tensor, k: int, shrink: float) -> torch.Tensor:
    """Cosine item-item similarity with shrink, diagonal 0, each column's k largest kept (k = 0: all)."""
    norm = gram.diagonal().sqrt()
    s = (gram / (norm[:, None] * norm[None, :] + shrink + 1e-12)).float()
    s.diagonal().zero_()
    if 0 < k < s.shape[0]:
        top = torch.topk(s, k, dim=0).indices
        kept = torch.zeros_like(s).scatter_(0, top, s.gather(0, top))
        s = kept
    return s


def linear_scorer(matrix: torch.Tensor) -> Callable:
    """scores = x_support @ matrix[:, candidates] (ease, item-knn): the sum of the matrix rows of
    each task's support items, over the candidate columns (gathered once per candidate list)."""
    cache: Dict[str, Any] = {}

    def score(tasks, candidates):
        cand = np.asarray(candidates)
        if cache.get("key") is not cand:
            cache.update(key=cand, cols=matrix[:, torch.from_numpy(cand)])
        rows, items, _ = part_ratings(tasks, "support")
        x = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows, items])), torch.ones(len(rows)),
                                    (len(tasks), matrix.shape[0]), check_invariants=False)
        return torch.sparse.mm(x, cache["cols"]).double().numpy()
    score.clear = cache.clear   # drop the gathered columns (``_pick``, between grid entries)
    return score


# ------------------------------------------------------------------ content
def feature_matrix(data: EncodedDataset, weighting: str) -> torch.Tensor:
    """L2-normalised one-hot rows [n_items, values] of the non-identity fields (PAD dropped)."""
    fields = [f for f in data.item_layout if not f.identity]
    n = len(data.item_ids)
    offsets = np.cumsum([0] + [f.vocab_size for f in fields])
    f_mat = torch.zeros(n, max(int(offsets[-1]), 1), dtype=torch.float64)
    for off, f in zip(offsets, fields):
        codes = torch.from_numpy(np.asarray(data.item_x[:, f.start:f.stop], dtype=np.int64))
        rows = torch.arange(n)[:, None].expand_as(codes)
        keep = codes > 0
        f_mat[rows[keep], (codes[keep] + int(off))] = 1.0
    if weighting == "idf":
        df = f_mat.sum(0)
        f_mat = f_mat * torch.where(df > 0, torch.log(n / df.clamp(min=1.0)), torch.zeros_like(df))[None, :]
    return (f_mat / f_mat.norm(dim=1, keepdim=True).clamp(min=1e-12)).float()


def content_scorer(features: torch.Tensor, threshold: float) -> Callable:
    def score(tasks, candidates):
        liked = torch.zeros(len(tasks), features.shape[0])
        for r, t in enumerate(tasks):
            good = t.support_items[t.support_ratings >= threshold]
            liked[r, torch.from_numpy(good if good.size else t.support_items)] = 1.0
        cand = features[torch.from_numpy(np.asarray(candidates))]
        return ((liked @ features) @ cand.T).double().numpy()
    return score


def prior_scorer(prior: np.ndarray) -> Callable:
    return lambda tasks, cand: np.broadcast_to(prior[np.asarray(cand)], (len(tasks), len(cand)))


# ------------------------------------------------------------------ explicit ALS with biases
class _Pattern:
    """The (row, column) pairs of one side's ratings as a CSR matrix [n_rows, n_cols] of ones, built
    once per fit (sorted by row, then column; each pair at most once); ``values`` puts a target
    vector given in the pairs' original order into that order."""

    def __init__(self, n_rows: int, n_cols: int, rows: torch.Tensor, cols: torch.Tensor, dtype=torch.float64):
        self.order = torch.argsort(rows * n_cols + cols)
        crow = torch.zeros(n_rows + 1, dtype=torch.long)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=n_rows), 0)
        self.crow, self.col, self.size = crow, cols[self.order], (n_rows, n_cols)
        self.ones = self.csr(torch.ones(len(rows), dtype=dtype))

    def csr(self, sorted_values: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():   # torch's "CSR support is in beta" note, on every first use
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(self.crow, self.col, sorted_values, self.size, check_invariants=False)

    def values(self, target: torch.Tensor) -> torch.Tensor:
        return self.csr(target[self.order])


def _ridge_side(pattern: _Pattern, target: torch.Tensor, table: torch.Tensor, lam: float) -> torch.Tensor:
    """Per row e: argmin_w sum_{ratings (e, c)} (target - o_c . w)^2 + lam |w|^2, with o_c = [1,
    table_c] the augmented other-side vector (``pattern``: the rows' columns). The normal equations
    are two sparse-dense products: A = M (o o^T per column), b = T o."""
    other = torch.cat([torch.ones(len(table), 1, dtype=table.dtype), table], 1)
    d = other.shape[1]
    a = pattern.ones @ (other[:, :, None] * other[:, None, :]).reshape(len(table), d * d)
    b = pattern.values(target.to(table.dtype)) @ other
    a = a.reshape(pattern.size[0], d, d) + lam * torch.eye(d, dtype=table.dtype)
    return torch.linalg.solve(a, b)


class ExplicitALS:
    """r_ui = mu + b_u + b_i + p_u . q_i fitted on the training tasks (module doc)."""

    def __init__(self, train: Sequence[Task], n_items: int, factors: int, lam: float, seed: int = 0,
                 iters: int = ALS_ITERS):
        items, ratings = task_ratings(train)
        users = torch.from_numpy(rating_tasks(train))
        items_t, r = torch.from_numpy(items), torch.from_numpy(ratings)
        self.mu, self.lam = float(r.mean()) if len(r) else 0.0, lam
        gen = torch.Generator().manual_seed(seed)
        q = torch.randn(n_items, factors, generator=gen, dtype=torch.float64) * 0.1
        b_i = torch.zeros(n_items, dtype=torch.float64)
        by_user, by_item = _Pattern(len(train), n_items, users, items_t), _Pattern(n_items, len(train), items_t, users)
        for _ in range(iters):
            w_u = _ridge_side(by_user, r - self.mu - b_i[items_t], q, lam)
            b_u, p = w_u[:, 0], w_u[:, 1:]
            w_i = _ridge_side(by_item, r - self.mu - b_u[users], p, lam)
            b_i, q = w_i[:, 0], w_i[:, 1:]
        trained = torch.zeros(n_items, dtype=torch.bool)
        trained[items_t] = True
        self.b_i = torch.where(trained, b_i, torch.zeros_like(b_i))        # unseen items: 0, 0
        self.q = torch.where(trained[:, None], q, torch.zeros_like(q))

    def fold_in(self, tasks: Sequence[Task]) -> torch.Tensor:
        """[len(tasks), f + 1]: each task's (b_u, p_u) solved from its support ratings."""
        rows, items, r = (torch.from_numpy(a) for a in part_ratings(tasks, "support"))
        pattern = _Pattern(len(tasks), len(self.q), rows, items)
        return _ridge_side(pattern, r - self.mu - self.b_i[items], self.q, self.lam)

    def predict(self, tasks: Sequence[Task], items: np.ndarray) -> np.ndarray:
        """Unclipped predicted ratings [len(tasks), len(items)]."""
        w = self.fold_in(tasks)
        it = torch.from_numpy(np.asarray(items, dtype=np.int64))
        return (self.mu + w[:, :1] + self.b_i[it][None, :] + w[:, 1:] @ self.q[it].T).numpy()

    def query_predictions(self, tasks: Sequence[Task], rating_range: Tuple[float, float]) -> List[np.ndarray]:
        if not tasks:
            return []
        w = self.fold_in(tasks)
        out = []
        for k, t in enumerate(tasks):
            it = torch.from_numpy(t.query_items.astype(np.int64))
            p = self.mu + w[k, 0] + self.b_i[it] + self.q[it] @ w[k, 1:]
            out.append(np.clip(p.numpy(), *rating_range))
        return out

    def scorer(self) -> Callable:
        return lambda tasks, cand: self.predict(tasks, cand)


# ------------------------------------------------------------------ choice on validation users
def _pick(valid: Sequence[Task], candidates: np.ndarray, threshold: float, rated: UserItems,
          options: Dict[str, Callable]) -> Tuple[str, Dict[str, float]]:
    """The option with the best validation Recall@10 (first on ties) and every option's Recall@10."""
    targets = CatalogueTargets(valid, candidates, threshold, rated)   # once for every option
    table = {}
    for name, f in options.items():
        table[name] = scorer_catalogue(f, valid, candidates, threshold, rated, targets=targets)["recall@10"]
        getattr(f, "clear", lambda: None)()   # one grid entry's cached columns in memory at a time
    best = max(table, key=lambda n: np.nan_to_num(table[n], nan=-1.0))
    return best, table


def fit_references(splits: Splits, data: EncodedDataset, threshold: float, seed: int = 0,
                   prior: Optional[np.ndarray] = None) -> Tuple[Dict[str, Callable], ExplicitALS, Dict[str, Any]]:
    """(scorers of TOPN_REFERENCES, the chosen ALS model, the choices: {reference: {"chosen":
    hyperparameters, "valid_*": validation metric per grid entry}}). ``prior``: the run's choice
    prior when it has one (the same ranking.choice_prior of the same training tasks)."""
    n = len(data.item_ids)
    cand = np.unique(task_ratings(splits.train)[0])
    rated = UserItems(data)
    x = binary_rows(splits.train, n, support_only=False).double()
    gram = x.T @ x
    chosen: Dict[str, Any] = {}
    ease = {f"{lam:g}": linear_scorer(ease_matrix(gram, lam)) for lam in EASE_LAMBDAS}
    best, table = _pick(splits.valid, cand, threshold, rated, ease)
    scorers = {"ease": ease[best]}
    chosen["ease"] = {"chosen": {"lambda": float(best)}, "valid_recall@10": table}
    knn = {f"{k},{s:g}": linear_scorer(knn_matrix(gram, k, s)) for k, s in KNN_GRID}
    best, table = _pick(splits.valid, cand, threshold, rated, knn)
    scorers["item-knn"] = knn[best]
    k, s = best.split(",")
    chosen["item-knn"] = {"chosen": {"neighbours": int(k), "shrink": float(s)}, "valid_recall@10": table}
    als, chosen["als"] = _choose_als(splits, data, seed)
    scorers["als"] = als.scorer()
    content = {w: content_scorer(feature_matrix(data, w), threshold) for w in CONTENT_WEIGHTINGS}
    best, table = _pick(splits.valid, cand, threshold, rated, content)
    scorers["content-knn"] = content[best]
    chosen["content-knn"] = {"chosen": {"weighting": best}, "valid_recall@10": table}
    scorers["choice-prior"] = prior_scorer(choice_prior(data, splits.train, seed) if prior is None else prior)
    chosen["choice-prior"] = {"chosen": {}}
    return scorers, als, chosen


def _choose_als(splits: Splits, data: EncodedDataset, seed: int) -> Tuple[ExplicitALS, Dict[str, Any]]:
    """The ALS_GRID entry with the lowest validation MAE (first on ties)."""
    n = len(data.item_ids)
    truths = [t.query_ratings for t in splits.valid]
    fits, table = {}, {}
    for factors, lam in ALS_GRID:
        key = f"{factors},{lam:g}"
        fits[key] = ExplicitALS(splits.train, n, factors, lam, seed)
        preds = fits[key].query_predictions(splits.valid, data.rating_range)
        table[key] = scenario_metrics(preds, truths)["mae"] if preds else math.nan
    best = min(table, key=lambda k: np.nan_to_num(table[k], nan=np.inf))
    f, lam = best.split(",")
    return fits[best], {"chosen": {"factors": int(f), "lambda": float(lam)}, "valid_mae": table}


def als_rating_metrics(als: ExplicitALS, splits: Splits, data: EncodedDataset,
                       scenarios: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """MAE/RMSE/nDCG@k of the ALS reference on each scenario's query ratings."""
    return {s: scenario_metrics(als.query_predictions(splits.test[s], data.rating_range),
                                [t.query_ratings for t in splits.test[s]]) for s in scenarios}
