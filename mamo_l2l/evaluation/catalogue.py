"""Catalogue ranking (docs/algorithm.md, Metrics): what a recommender's users consume.

Per test user: adapt exactly as evaluation does (same start, same ``local_steps`` on the support
set, memories read and never written), score every candidate item, drop the items the user rated
in the support set and every other item the user rated anywhere in the data set but not in the query (e.g. the
ratings the ``max_ratings`` cap left out of a task: they are the user's own items, neither
unknown nor non-relevant), and compare the top ``CATALOGUE_K`` with the query items rated at
least ``relevant_rating`` (Recall, NDCG with binary gain, Hit; metrics.catalogue_user_metrics). A
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

from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mamo_l2l.data.batching import pad_tasks, task_ratings
from mamo_l2l.data.identity import training_items
from mamo_l2l.data.protocol import item_is_new
from mamo_l2l.data.types import EncodedDataset, Splits, Task
from mamo_l2l.evaluation.metrics import (
    CATALOGUE_K,
    CATALOGUE_METRICS,
    catalogue_user_metrics,
    list_metrics,
    popular_items,
    top_list,
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


class CatalogueAccumulator:
    """Per-user catalogue metrics and top-K lists of one scenario. ``rated`` (UserItems): each
    user's items outside the query are not candidates; without it only the support items are
    left out. ``popular`` (bool [n_items], metrics.popular_items) adds the list metrics."""

    def __init__(self, candidates: np.ndarray, threshold: float, rated: Optional[UserItems] = None,
                 popular: Optional[np.ndarray] = None, seed: int = 0):
        self.candidates, self.threshold, self.rated = candidates, threshold, rated
        self.popular, self.seed = popular, seed
        self.values: List[Tuple[float, float, float]] = []
        self.lists: List[np.ndarray] = []
        top = int(max(candidates.max(initial=-1), 0)) + 1
        self.position = np.full(top, -1, dtype=np.int64)   # item index -> candidate position (-1: none)
        self.position[candidates] = np.arange(len(candidates))

    def _positions(self, items: np.ndarray) -> np.ndarray:
        items = items[items < self.position.size]
        p = self.position[items]
        return p[p >= 0]

    def add(self, task: Task, scores: np.ndarray) -> None:
        relevant_items = task.query_items[task.query_ratings >= self.threshold]
        if relevant_items.size == 0:
            return   # nothing to find: skipped (docs/algorithm.md)
        scores = scores.copy()
        known = task.support_items
        if self.rated is not None:
            own = self.rated.of(task.user)
            known = np.concatenate([known, own[~np.isin(own, task.query_items)]])
        scores[self._positions(known)] = -np.inf   # already rated
        relevant = np.zeros(len(self.candidates), dtype=bool)
        relevant[self._positions(relevant_items)] = True
        self.values.append(catalogue_user_metrics(scores, relevant, int(relevant_items.size), CATALOGUE_K))
        if self.popular is not None:
            self.lists.append(self.candidates[top_list(scores, CATALOGUE_K)])

    def result(self) -> Dict[str, float]:
        v = np.asarray(self.values, dtype=np.float64).reshape(-1, 3)
        out = {m: (float(v[:, k].mean()) if len(v) else float("nan")) for k, m in enumerate(CATALOGUE_METRICS)}
        if self.popular is not None:
            out.update(list_metrics(self.lists, len(self.candidates), self.popular, self.seed))
        out.update(users=len(self.values), candidates=int(len(self.candidates)), relevant_rating=self.threshold)
        return out


def catalogue_metrics(model, algorithm, backend, tasks, candidates, data, inner, threshold: float,
                      device: str = "cpu", ranking=None, rated: Optional[UserItems] = None,
                      popular: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Recall/NDCG/Hit@K of one scenario's users over ``candidates``, plus ``users`` (scored users),
    ``candidates`` and ``relevant_rating`` (and the list metrics with ``popular``; ``rated``:
    CatalogueAccumulator). Items are ordered by ``ranking.rank_scores`` (the run's ranking score:
    predicted rating + w * choice prior (+ v * the choice head's score), or the predicted rating
    alone when ``ranking`` is None), as ``recommend`` orders them."""
    acc = CatalogueAccumulator(candidates, threshold, rated, popular)
    for chunk, scores in iter_scores(model, algorithm, backend, tasks, candidates, data, inner, device):
        choice = choice_scores(model, chunk, candidates, data, device) if uses_choice(ranking) else None
        for t, s in zip(chunk, rank_scores(ranking, scores, candidates, choice)):
            acc.add(t, s)
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
                     chunk: int = 256) -> Dict[str, float]:
    """The catalogue metrics of one scorer (constant_scorers, topn_references) on ``tasks``."""
    acc = CatalogueAccumulator(candidates, threshold, rated, popular)
    for a in range(0, len(tasks), chunk):
        part = list(tasks[a:a + chunk])
        for t, s in zip(part, scorer(part, candidates)):
            acc.add(t, s)
    return acc.result()


def reference_catalogue(splits: Splits, data: EncodedDataset, candidates: Dict[str, np.ndarray],
                        threshold: float, scenarios: Sequence[str], scorers: Optional[Dict[str, Callable]] = None
                        ) -> Dict[str, Dict[str, Dict[str, float]]]:
    """{reference: {scenario: catalogue metrics}} of ``scorers`` (default: constant_scorers), with
    the list metrics, each user's own non-query items left out (UserItems)."""
    scorers = constant_scorers(splits, data) if scorers is None else scorers
    rated, popular = UserItems(data), training_popular(splits, data)
    return {name: {scen: scorer_catalogue(f, splits.test[scen], candidates[scen], threshold, rated, popular)
                   for scen in scenarios} for name, f in scorers.items()}
