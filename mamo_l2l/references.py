"""Floors for every table: the global mean rating and the item mean rating (global mean for
items without training ratings). Both are fitted on the training tasks' ratings only."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from .data.types import Task


def training_ratings(tasks: Sequence[Task]):
    """(item indices, ratings) of every rating in the training tasks (support and query)."""
    items = np.concatenate([np.concatenate([t.support_items, t.query_items]) for t in tasks])
    ratings = np.concatenate([np.concatenate([t.support_ratings, t.query_ratings]) for t in tasks])
    return items.astype(np.int64), ratings.astype(np.float64)


class MeanReference:
    """Predicts the global mean (``per_item=False``) or each item's training mean."""

    def __init__(self, train_tasks: Sequence[Task], n_items: int, per_item: bool):
        items, ratings = training_ratings(train_tasks)
        self.global_mean = float(ratings.mean())
        self.item_mean = np.full(n_items, self.global_mean)
        if per_item:
            sums = np.bincount(items, weights=ratings, minlength=n_items)
            counts = np.bincount(items, minlength=n_items)
            seen = counts > 0
            self.item_mean[seen] = sums[seen] / counts[seen]

    def predict(self, task: Task) -> np.ndarray:
        return self.item_mean[task.query_items]


def reference_predictions(train_tasks: Sequence[Task], n_items: int) -> Dict[str, MeanReference]:
    return {"global_mean": MeanReference(train_tasks, n_items, per_item=False),
            "item_mean": MeanReference(train_tasks, n_items, per_item=True)}
