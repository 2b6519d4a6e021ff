"""The mean predictors: a user's rating predicted by the training mean of the item (or of all
ratings); the item-mean and global-mean references and models (docs/models.md)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from mamo_l2l.data.batching import task_ratings
from mamo_l2l.data.types import Task


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


