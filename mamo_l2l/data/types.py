"""The data types that flow forward through mamo_l2l.

raw files -> RawDataset (readers) -> EncodedDataset (features) -> Splits of Task (protocol)
-> PaddedBatch (sampler) -> model.

Feature index convention, for every field vocabulary:
    0 = padding (only ever in the extra slots of a multi-valued field)
    1 = unknown (a value never seen when the encoder was fitted, or a missing value)
    2 = other   (values rarer than ``min_count`` folded together)
    3.. = the field's values
A single-valued field takes one column of the entity's feature row; a multi-valued field takes
``max_len`` columns, padded with 0; its embedding is the mean over the non-zero columns.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

PAD, UNKNOWN, OTHER, FIRST_VALUE = 0, 1, 2, 3

SCENARIOS = ("warm", "user_cold", "item_cold", "user_item_cold")


@dataclass(frozen=True)
class Field:
    """A categorical feature field of users or items."""
    name: str
    multi: bool = False   # multi-valued (e.g. genres): values are tuples of str


@dataclass
class RawDataset:
    """A data set as read from its files, before encoding.

    ratings: columns user_id (str), item_id (str), rating (float64), timestamp (float64, NaN when
        the format has none); one row per (user, item) (duplicates resolved by the reader: the
        latest kept).
    users: index user_id (str, unique); one column per user field; single-valued fields hold str
        or None (missing); multi-valued fields hold tuples of str.
    items: index item_id (str, unique); one column per item field as above, plus the column
        ``year`` (float64, NaN when unknown) that the protocol uses for the item state.
    Users/items that are rated but have no row get all-unknown features.
    item_titles: display only, never a feature: item_id (str) -> title (str), for the items whose
        files name one (None when the format has no titles). Kept with a trained run so that
        recommendations can show titles (docs/serving.md).
    """
    name: str
    ratings: pd.DataFrame
    users: pd.DataFrame
    items: pd.DataFrame
    user_fields: Tuple[Field, ...]
    item_fields: Tuple[Field, ...]
    rating_range: Tuple[float, float]
    source_files: Dict[str, str] = field(default_factory=dict)   # file name -> sha256
    duplicates_dropped: int = 0
    format: str = ""
    item_titles: Optional[pd.Series] = None


@dataclass(frozen=True)
class FieldLayout:
    """Where a field's columns sit in an entity's feature row."""
    name: str
    start: int
    stop: int
    vocab_size: int       # including PAD, UNKNOWN and OTHER
    multi: bool
    identity: bool = False  # an entity-identity field: embedding starts at zero (data/identity.py)


@dataclass
class EncodedDataset:
    """Integer-encoded data set (everything the protocol and the models need)."""
    name: str
    user_ids: np.ndarray            # [n_users] str, index -> raw id
    item_ids: np.ndarray            # [n_items] str
    user_x: np.ndarray              # [n_users, S_u] int64 feature rows
    item_x: np.ndarray              # [n_items, S_i] int64
    user_layout: Tuple[FieldLayout, ...]
    item_layout: Tuple[FieldLayout, ...]
    rating_user: np.ndarray         # [n_ratings] int64 user index
    rating_item: np.ndarray         # [n_ratings] int64 item index
    rating: np.ndarray              # [n_ratings] float32
    timestamp: np.ndarray           # [n_ratings] float64 (NaN when unknown)
    item_year: np.ndarray           # [n_items] float64 (NaN when unknown)
    rating_range: Tuple[float, float]
    fingerprint: str = ""           # sha256 over source files + encoder settings
    encoders: Optional[dict] = None  # serialisable encoder state (features.FeatureEncoders.to_dict())
    item_titles: Optional[np.ndarray] = None  # [n_items] str display titles ("" when unknown); never a feature


@dataclass
class Task:
    """One user's task: adapt on the support ratings, score on the query ratings."""
    user: int                        # user index into EncodedDataset.user_x
    support_items: np.ndarray        # [n_s] int64 item indices
    support_ratings: np.ndarray      # [n_s] float32
    query_items: np.ndarray          # [n_q] int64
    query_ratings: np.ndarray        # [n_q] float32


@dataclass
class Splits:
    """The protocol's output: training and validation tasks and the four test scenarios."""
    train: List[Task]
    valid: List[Task]
    test: Dict[str, List[Task]]      # keys: SCENARIOS
    item_year_cutoff: Optional[float]
    counts: dict                     # see docs/protocol.md (The counts) and `mamo-l2l data info --json`
