"""The item identity feature (``data.item_id_feature``, a documented choice; docs/data.md).

Year and genres say little about how good a particular movie is; the item-mean reference knows
exactly that from the training ratings. To give the models the same information, each item that
has ratings in the *training tasks* gets its own index in an extra single-valued item field
``item_id``; every other item (new items, and existing items only rated by held-out users) gets
UNKNOWN. The field is marked ``identity``: its embedding table starts at zero, so an unknown id
contributes exactly nothing and never-trained rows cannot inject noise into cold-start scenarios.

Applied after the protocol, because which ids are known depends on the training split (no test
rating is ever used: only training tasks decide the vocabulary).
"""
from __future__ import annotations

import dataclasses
from typing import Tuple

import numpy as np

from mamo_l2l.data.batching import task_ratings
from mamo_l2l.data.types import (
    FIRST_VALUE,
    UNKNOWN,
    EncodedDataset,
    FieldLayout,
    Splits,
)

FIELD = "item_id"


def training_items(splits: Splits) -> np.ndarray:
    """Sorted indices of the items rated in the training tasks (support or query)."""
    return np.unique(task_ratings(splits.train)[0])


def mask_identity(data: EncodedDataset) -> EncodedDataset:
    """A copy of ``data`` in which every item's identity reads UNKNOWN (as a new item's does); the
    same object when the items have no identity field. Validation uses it as its stand-in for new
    items (train.select_metric ``ndcg@3+masked``, docs/algorithm.md)."""
    columns = [f.start for f in data.item_layout if f.identity]
    if not columns:
        return data
    item_x = np.array(data.item_x, copy=True)
    item_x[:, columns] = UNKNOWN
    return dataclasses.replace(data, item_x=item_x)


def add_item_identity(data: EncodedDataset, splits: Splits) -> EncodedDataset:
    """A copy of ``data`` with the ``item_id`` field appended to every item row."""
    if any(f.name == FIELD for f in data.item_layout):
        return data
    known = training_items(splits)
    column = np.full(len(data.item_ids), UNKNOWN, dtype=np.int64)
    column[known] = FIRST_VALUE + np.arange(known.size)
    width = data.item_x.shape[1]
    layout: Tuple[FieldLayout, ...] = tuple(data.item_layout) + (
        FieldLayout(FIELD, width, width + 1, FIRST_VALUE + known.size, False, identity=True),)
    return dataclasses.replace(data, item_x=np.concatenate([data.item_x, column[:, None]], axis=1),
                               item_layout=layout)
