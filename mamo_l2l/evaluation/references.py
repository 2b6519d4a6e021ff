"""Floors for every table: the global mean rating and the item mean rating (global mean for
items without training ratings). Both are fitted on the training tasks' ratings only."""
from __future__ import annotations

from typing import Dict, Sequence

from mamo_l2l.data.types import Task
from mamo_l2l.models.means import MeanReference


def reference_predictions(train_tasks: Sequence[Task], n_items: int) -> Dict[str, MeanReference]:
    return {"global_mean": MeanReference(train_tasks, n_items, per_item=False),
            "item_mean": MeanReference(train_tasks, n_items, per_item=True)}
