"""Catalogue ranking (docs/algorithm.md, Metrics): what a recommender's users consume.

Per test user: adapt exactly as evaluation does (same start, same ``local_steps`` on the support
set, memories read and never written), score every candidate item, drop the items the user rated
in the support set and every other item the user rated anywhere in the data set but not in the query (e.g. the
ratings the ``max_ratings`` cap left out of a task: they are the user's own items, neither
unknown nor non-relevant), and compare the top ``CATALOGUE_K`` with the query items rated at
least ``relevant_rating`` (Recall, NDCG with binary gain, Hit; metrics.catalogue_user_metrics defines them for one user,
metrics.catalogue_chunk_metrics computes them for a block of users at once). A
user with no relevant query item is skipped. Candidates per scenario (``candidate_items``):
- warm, user_cold: the items rated in the training tasks (the catalogue a model was trained on);
- item_cold, user_item_cold: every new item of the item table (item state "new" under the
  protocol), whether or not anyone rated it (which items were rated is no knowledge a
  recommender has about new items).
Beside them, the beyond-accuracy metrics of the users' top-``CATALOGUE_K`` lists
(metrics.list_metrics: coverage, personalisation, popularity).
Scores go through the backend in chunks of users (``backend.eval_chunk``) times candidates, so
the func backend scores a chunk in one vmapped call.
"""
from __future__ import annotations

import time
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mamo_l2l.core.progress import bar as progress_bar
from mamo_l2l.core.progress import log
from mamo_l2l.data.batching import pad_tasks, part_ratings, task_ratings
from mamo_l2l.data.identity import training_items
from mamo_l2l.data.protocol import item_is_new
from mamo_l2l.data.types import EncodedDataset, Splits, Task
from mamo_l2l.evaluation.metrics import (
    CATALOGUE_K,
    CATALOGUE_METRICS,
    catalogue_chunk_metrics,
    list_metrics,
    popular_items,
    top_lists,
)
from mamo_l2l.evaluation.ranking import choice_scores, rank_scores, uses_choice
from mamo_l2l.evaluation.references import reference_predictions

#: scored (user, item) pairs per backend call: users per chunk x candidates per chunk
PAIRS_PER_CALL = 1 << 16
ITEM_COLD_SCENARIOS = ("item_cold", "user_item_cold")


def relevant_threshold(relevant_rating, rating_range: Tuple[float, float]) -> float:
    """``data.relevant_rating``, or when null lo + 0.75 (hi - lo): 4 on a 1-5 scale, 7.75 on 1-10
    (so >= 8 for integer ratings)."""
    if relevant_rating is not None:
        return float(relevant_rating)
    lo, hi = rating_range
    return float(lo + 0.75 * (hi - lo))


def candidate_items(data: EncodedDataset, splits: Splits, data_config) -> Dict[str, np.ndarray]:
    """Sorted candidate item indices per scenario (module doc)."""
    trained = training_items(splits)
    new, _ = item_is_new(data, data_config)
    new_items = np.flatnonzero(new)
    return {"warm": trained, "user_cold": trained, "item_cold": new_items, "user_item_cold": new_items}


def iter_scores(model, algorithm, backend, tasks: Sequence[Task], candidates: np.ndarray, data: EncodedDataset,
                inner, device: str = "cpu") -> Iterator[Tuple[List[Task], np.ndarray]]:
    """(chunk of tasks, unclipped scores float64 [len(chunk), len(candidates)]) chunk by chunk,
    through ``backend.score_items`` (the adaptation is exactly evaluation's); a model that predicts
    without a backend (``predict_direct``, e.g. item-mean) is asked for the candidates directly."""

    n_users = max(1, getattr(backend, "eval_chunk", 64))
    n_items = max(1, PAIRS_PER_CALL // n_users)
    direct = getattr(algorithm, "predict_direct", None)
    item_x = torch.from_numpy(np.ascontiguousarray(data.item_x[candidates], dtype=np.int64)).to(device)
    was_training = model.training
    model.eval()
    try:
        for a in range(0, len(tasks), n_users):
            chunk = list(tasks[a:a + n_users])
            if len(candidates) == 0:
                scores = np.zeros((len(chunk), 0))
            elif direct is not None:
                zeros = np.zeros(len(candidates), dtype=np.float32)
                pseudo = [Task(t.user, t.support_items, t.support_ratings, candidates, zeros) for t in chunk]
                scores = np.stack([np.asarray(p, dtype=np.float64) for p in direct(pseudo)])
            else:
                batch = pad_tasks(chunk, data).to(device)
                scores = backend.score_items(model, algorithm, batch, inner, item_x, n_items)
                scores = scores.cpu().numpy().astype(np.float64)
            yield chunk, scores
    finally:
        model.train(was_training)


def catalogue_scores(model, algorithm, backend, tasks, candidates, data, inner, device="cpu") -> np.ndarray:
    """All users' candidate scores at once, float64 [len(tasks), len(candidates)] (small data, tests)."""
    parts = [s for _, s in iter_scores(model, algorithm, backend, tasks, candidates, data, inner, device)]
    return np.concatenate(parts) if parts else np.zeros((0, len(candidates)))


class UserItems:
    """Every user's rated items in the whole data set (CSR over user index): what a user has
    already consumed, for leaving it out of that user's candidates (module doc)."""

    def __init__(self, data: EncodedDataset):
        order = np.argsort(data.rating_user, kind="stable")
        self.items = data.rating_item[order]
        self.indptr = np.r_[0, np.cumsum(np.bincount(data.rating_user, minlength=len(data.user_ids)))]

    def of(self, user: int) -> np.ndarray:
        return self.items[self.indptr[user]:self.indptr[user + 1]]

    def pairs(self, users: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(row, item) of every rated item of each of ``users`` (row j: users[j]), rows ascending."""
        rows, at = csr_entries(self.indptr, users)
        return rows, self.items[at]


def csr_entries(indptr: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(j, flat index) of every entry of the CSR rows ``rows`` (j: the position in ``rows``), row by
    row in the order of ``rows``, without a loop over them."""
    lo, hi = indptr[rows], indptr[rows + 1]
    j = np.repeat(np.arange(len(rows)), hi - lo)
    starts = np.repeat(lo - np.cumsum(hi - lo) + (hi - lo), hi - lo)   # lo of each entry's row, less its offset
    return j, starts + np.arange(j.size)


class CatalogueTargets:
    """What users' candidate scores are compared with: per task, the candidate positions it
    already knows (support items, and with ``rated`` (UserItems) every item the user rated outside
    the query: not candidates) and its relevant query items (rating >= ``threshold``). Built once
    for a list of tasks (flat arrays, no per-user loop), it serves any number of score matrices of
    the same tasks (the ranking weights' grid, the references' grids, every scorer of a scenario);
    ``block(a, b)`` takes the tasks a..b-1."""

    def __init__(self, tasks: Sequence[Task], candidates: np.ndarray, threshold: float,
                 rated: Optional[UserItems] = None):
        self.n_candidates = len(candidates)
        top = int(max(candidates.max(initial=-1), 0)) + 1
        position = np.full(top, -1, dtype=np.int64)   # item index -> candidate position (-1: none)
        position[candidates] = np.arange(len(candidates))
        q_row, q_item, q_rating = part_ratings(tasks, "query")
        s_row, s_item, _ = part_ratings(tasks, "support")
        k_row, k_item = [s_row], [s_item]
        if rated is not None and len(tasks):
            o_row, o_item = rated.pairs(np.asarray([t.user for t in tasks], dtype=np.int64))
            span = int(max(o_item.max(initial=0), q_item.max(initial=0))) + 1
            outside = ~np.isin(o_row * span + o_item, q_row * span + q_item)   # own items not in the query
            k_row.append(o_row[outside])
            k_item.append(o_item[outside])
        good = q_rating >= threshold
        n_rel = np.bincount(q_row[good], minlength=len(tasks))
        self.n_relevant = n_rel                                       # per task (0: skipped)
        self.known = _on_candidates(position, np.concatenate(k_row), np.concatenate(k_item))
        self.relevant = _on_candidates(position, q_row[good], q_item[good])

    def block(self, a: int, b: int) -> "TargetBlock":
        """The targets of tasks a..b-1 (rows of their score block): only tasks with a relevant
        query item are kept (the others are skipped: nothing to find)."""
        n_rel = self.n_relevant[a:b]
        kept = np.flatnonzero(n_rel > 0)
        row_of = np.full(len(n_rel), -1, dtype=np.int64)
        row_of[kept] = np.arange(len(kept))
        relevant = np.zeros((len(kept), self.n_candidates), dtype=bool)
        r, c = _rows_in(self.relevant, a, b)
        relevant[row_of[r - a], c] = True
        return TargetBlock(kept, n_rel[kept], _rows_in(self.known, a, b, shift=a), relevant)


class TargetBlock:
    """CatalogueTargets.block: kept rows, their relevant counts, the known (row, position) pairs of
    all rows and the relevant candidates bool [kept, C]."""

    def __init__(self, kept: np.ndarray, n_relevant: np.ndarray, known: Tuple[np.ndarray, np.ndarray],
                 relevant: np.ndarray):
        self.kept, self.n_relevant, self.known, self.relevant = kept, n_relevant, known, relevant

    def masked(self, scores: np.ndarray) -> np.ndarray:
        """float64 [kept tasks, C]: ``scores`` [tasks, C] with the known items at -inf."""
        out = np.array(scores, dtype=np.float64)
        out[self.known] = -np.inf
        return out[self.kept]


def _on_candidates(position: np.ndarray, rows: np.ndarray, items: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(row, candidate position) of the pairs whose item is a candidate, rows ascending."""
    inside = items < position.size
    rows, p = rows[inside], position[items[inside]]
    keep = p >= 0
    order = np.argsort(rows[keep], kind="stable")
    return rows[keep][order], p[keep][order]


def _rows_in(pairs: Tuple[np.ndarray, np.ndarray], a: int, b: int, shift: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    rows, cols = pairs
    lo, hi = np.searchsorted(rows, [a, b])
    return rows[lo:hi] - shift, cols[lo:hi]


class CatalogueAccumulator:
    """Per-user catalogue metrics and top-K lists of one scenario, a block of users at a time
    (``add``: CatalogueTargets and their scores; ``add_tasks`` builds the targets). ``rated``
    (UserItems): each user's items outside the query are not candidates; without it only the
    support items are left out. ``popular`` (bool [n_items], metrics.popular_items) adds the list
    metrics."""

    def __init__(self, candidates: np.ndarray, threshold: float, rated: Optional[UserItems] = None,
                 popular: Optional[np.ndarray] = None, seed: int = 0):
        self.candidates, self.threshold, self.rated = candidates, threshold, rated
        self.popular, self.seed = popular, seed
        self.values: List[np.ndarray] = []
        self.lists: List[np.ndarray] = []

    def targets(self, tasks: Sequence[Task]) -> CatalogueTargets:
        return CatalogueTargets(tasks, self.candidates, self.threshold, self.rated)

    def add(self, targets: "TargetBlock", scores: np.ndarray) -> None:
        """Score a block: ``scores`` float [block tasks, len(candidates)] of the block's tasks."""
        self.add_masked(targets, targets.masked(scores))

    def add_masked(self, targets: "TargetBlock", s: np.ndarray) -> None:
        """``add`` of scores already masked (TargetBlock.masked: kept rows, known items at -inf)."""
        if not len(targets.kept):
            return
        self.values.append(catalogue_chunk_metrics(s, targets.relevant, targets.n_relevant, CATALOGUE_K))
        if self.popular is not None:
            self.lists.extend(self.candidates[x] for x in top_lists(s, CATALOGUE_K))

    def add_tasks(self, tasks: Sequence[Task], scores: np.ndarray) -> None:
        self.add(self.targets(tasks).block(0, len(tasks)), scores)

    def result(self) -> Dict[str, float]:
        v = np.concatenate(self.values) if self.values else np.zeros((0, 3))
        out = {m: (float(v[:, k].mean()) if len(v) else float("nan")) for k, m in enumerate(CATALOGUE_METRICS)}
        if self.popular is not None:
            out.update(list_metrics(self.lists, len(self.candidates), self.popular, self.seed))
        out.update(users=len(v), candidates=int(len(self.candidates)), relevant_rating=self.threshold)
        return out


def catalogue_metrics(model, algorithm, backend, tasks, candidates, data, inner, threshold: float,
                      device: str = "cpu", ranking=None, rated: Optional[UserItems] = None,
                      popular: Optional[np.ndarray] = None,
                      targets: Optional[CatalogueTargets] = None, progress: str = "") -> Dict[str, float]:
    """Recall/NDCG/Hit@K of one scenario's users over ``candidates``, plus ``users`` (scored users),
    ``candidates`` and ``relevant_rating`` (and the list metrics with ``popular``; ``rated``:
    CatalogueAccumulator; ``targets``: the tasks' CatalogueTargets when already built). Items are
    ordered by ``ranking.rank_scores`` (the run's ranking score: predicted rating + w * choice
    prior (+ v * the choice head's score), or the predicted rating alone when ``ranking`` is None),
    as ``recommend`` orders them. ``progress``: the label of a progress bar over the users (none when empty)."""
    acc = CatalogueAccumulator(candidates, threshold, rated, popular)
    targets = acc.targets(tasks) if targets is None else targets
    bar = progress_bar(len(tasks), progress, bool(progress), "user")
    a = 0
    for chunk, scores in iter_scores(model, algorithm, backend, tasks, candidates, data, inner, device):
        choice = choice_scores(model, chunk, candidates, data, device) if uses_choice(ranking) else None
        acc.add(targets.block(a, a + len(chunk)), rank_scores(ranking, scores, candidates, choice))
        a += len(chunk)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    return acc.result()


def training_popular(splits: Splits, data: EncodedDataset) -> np.ndarray:
    """The popular items of popularity@K (metrics.popular_items) from the training ratings."""
    return popular_items(np.bincount(task_ratings(splits.train)[0], minlength=len(data.item_ids)))


def constant_scorers(splits: Splits, data: EncodedDataset) -> Dict[str, Callable]:
    """Scorers (tasks, candidates) -> scores [len(tasks), len(candidates)] of the item-level
    references: popularity (number of training ratings), item mean and global mean (a constant:
    the expected metrics of a random ranking)."""
    n = len(data.item_ids)
    refs = reference_predictions(splits.train, n)
    tables = {"global_mean": refs["global_mean"].item_mean, "item_mean": refs["item_mean"].item_mean,
              "popularity": np.bincount(task_ratings(splits.train)[0], minlength=n).astype(np.float64)}
    return {name: (lambda tasks, cand, t=t: np.broadcast_to(t[cand], (len(tasks), len(cand))))
            for name, t in tables.items()}


def scorer_catalogue(scorer: Callable, tasks: Sequence[Task], candidates: np.ndarray, threshold: float,
                     rated: Optional[UserItems] = None, popular: Optional[np.ndarray] = None,
                     chunk: int = 256, targets: Optional[CatalogueTargets] = None) -> Dict[str, float]:
    """The catalogue metrics of one scorer (constant_scorers, topn_references) on ``tasks``
    (``targets``: their CatalogueTargets when already built)."""
    acc = CatalogueAccumulator(candidates, threshold, rated, popular)
    targets = acc.targets(tasks) if targets is None else targets
    for a in range(0, len(tasks), chunk):
        part = list(tasks[a:a + chunk])
        acc.add(targets.block(a, a + len(part)), scorer(part, candidates))
    return acc.result()


def reference_catalogue(splits: Splits, data: EncodedDataset, candidates: Dict[str, np.ndarray],
                        threshold: float, scenarios: Sequence[str], scorers: Optional[Dict[str, Callable]] = None,
                        targets: Optional[Dict[str, CatalogueTargets]] = None, progress: bool = False
                        ) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{reference: {scenario: catalogue metrics}} of ``scorers`` (default: constant_scorers), with
    the list metrics, each user's own non-query items left out (UserItems); ``targets``: each
    scenario's CatalogueTargets when already built; ``progress``: a line per reference."""
    scorers = constant_scorers(splits, data) if scorers is None else scorers
    rated, popular = UserItems(data), training_popular(splits, data)
    if targets is None:
        targets = {s: CatalogueTargets(splits.test[s], candidates[s], threshold, rated) for s in scenarios}
    out = {}
    for name, f in scorers.items():
        started = time.perf_counter()
        out[name] = {scen: scorer_catalogue(f, splits.test[scen], candidates[scen], threshold, rated, popular,
                                            targets=targets[scen]) for scen in scenarios}
        if progress:
            log.info(f"  catalogue {name}: {time.perf_counter() - started:.1f}s")
    return out
