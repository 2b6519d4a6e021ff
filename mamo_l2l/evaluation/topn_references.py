"""Strong top-N references (docs/algorithm.md, "Top-N references"), fitted on the training tasks
only, each hyperparameter chosen on the validation users (``tune_references``), scored by the
same catalogue code (catalogue.scorer_catalogue) on the same users as the models:

- ``ease`` (Steck, WWW 2019): X the binary matrix of the training tasks' ratings (training users x
  items), P = (X^T X + lambda I)^-1, B = I - P / diag(P) (column j divided by P_jj, so diag B = 0);
  a user's scores = x_support B (x_support: the binary row of the support items). lambda: ``EASE_LAMBDAS``.
- ``item-knn``: cosine item-item similarity S_ij = (X^T X)_ij / (|x_i| |x_j| + shrink), diagonal
  0, only each item's ``k`` most similar items kept (column-wise); scores = x_support S. (k, shrink):
  ``KNN_GRID``.
- Both model the items of ``vocabulary`` (at most ``MAX_VOCABULARY``, the most-rated training
  items); a candidate outside it scores ``UNMODELLED``.
- ``als``: explicit ALS with biases, r_ui = mu + b_u + b_i + p_u . q_i, alternating ridge solves
  (penalty lambda on b and p / q) over the training ratings, ``ALS_ITERS`` sweeps; a test user's
  (b_u, p_u) is solved from the support ratings with the items fixed; an item without training
  ratings has b_i = 0, q_i = 0. Its predicted ratings serve MAE/RMSE/nDCG@k on the query and the
  catalogue. (factors, lambda): ``ALS_GRID``, chosen on the validation users' MAE.
- ``content-knn``: F the items' one-hot feature rows (every non-identity field; ``idf`` weighting:
  each value weighted by log(n_items / items with the value)), rows L2-normalised, kept sparse; a user's scores
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
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from mamo_l2l.data.batching import part_ratings, rating_tasks, task_ratings
from mamo_l2l.data.types import EncodedDataset, Splits, Task
from mamo_l2l.evaluation.catalogue import CatalogueTargets, UserItems, csr_entries, scorer_catalogue
from mamo_l2l.evaluation.metrics import scenario_metrics
from mamo_l2l.evaluation.ranking import choice_prior
from mamo_l2l.models.factors import row_grams

EASE_LAMBDAS = (50.0, 200.0, 500.0, 1000.0, 3000.0)
KNN_GRID = ((50, 0.0), (50, 20.0), (200, 0.0), (200, 20.0), (0, 0.0), (0, 20.0))   # k = 0: all
ALS_GRID = ((16, 3.0), (16, 8.0), (16, 20.0), (32, 8.0))
ALS_ITERS = 8
CONTENT_WEIGHTINGS = ("binary", "idf")
TOPN_REFERENCES = ("ease", "item-knn", "als", "content-knn", "choice-prior")
MAX_VOCABULARY = 10_000   # ease / item-knn: most items in their dense item x item matrices (``vocabulary``)
UNMODELLED = -1e30        # the score of a candidate outside that vocabulary


# ------------------------------------------------------------------ matrices
def vocabulary(train: Sequence[Task], n_items: int, max_items: int = MAX_VOCABULARY) -> np.ndarray:
    """The items ``ease`` and ``item-knn`` model, sorted: the training items with at least m
    training ratings, m the smallest count for which at most ``max_items`` items qualify (every
    training item when they all fit). Their item x item matrices are dense, so this bounds them."""
    counts = np.bincount(task_ratings(train)[0], minlength=n_items)
    m = 1
    while np.count_nonzero(counts >= m) > max_items:
        m += 1
    return np.flatnonzero(counts >= m)


def _positions(vocab: np.ndarray, items: np.ndarray) -> np.ndarray:
    """Each item's position in the sorted ``vocab`` (-1: not in it)."""
    if not len(vocab):
        return np.full(len(items), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(vocab, items), len(vocab) - 1)
    return np.where(vocab[pos] == items, pos, -1)


def training_gram(train: Sequence[Task], vocab: np.ndarray) -> torch.Tensor:
    """X^T X (float64 [len(vocab)]^2): X the binary training-tasks x ``vocab`` matrix of every
    training rating, support and query."""
    parts = [part_ratings(train, part) for part in ("support", "query")]
    rows = np.concatenate([p[0] for p in parts])
    pos = _positions(vocab, np.concatenate([p[1] for p in parts]))
    x = torch.zeros(len(train), len(vocab), dtype=torch.float64)
    x[torch.from_numpy(rows[pos >= 0]), torch.from_numpy(pos[pos >= 0])] = 1.0
    return x.T @ x


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


def linear_scorer(matrix: Union[torch.Tensor, Callable[[], torch.Tensor]], vocab: np.ndarray) -> Callable:
    """scores = x_support @ matrix[:, candidates] (ease, item-knn; ``matrix`` over the sorted
    ``vocab``): the sum of the matrix rows of each task's support items in the vocabulary, over the
    candidate columns (gathered once per candidate list); a candidate outside the vocabulary scores
    ``UNMODELLED`` (below every modelled item, above the user's known items). ``matrix`` may be a
    function that builds it: it is then built on first use and dropped by ``clear`` (a grid's
    entries are built one at a time, not all at once)."""
    cache: Dict[str, Any] = {}

    def score(tasks, candidates):
        cand = np.asarray(candidates)
        if cache.get("key") is not cand:
            if "matrix" not in cache:
                cache["matrix"] = matrix() if callable(matrix) else matrix
            pos = _positions(vocab, cand)
            inside = np.flatnonzero(pos >= 0)
            cache.update(key=cand, inside=inside, cols=cache["matrix"][:, torch.from_numpy(pos[inside])])
        rows, items, _ = part_ratings(tasks, "support")
        pos = _positions(vocab, items)
        keep = pos >= 0
        x = torch.sparse_coo_tensor(torch.from_numpy(np.stack([rows[keep], pos[keep]])), torch.ones(int(keep.sum())),
                                    (len(tasks), len(vocab)), check_invariants=False)
        out = np.full((len(tasks), len(cand)), UNMODELLED)
        out[:, cache["inside"]] = torch.sparse.mm(x, cache["cols"]).double().numpy()
        return out
    score.clear = cache.clear   # drop the gathered columns and a built matrix (``_pick``: the options not chosen)
    return score


# ------------------------------------------------------------------ content
class FeatureRows:
    """The items' L2-normalised one-hot feature rows [n_items, values] over the non-identity fields
    (PAD left out), kept sparse as CSR arrays (a catalogue's authors and publishers are too many
    values for a dense matrix)."""

    def __init__(self, data: EncodedDataset, weighting: str):
        fields = [f for f in data.item_layout if not f.identity]
        n = len(data.item_ids)
        offsets = np.cumsum([0] + [f.vocab_size for f in fields])
        self.n_values = max(int(offsets[-1]), 1)
        codes = [np.asarray(data.item_x[:, f.start:f.stop], dtype=np.int64) for f in fields]
        rows = np.concatenate([np.repeat(np.arange(n), c.shape[1]) for c in codes] or [np.zeros(0, np.int64)])
        cols = np.concatenate([(c + off).ravel() for c, off in zip(codes, offsets)] or [np.zeros(0, np.int64)])
        keep = np.concatenate([(c > 0).ravel() for c in codes] or [np.zeros(0, bool)])
        key = np.unique(rows[keep] * self.n_values + cols[keep])   # sorted by row, then value; each once
        rows, cols = key // self.n_values, key % self.n_values
        vals = np.ones(len(key))
        if weighting == "idf":
            df = np.bincount(cols, minlength=self.n_values)
            vals = np.log(n / np.maximum(df[cols], 1))
        norm = np.sqrt(np.bincount(rows, weights=vals ** 2, minlength=n))
        self.values = (vals / np.maximum(norm[rows], 1e-12)).astype(np.float32)
        self.cols = cols
        self.indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n))]

    def entries(self, items: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(j, value index, value) of every entry of the rows ``items`` (j: position in ``items``)."""
        j, at = csr_entries(self.indptr, items)
        return j, self.cols[at], self.values[at]

    def sums(self, rows: np.ndarray, items: np.ndarray, n_rows: int) -> torch.Tensor:
        """Dense float32 [n_rows, values]: row r = the sum of the feature rows of the items paired with r."""
        j, col, val = self.entries(items)
        out = torch.zeros(n_rows * self.n_values)
        out.index_put_((torch.from_numpy(rows[j] * self.n_values + col),), torch.from_numpy(val), accumulate=True)
        return out.reshape(n_rows, self.n_values)

    def matrix(self, items: np.ndarray) -> torch.Tensor:
        """Sparse CSR float32 [len(items), values] of the rows ``items``."""
        j, col, val = self.entries(items)
        crow = np.r_[0, np.cumsum(np.bincount(j, minlength=len(items)))]
        with warnings.catch_warnings():   # torch's "CSR support is in beta" note
            warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(torch.from_numpy(crow), torch.from_numpy(col), torch.from_numpy(val),
                                           (len(items), self.n_values), check_invariants=False)


def content_scorer(features: FeatureRows, threshold: float) -> Callable:
    """scores(c) = F_c . (sum of the liked support items' rows), the liked items' rows summed per
    task and the candidate rows gathered once per candidate list."""
    cache: Dict[str, Any] = {}

    def score(tasks, candidates):
        cand = np.asarray(candidates)
        if cache.get("key") is not cand:
            cache.update(key=cand, rows=features.matrix(cand.astype(np.int64)))
        rows, items, ratings = part_ratings(tasks, "support")
        liked = ratings >= threshold
        some = np.bincount(rows[liked], minlength=len(tasks)) > 0
        keep = liked | ~some[rows]   # nothing liked: every support item counts
        profile = features.sums(rows[keep], items[keep], len(tasks))
        return torch.sparse.mm(cache["rows"], profile.T).T.double().numpy()
    score.clear = cache.clear
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
    a = row_grams(pattern.ones, other) + lam * torch.eye(d, dtype=table.dtype)
    b = pattern.values(target.to(table.dtype)) @ other
    return torch.linalg.solve(a, b)


class ExplicitALS:
    """r_ui = mu + b_u + b_i + p_u . q_i fitted on the training tasks (module doc)."""

    def __init__(self, train: Sequence[Task], n_items: int, factors: int, lam: float, seed: int = 0,
                 iters: int = ALS_ITERS):
        items, ratings = task_ratings(train)
        users = torch.from_numpy(rating_tasks(train))
        trained, at = np.unique(items, return_inverse=True)   # the sweeps run over the rated items only
        items_t, r = torch.from_numpy(at.astype(np.int64)), torch.from_numpy(ratings)
        self.mu, self.lam = float(r.mean()) if len(r) else 0.0, lam
        gen = torch.Generator().manual_seed(seed)
        q = (torch.randn(n_items, factors, generator=gen, dtype=torch.float64) * 0.1)[torch.from_numpy(trained)]
        b_i = torch.zeros(len(trained), dtype=torch.float64)
        by_user = _Pattern(len(train), len(trained), users, items_t)
        by_item = _Pattern(len(trained), len(train), items_t, users)
        for _ in range(iters):
            w_u = _ridge_side(by_user, r - self.mu - b_i[items_t], q, lam)
            b_u, p = w_u[:, 0], w_u[:, 1:]
            w_i = _ridge_side(by_item, r - self.mu - b_u[users], p, lam)
            b_i, q = w_i[:, 0], w_i[:, 1:]
        index = torch.from_numpy(trained)
        self.b_i = torch.zeros(n_items, dtype=torch.float64).index_copy_(0, index, b_i)   # unseen items: 0, 0
        self.q = torch.zeros(n_items, factors, dtype=torch.float64).index_copy_(0, index, q)

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
    """The option with the best validation Recall@10 (first on ties) and every option's Recall@10.
    An option found worse than the best so far is cleared at once (its ``clear``, when it has one:
    the best so far and the one being scored are the only grid entries held in memory)."""
    targets = CatalogueTargets(valid, candidates, threshold, rated)   # once for every option
    table: Dict[str, float] = {}
    best = None
    for name, f in options.items():
        table[name] = scorer_catalogue(f, valid, candidates, threshold, rated, targets=targets)["recall@10"]
        if best is None or np.nan_to_num(table[name], nan=-1.0) > np.nan_to_num(table[best], nan=-1.0):
            best, loser = name, best
        else:
            loser = name
        if loser is not None:
            getattr(options[loser], "clear", lambda: None)()
    return best, table


def fit_references(splits: Splits, data: EncodedDataset, threshold: float, seed: int = 0,
                   prior: Optional[np.ndarray] = None) -> Tuple[Dict[str, Callable], ExplicitALS, Dict[str, Any]]:
    """(scorers of TOPN_REFERENCES, the chosen ALS model, the choices: {reference: {"chosen":
    hyperparameters, "valid_*": validation metric per grid entry}}). ``prior``: the run's choice
    prior when it has one (the same ranking.choice_prior of the same training tasks)."""
    n = len(data.item_ids)
    cand = np.unique(task_ratings(splits.train)[0])
    rated = UserItems(data)
    vocab = vocabulary(splits.train, n)
    gram = training_gram(splits.train, vocab)
    chosen: Dict[str, Any] = {}
    ease = {f"{lam:g}": linear_scorer(lambda lam=lam: ease_matrix(gram, lam), vocab) for lam in EASE_LAMBDAS}
    best, table = _pick(splits.valid, cand, threshold, rated, ease)
    scorers = {"ease": ease[best]}
    chosen["ease"] = {"chosen": {"lambda": float(best)}, "items": len(vocab), "valid_recall@10": table}
    knn = {f"{k},{s:g}": linear_scorer(lambda k=k, s=s: knn_matrix(gram, k, s), vocab) for k, s in KNN_GRID}
    best, table = _pick(splits.valid, cand, threshold, rated, knn)
    scorers["item-knn"] = knn[best]
    k, s = best.split(",")
    chosen["item-knn"] = {"chosen": {"neighbours": int(k), "shrink": float(s)}, "items": len(vocab),
                          "valid_recall@10": table}
    als, chosen["als"] = _choose_als(splits, data, seed)
    scorers["als"] = als.scorer()
    content = {w: content_scorer(FeatureRows(data, w), threshold) for w in CONTENT_WEIGHTINGS}
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
