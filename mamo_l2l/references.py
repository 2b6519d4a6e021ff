"""Floors for every table: the global mean rating and the item mean rating (global mean for
items without training ratings). Both are fitted on the training tasks' ratings only."""
from __future__ import annotations

from typing import Dict, List, Sequence

import numpy as np

from .data.batching import task_ratings
from .data.types import Task


class MeanReference:
    """Predicts the global mean (``per_item=False``) or each item's training mean."""

    def __init__(self, train_tasks: Sequence[Task], n_items: int, per_item: bool):
        items, ratings = task_ratings(train_tasks)
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
