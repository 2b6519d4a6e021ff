"""Recommend for a new user from a trained run (docs/serving.md).

A user is given as a few ratings (item ids as in the data set's files) and, optionally, profile
fields. Recommending is evaluation applied to one made-up task: the support set is the given
ratings, the query set is every candidate item, and the predictions come from the same function
that scores test users (``scoring.predict_tasks``: same backend path, ``training=False``, the same
local steps ``run.inner``; memories read, never written). So a user's scores for a test task's
query items equal what evaluation predicts for that task (tests/test_recommend.py).

What recommending needs besides the model -- item ids, titles, item feature rows, the user-field
vocabularies and the rating range -- is the *catalogue*, stored in ``best.pt`` under ``catalog``
(``train.save_model``), so ``load_recommender(path)`` works from the checkpoint alone, without
the data set's files. ``Run.recommend`` builds the same catalogue from the run's data.
"""
from __future__ import annotations

import collections
import threading
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd
import torch

from mamo_l2l.backends.base import adapt_task
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.types import Task
from mamo_l2l.evaluation.ranking import choice_scores, rank_scores, uses_choice
from mamo_l2l.evaluation.scoring import predict_tasks
from mamo_l2l.recommend.catalog import Catalog

#: candidate (user, item) pairs per backend call in ``recommend_batch`` (bounds memory: the
#: query side of a call holds this many item embeddings and head activations)
PAIRS_PER_CALL = 200_000
#: catalogue items embedded per call when the item profiles are cached
PROFILE_CHUNK = 65_536
#: user profiles whose encoded rows are remembered (cleared when full)
USER_ROW_CACHE = 1024


class FifoLock:
    """A lock granted in the order it was asked for. A release hands the lock to the longest
    waiter and wakes only that thread (a plain Lock lets a late caller overtake waiting ones; a
    Condition's notify_all would wake every waiter on each release)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiters: "collections.deque[threading.Lock]" = collections.deque()

    def __enter__(self) -> "FifoLock":
        with self._guard:
            if not self._held:
                self._held = True
                return self
            baton = threading.Lock()
            baton.acquire()
            self._waiters.append(baton)
        baton.acquire()                  # released by the holder's __exit__: the lock is ours
        return self

    def __exit__(self, *exc) -> None:
        with self._guard:
            if self._waiters:
                self._waiters.popleft().release()      # handed over; stays held
            else:
                self._held = False

    def waiting(self) -> int:
        """Threads queued for the lock."""
        with self._guard:
            return len(self._waiters)




# ------------------------------------------------------------------------------ input parsing
def parse_ratings(ratings: Any) -> List[Tuple[str, float]]:
    """(item id, rating) pairs from a list of pairs, a list of {"item_id", "rating"} dicts, a
    mapping item id -> rating, or a DataFrame with columns item_id, rating."""
    if ratings is None:
        return []
    if isinstance(ratings, pd.DataFrame):
        missing = [c for c in ("item_id", "rating") if c not in ratings.columns]
        if missing:
            raise MamoError(f"ratings frame needs columns item_id, rating (missing: {', '.join(missing)})")
        pairs = list(zip(ratings["item_id"].tolist(), ratings["rating"].tolist()))
    elif isinstance(ratings, Mapping):
        pairs = list(ratings.items())
    else:
        pairs = []
        for k, r in enumerate(ratings):
            if isinstance(r, Mapping):
                if "item_id" not in r or "rating" not in r:
                    raise MamoError(f"rating #{k + 1}: expected item_id and rating, got keys {sorted(r)}")
                pairs.append((r["item_id"], r["rating"]))
            elif isinstance(r, (tuple, list)) and len(r) == 2:
                pairs.append((r[0], r[1]))
            else:
                raise MamoError(f"rating #{k + 1}: expected (item_id, rating), got {r!r}")
    out = []
    for k, (item, value) in enumerate(pairs):
        if item is None or (isinstance(item, float) and np.isnan(item)):
            raise MamoError(f"rating #{k + 1}: missing item id")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise MamoError(f"rating #{k + 1} (item {item}): rating {value!r} is not a number") from None
        out.append((str(item), v))
    return out


# ------------------------------------------------------------------------------ the recommender
class ItemRecommender:
    """Top-k items for new users from a trained model; read-only (see docs/serving.md).

    Build it with ``load_recommender(path)`` (checkpoint alone) or ``Run.recommender()``.
    Calls are serialised by a lock, so concurrent callers (the HTTP service's threads) never see
    each other's state; nothing a call does is kept (no parameter, memory or cache is written).
    """

    def __init__(self, model, algorithm, backend, inner, catalog: Catalog, model_name: str,
                 device: str = "cpu", ranking=None):
        self.model, self.algorithm, self.backend, self.inner = model, algorithm, backend, inner
        self.catalog, self.model_name, self.device = catalog, model_name, device
        self.ranking = ranking   # ranking.Ranking: the order is catalogue ranking's (docs/algorithm.md)
        # One model call at a time: torch.func transforms (the func backend's vmap/grad) are not
        # safe across threads (tried: concurrent calls hit an internal functorch assertion).
        # First come, first served (a plain Lock lets a late caller overtake waiting ones, which
        # gave the HTTP service a long latency tail under concurrent requests).
        self._lock = FifoLock()
        # Item profiles p_i of the whole catalogue (the global item embedder's output: the local
        # steps never change it), computed once and reused by every single-user call; rebuilt if
        # the embedder's parameters change (their in-place version counters are the cache key).
        self._profiles: Optional[torch.Tensor] = None
        self._profiles_key: Optional[tuple] = None
        self._user_rows: Dict[tuple, np.ndarray] = {}

    @classmethod
    def from_run(cls, run) -> "ItemRecommender":
        return cls(run.model, run.algorithm, run.backend, run.inner,
                   Catalog.from_data(run.bundle.data, run.bundle.encoders), run.model_name, run.config.train.device,
                   ranking=run.ranking)

    @property
    def rating_range(self) -> Tuple[float, float]:
        return self.catalog.rating_range

    # ---------------------------------------------------------------- checks
    def _indices(self, ids: Sequence[str], what: str) -> np.ndarray:
        index = self.catalog.index
        unknown = [i for i in ids if i not in index]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
            raise MamoError(f"unknown item id(s) in {what}: {shown} ({len(unknown)} of {len(ids)}; this run "
                            f"knows {len(index)} items, ids as in the data set's files)")
        return np.array([index[i] for i in ids], dtype=np.int64)

    def _support(self, ratings: Any) -> Tuple[np.ndarray, np.ndarray]:
        pairs = parse_ratings(ratings)
        ids = [i for i, _ in pairs]
        seen, dup = set(), []
        for i in ids:
            if i in seen:
                dup.append(i)
            seen.add(i)
        if dup:
            raise MamoError(f"item(s) rated more than once: {', '.join(repr(d) for d in dup[:5])}")
        lo, hi = self.rating_range
        bad = [(i, r) for i, r in pairs if not (np.isfinite(r) and lo <= r <= hi)]
        if bad:
            i, r = bad[0]
            raise MamoError(f"rating {r:g} of item {i!r} is outside this data set's rating range "
                            f"{lo:g}..{hi:g} ({len(bad)} such rating(s))")
        items = self._indices(ids, "ratings")
        return items, np.array([r for _, r in pairs], dtype=np.float32)

    @staticmethod
    def _check_k(k) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise MamoError(f"k must be an integer >= 1, got {k!r}")
        return int(k)

    # ---------------------------------------------------------------- prediction
    def _predict(self, users: List[Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> List[np.ndarray]:
        """users: (user row, support items, support ratings, candidate items) each; returns the
        unclipped predicted rating of every candidate, per user (scoring.predict_tasks)."""
        out: List[np.ndarray] = []
        start = 0
        while start < len(users):   # groups of at most PAIRS_PER_CALL candidate pairs
            stop, pairs = start, 0
            while stop < len(users) and (stop == start or pairs + len(users[stop][3]) <= PAIRS_PER_CALL):
                pairs += len(users[stop][3])
                stop += 1
            group = users[start:stop]
            scored = [k for k, u in enumerate(group) if len(u[3])]
            preds = [np.zeros(0)] * len(group)
            if scored:
                data = _TaskData(np.stack([group[k][0] for k in scored]), self.catalog.item_x, self.rating_range)
                tasks = [Task(j, group[k][1], group[k][2], group[k][3], np.zeros(len(group[k][3]), np.float32))
                         for j, k in enumerate(scored)]
                with self._lock:
                    res = predict_tasks(self.model, self.algorithm, self.backend, tasks, data, self.inner, self.device,
                                        clip=False)
                for k, p in zip(scored, res):
                    preds[k] = p
            out.extend(preds)
            start = stop
        return out

    def _item_profiles(self) -> torch.Tensor:
        """p_i of every catalogue item [n, P_i] (call with the lock held)."""
        params = list(self.model.item_embedder.parameters()) + list(self.model.item_embedder.buffers())
        key = tuple((p.data_ptr(), p._version) for p in params)
        if self._profiles is None or key != self._profiles_key:
            x = torch.as_tensor(self.catalog.item_x, device=self.device)
            with torch.no_grad():
                self._profiles = torch.cat([self.model.item_embedder(x[c:c + PROFILE_CHUNK])
                                            for c in range(0, max(len(x), 1), PROFILE_CHUNK)])
            self._profiles_key = key
        return self._profiles

    def warm_up(self) -> None:
        """Do once what the first call would otherwise do: one recommendation builds the item
        profiles and the empty user row (and torch imports parts of itself on first use, ~2 s)."""
        self.recommend_records([], k=1)

    def _predict_one(self, row: np.ndarray, items: np.ndarray, values: np.ndarray, cand: np.ndarray) -> np.ndarray:
        """One user's unclipped predicted ratings of ``cand``: the same adaptation as evaluation
        (``adapt_task``: the algorithm's start, ``inner.steps`` first-order local steps on the
        support MSE, nothing written) without padding, scoring the cached item profiles."""
        if getattr(self.algorithm, "predict_direct", None) is not None or not len(cand):
            return self._predict([(row, items, values, cand)])[0]
        model, dev = self.model, self.device
        with self._lock:
            was_training = model.training
            if was_training:        # (a loaded recommender's model is always in eval mode)
                model.eval()
            try:
                profiles = self._item_profiles()
                with torch.no_grad():
                    p_u = model.user_embedder(torch.as_tensor(row, device=dev))
                    if len(items):
                        p_s = profiles[torch.as_tensor(items, device=dev)]
                        sy = torch.as_tensor(values, dtype=torch.float32, device=dev)
                        sm = torch.ones(len(items), device=dev)
                    else:   # no ratings: one masked-out row, as padding gives evaluation
                        p_s = torch.zeros(1, profiles.shape[1], device=dev)
                        sy = torch.zeros(1, device=dev)
                        sm = torch.zeros(1, device=dev)
                adapted, _ = adapt_task(self.backend.adapt, model.head, self.algorithm, p_u, p_s, sy, sm,
                                        self.inner, second_order=False)
                # Most of the catalogue: score every item and pick (no copy of the profiles);
                # a few candidates: score only those.
                whole = 2 * len(cand) >= len(profiles)
                rows = None if whole else torch.as_tensor(cand, device=dev)
                n = len(profiles) if whole else len(cand)
                with torch.no_grad():
                    scores = torch.cat([adapted.forward(p_u, profiles[c:c + PAIRS_PER_CALL] if whole
                                                        else profiles[rows[c:c + PAIRS_PER_CALL]]).detach()
                                        for c in range(0, n, PAIRS_PER_CALL)])
                if whole:
                    scores = scores[torch.as_tensor(cand, device=dev)]
            finally:
                if was_training:
                    model.train(True)
        return scores.cpu().numpy().astype(np.float64)

    def _user_row(self, user: Optional[Mapping[str, Any]]) -> np.ndarray:
        """``catalog.user_row`` remembered per profile (a bounded cache: encoding costs ~1 ms)."""
        try:
            key = tuple(sorted((str(k), v if not isinstance(v, list) else tuple(v)) for k, v in (user or {}).items()))
            hash(key)
        except TypeError:
            return self.catalog.user_row(user)
        row = self._user_rows.get(key)
        if row is None:
            row = self.catalog.user_row(user)
            if len(self._user_rows) >= USER_ROW_CACHE:
                self._user_rows.clear()
            self._user_rows[key] = row
        return row

    def _candidates(self, candidates: Optional[Iterable[Any]], exclude: np.ndarray) -> np.ndarray:
        if candidates is None:
            cand = np.arange(len(self.catalog), dtype=np.int64)
        else:
            ids = list(dict.fromkeys(str(c) for c in candidates))
            cand = self._indices(ids, "candidates")
        if exclude.size:
            cand = cand[~np.isin(cand, exclude)]
        return cand

    def _choice(self, items: np.ndarray, cand: np.ndarray) -> Optional[np.ndarray]:
        """The choice head's scores of ``cand`` for a user whose support items are ``items``
        (ranking.choice_scores), or None when the run's ranking does not weigh them."""
        if not uses_choice(self.ranking):
            return None
        data = _TaskData(self._user_row(None)[None], self.catalog.item_x, self.rating_range)
        task = Task(0, np.asarray(items, np.int64), np.zeros(len(items), np.float32), cand,
                    np.zeros(len(cand), np.float32))
        with self._lock:
            return choice_scores(self.model, [task], cand, data, self.device)[0]

    def _rank(self, cand: np.ndarray, predicted: np.ndarray, k: int, items: np.ndarray
              ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(the predicted ratings clipped to the rating range, the ranking scores, the positions of
        the top k by ranking score, best first; ties: catalogue order). The ranking score is
        ranking.rank_scores on the unclipped predictions ``predicted`` (and the choice head's
        scores from the support ``items``), what catalogue ranking orders by."""
        ranked = rank_scores(self.ranking, predicted, cand, self._choice(items, cand))
        return np.clip(predicted, *self.rating_range), ranked, top_k(ranked, k)

    def _frame(self, cand: np.ndarray, predicted: np.ndarray, k: int, items: np.ndarray) -> pd.DataFrame:
        """Top k of ``cand`` (``_rank``): item_id, title, score (the clipped predicted rating),
        rank_score (what was ordered by)."""
        scores, ranked, order = self._rank(cand, predicted, k, items)
        idx = cand[order]
        return pd.DataFrame({"item_id": self.catalog.item_ids[idx].astype(object),
                             "title": self.catalog.titles[idx].astype(object),
                             "score": scores[order].astype(np.float64),
                             "rank_score": ranked[order].astype(np.float64)})

    def recommend(self, ratings: Any = (), user: Optional[Mapping[str, Any]] = None, k: int = 10,
                  exclude_rated: bool = True, candidates: Optional[Iterable[Any]] = None) -> pd.DataFrame:
        """The top ``k`` items for a new user who gave ``ratings``: a DataFrame item_id, title,
        score (predicted rating, clipped to the rating range), rank_score (the ranking score the
        items are ordered by: the unclipped predicted rating plus w * the item's choice prior when
        the run has one, docs/algorithm.md), best first (ties: catalogue order).

        ratings: (item_id, rating) pairs, {"item_id", "rating"} dicts, a mapping, or a DataFrame
        with item_id, rating. user: profile fields, e.g. {"age": "25", "gender": "F"}; missing
        fields are UNKNOWN. candidates: item ids to rank (default: the whole catalogue).
        exclude_rated: leave the rated items out.
        """
        k = self._check_k(k)
        cand, predicted, items = self._scored(ratings, user, exclude_rated, candidates)
        return self._frame(cand, predicted, k, items)

    def recommend_records(self, ratings: Any = (), user: Optional[Mapping[str, Any]] = None, k: int = 10,
                          exclude_rated: bool = True, candidates: Optional[Iterable[Any]] = None
                          ) -> List[Dict[str, Any]]:
        """``recommend`` as a list of {"item_id", "title", "score", "rank_score"} dicts (score: the
        predicted rating; rank_score: what the list is ordered by), in ``recommend``'s order (what
        the HTTP service answers; no DataFrame is built)."""
        k = self._check_k(k)
        cand, predicted, items = self._scored(ratings, user, exclude_rated, candidates)
        scores, ranked, order = self._rank(cand, predicted, k, items)
        ids, titles = self.catalog.item_ids, self.catalog.titles
        return [{"item_id": str(ids[c]), "title": str(titles[c]), "score": float(s), "rank_score": float(r)}
                for c, s, r in zip(cand[order].tolist(), scores[order].tolist(), ranked[order].tolist())]

    def _scored(self, ratings, user, exclude_rated, candidates) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(candidate items, their unclipped predicted ratings, the support items) for one new user."""
        items, values = self._support(ratings)
        row = self._user_row(user)
        cand = self._candidates(candidates, items if exclude_rated else np.zeros(0, np.int64))
        return cand, self._predict_one(row, items, values, cand), items

    def recommend_batch(self, frame: pd.DataFrame, k: int = 10, exclude_rated: bool = True,
                        users: Optional[Mapping[Any, Mapping[str, Any]]] = None) -> pd.DataFrame:
        """``recommend`` for many users at once: ``frame`` has user_id, item_id, rating; the
        answer has user_id, rank (1..k), item_id, title, score, rank_score, users in first-appearance order.
        ``users`` optionally maps a user_id to its profile fields. Users go through the backend
        together (batched, at most PAIRS_PER_CALL candidate pairs per call)."""
        k = self._check_k(k)
        if not isinstance(frame, pd.DataFrame) or "user_id" not in frame.columns:
            raise MamoError("recommend_batch needs a DataFrame with columns user_id, item_id, rating")
        prepared, names = [], []
        for uid, part in frame.groupby("user_id", sort=False):
            try:
                items, values = self._support(part[["item_id", "rating"]])
                row = self._user_row((users or {}).get(uid))
            except MamoError as e:
                raise MamoError(f"user {uid}: {e}") from None
            cand = self._candidates(None, items if exclude_rated else np.zeros(0, np.int64))
            prepared.append((row, items, values, cand))
            names.append(uid)
        preds = self._predict(prepared)
        parts = []
        for uid, (_, items, _, cand), scores in zip(names, prepared, preds):
            top = self._frame(cand, scores, k, items)
            top.insert(0, "rank", np.arange(1, len(top) + 1))
            top.insert(0, "user_id", uid)
            parts.append(top)
        if not parts:
            return pd.DataFrame(columns=["user_id", "rank", "item_id", "title", "score", "rank_score"])
        return pd.concat(parts, ignore_index=True)

    def predict(self, ratings: Any, items: Sequence[Any], user: Optional[Mapping[str, Any]] = None) -> np.ndarray:
        """Predicted (clipped) ratings of ``items``, in that order, for a user who gave ``ratings``."""
        support, values = self._support(ratings)
        cand = self._indices([str(i) for i in items], "items")
        return np.clip(self._predict_one(self._user_row(user), support, values, cand), *self.rating_range)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first, ties in position order (as a stable
    sort of -scores would give), without sorting every score."""
    if k >= len(scores):
        return np.argsort(-scores, kind="stable")
    kth = np.partition(-scores, k - 1)[k - 1]          # the k-th best score (negated)
    pos = np.flatnonzero(-scores <= kth)               # everything at least as good (ties included)
    return pos[np.argsort(-scores[pos], kind="stable")][:k]


@dataclass
class _TaskData:
    """What ``pad_tasks`` and ``predict_tasks`` read from a data set: user rows (indexed by
    Task.user), item rows and the rating range."""
    user_x: np.ndarray
    item_x: np.ndarray
    rating_range: Tuple[float, float]




