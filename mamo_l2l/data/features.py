"""Feature vocabularies: fit on a RawDataset, encode it (and new users/items) into index arrays.

Index convention (types.py): 0 = PAD, 1 = UNKNOWN (missing or never seen), 2 = OTHER (a value
held by fewer than ``min_count`` entities), 3.. = the field's kept values in sorted order.
A multi-valued field gets ``width`` = the largest number of distinct values one entity held at
fit time; shorter rows are padded with PAD, an entity with no values gets UNKNOWN in slot 0.

After the protocol, ``restrict_to_training`` maps every value that no *training* user/item
carries to UNKNOWN (year fields: to the nearest year that training items carry), so that no
feature row outside training indexes an embedding row that never received a gradient
(docs/data.md section 3).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.hashing import json_sha256
from mamo_l2l.data.types import (
    FIRST_VALUE,
    OTHER,
    PAD,
    UNKNOWN,
    EncodedDataset,
    Field,
    FieldLayout,
    RawDataset,
)

# Bump when the encoding rules change, so fingerprints (and processed caches) change too.
FEATURES_VERSION = 2


@dataclass
class FieldVocab:
    """One field's vocabulary.

    values: the kept values, value ``values[k]`` has index FIRST_VALUE + k.
    folded: the values seen at fit time but held by fewer than min_count entities (-> OTHER);
        kept so that a new entity carrying one of them encodes exactly as at training time.
    width: columns in the feature row (1 for single-valued fields).
    untrained: (value, target) pairs for the values (kept or folded) that no training entity
        carries (``restrict_to_training``): the value encodes as ``target``'s code, or as UNKNOWN
        when ``target`` is None. Indices of the kept values never move.
    """
    name: str
    multi: bool
    values: Tuple[str, ...]
    folded: Tuple[str, ...]
    width: int
    untrained: Tuple[Tuple[str, Optional[str]], ...] = ()

    @property
    def vocab_size(self) -> int:
        return FIRST_VALUE + len(self.values)

    def lookup(self) -> Tuple[pd.Index, np.ndarray]:
        """(index of every known value, its code); unseen values are not in the index."""
        index = pd.Index(list(self.values) + list(self.folded), dtype=object)
        codes = np.concatenate([np.arange(FIRST_VALUE, FIRST_VALUE + len(self.values), dtype=np.int64),
                                np.full(len(self.folded), OTHER, dtype=np.int64)])
        if self.untrained:
            pos = {v: FIRST_VALUE + k for k, v in enumerate(self.values)}
            where = index.get_indexer(pd.Index([v for v, _ in self.untrained], dtype=object))
            codes[where] = [UNKNOWN if t is None else pos[t] for _, t in self.untrained]
        return index, codes

    def codes_of(self, values: Sequence[Any]) -> np.ndarray:
        """Codes of a flat sequence of values (str; None/NaN = missing -> UNKNOWN). int64 [n]."""
        index, codes = self.lookup()
        pos = index.get_indexer(pd.Index(_as_str(values), dtype=object))
        out = np.full(len(pos), UNKNOWN, dtype=np.int64)
        hit = pos >= 0
        out[hit] = codes[pos[hit]]
        return out


class FeatureEncoders:
    """The user and item field vocabularies of one data set, fitted once and then frozen."""

    def __init__(self, user_vocabs: Sequence[FieldVocab], item_vocabs: Sequence[FieldVocab], min_count: int):
        self.user_vocabs = tuple(user_vocabs)
        self.item_vocabs = tuple(item_vocabs)
        self.min_count = int(min_count)

    # ---------------------------------------------------------------- fit
    @classmethod
    def fit(cls, raw: RawDataset, min_count: int) -> "FeatureEncoders":
        """Fit vocabularies on the entity tables ``raw.users`` / ``raw.items``.

        A value's count is the number of entities (rows) holding it, not the number of ratings,
        so a popular item does not make its genre look common.
        """
        if min_count < 1:
            raise MamoError(f"config key data.min_count must be >= 1, got {min_count}")
        users = [_fit_field(raw.users, f, min_count) for f in raw.user_fields]
        items = [_fit_field(raw.items, f, min_count) for f in raw.item_fields]
        return cls(users, items, min_count)

    # ---------------------------------------------------------------- layouts
    @staticmethod
    def _layout(vocabs: Sequence[FieldVocab]) -> Tuple[FieldLayout, ...]:
        out, start = [], 0
        for v in vocabs:
            out.append(FieldLayout(v.name, start, start + v.width, v.vocab_size, v.multi))
            start += v.width
        return tuple(out)

    @property
    def user_layout(self) -> Tuple[FieldLayout, ...]:
        return self._layout(self.user_vocabs)

    @property
    def item_layout(self) -> Tuple[FieldLayout, ...]:
        return self._layout(self.item_vocabs)

    # ---------------------------------------------------------------- encode
    def encode_table(self, table: pd.DataFrame, ids: np.ndarray, vocabs: Sequence[FieldVocab]) -> np.ndarray:
        """Feature rows for the entities ``ids`` (in that order): int64 [len(ids), row width].

        Entities absent from ``table`` (rated but without a row) get UNKNOWN in every field.
        """
        width = sum(v.width for v in vocabs)
        out = np.zeros((len(ids), width), dtype=np.int64)
        # position of each wanted id in the table (-1: no row)
        table_index = pd.Index(table.index.astype(str), dtype=object) if len(table) else pd.Index([], dtype=object)
        if not table_index.is_unique:
            raise MamoError(f"entity table has duplicate ids (e.g. {table_index[table_index.duplicated()][0]!r})")
        rows = table_index.get_indexer(pd.Index(ids, dtype=object))
        has_row = rows >= 0
        start = 0
        for v in vocabs:
            col = np.full(len(ids), None, dtype=object)
            if v.name in table.columns:
                col[has_row] = table[v.name].to_numpy(dtype=object)[rows[has_row]]
            elif len(table):
                raise MamoError(f"entity table has no column for field {v.name!r}")
            if v.multi:
                out[:, start:start + v.width] = _encode_multi(col, v)
            else:
                out[:, start] = v.codes_of(col)
            start += v.width
        return out

    def encode(self, raw: RawDataset) -> EncodedDataset:
        """Encode ``raw`` with these vocabularies.

        User (item) index order: the ids of the rated users (items) and of the entity table rows,
        sorted (numerically when every id is an integer, else as strings). Ratings are ordered by
        (user index, item index), so the result does not depend on the row order of the files.
        """
        r = raw.ratings
        user_ids = _sorted_ids(np.concatenate([r["user_id"].to_numpy(dtype=object),
                                               raw.users.index.to_numpy(dtype=object)]))
        item_ids = _sorted_ids(np.concatenate([r["item_id"].to_numpy(dtype=object),
                                               raw.items.index.to_numpy(dtype=object)]))
        # ids are str by the RawDataset contract, so they can be looked up as they are
        rating_user = pd.Index(user_ids, dtype=object).get_indexer(r["user_id"].to_numpy(dtype=object))
        rating_item = pd.Index(item_ids, dtype=object).get_indexer(r["item_id"].to_numpy(dtype=object))
        if (rating_user < 0).any() or (rating_item < 0).any():
            raise MamoError(f"data set {raw.name}: ratings with a missing user or item id")
        order = np.lexsort((rating_item, rating_user))
        timestamp = (r["timestamp"].to_numpy(dtype=np.float64) if "timestamp" in r.columns
                     else np.full(len(r), np.nan))
        if "year" in raw.items.columns and len(raw.items):
            years = pd.Series(raw.items["year"].to_numpy(dtype=np.float64), index=raw.items.index.astype(str))
            item_year = years.reindex(item_ids).to_numpy(dtype=np.float64)
        else:
            item_year = np.full(len(item_ids), np.nan)
        return EncodedDataset(
            name=raw.name,
            user_ids=user_ids.astype(str),
            item_ids=item_ids.astype(str),
            user_x=self.encode_table(raw.users, user_ids, self.user_vocabs),
            item_x=self.encode_table(raw.items, item_ids, self.item_vocabs),
            user_layout=self.user_layout,
            item_layout=self.item_layout,
            rating_user=rating_user[order].astype(np.int64),
            rating_item=rating_item[order].astype(np.int64),
            rating=r["rating"].to_numpy(dtype=np.float32)[order],
            timestamp=timestamp[order],
            item_year=item_year,
            rating_range=(float(raw.rating_range[0]), float(raw.rating_range[1])),
            fingerprint=self.fingerprint(raw.source_files),
            encoders=self.to_dict(),
        )

    def encode_user(self, values: Mapping[str, Any]) -> np.ndarray:
        """Feature row (int64 [S_u]) of a new user given {field name: value}; see ``_encode_one``."""
        return _encode_one(values, self.user_vocabs, "user")

    def encode_item(self, values: Mapping[str, Any]) -> np.ndarray:
        """Feature row (int64 [S_i]) of a new item given {field name: value}; see ``_encode_one``."""
        return _encode_one(values, self.item_vocabs, "item")

    # ---------------------------------------------------------------- identity
    def settings(self) -> Dict[str, Any]:
        return {"features_version": FEATURES_VERSION, "min_count": self.min_count}

    def fingerprint(self, source_files: Mapping[str, str]) -> str:
        """sha256 hex over the source files' checksums (sorted by name) and the encoder settings."""
        payload = {"sources": sorted((str(k), str(v)) for k, v in source_files.items()),
                   "settings": self.settings()}
        return json_sha256(payload)

    def to_dict(self) -> Dict[str, Any]:
        """JSON-serialisable state (lists, strings, ints only)."""
        def one(v: FieldVocab) -> Dict[str, Any]:
            return {"name": v.name, "multi": v.multi, "width": v.width,
                    "values": list(v.values), "folded": list(v.folded),
                    "untrained": [[a, b] for a, b in v.untrained]}
        return {**self.settings(), "user_fields": [one(v) for v in self.user_vocabs],
                "item_fields": [one(v) for v in self.item_vocabs]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FeatureEncoders":
        """Inverse of ``to_dict``; raises MamoError on a dict from another encoder version."""
        if d.get("features_version") != FEATURES_VERSION:
            raise MamoError(f"feature encoders of version {d.get('features_version')!r}; "
                            f"this library reads version {FEATURES_VERSION}")
        def one(e: Mapping[str, Any]) -> FieldVocab:
            return FieldVocab(str(e["name"]), bool(e["multi"]), tuple(e["values"]), tuple(e["folded"]),
                              int(e["width"]), tuple((str(a), None if b is None else str(b))
                                                     for a, b in e.get("untrained", [])))
        return cls([one(e) for e in d["user_fields"]], [one(e) for e in d["item_fields"]], int(d["min_count"]))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FeatureEncoders) and self.to_dict() == other.to_dict()


# -------------------------------------------------------------------- training-only vocabularies
def is_year_field(name: str) -> bool:
    """Fields whose values are years (release_year, pub_year, year_token): ordered, so a value no
    training item carries can borrow the nearest trained year instead of UNKNOWN."""
    return "year" in name.lower()


def _restrict_field(v: FieldVocab, cols: np.ndarray, train_rows: np.ndarray) -> Tuple[FieldVocab, np.ndarray]:
    """(vocab with ``untrained`` filled in, code map int64 [vocab_size]) for one field."""
    trained = np.zeros(v.vocab_size, dtype=bool)
    trained[np.unique(cols[train_rows])] = True
    trained[[PAD, UNKNOWN]] = True
    code_map = np.arange(v.vocab_size, dtype=np.int64)
    untrained = []
    # year fields: an untrained year borrows the nearest trained year (ties: the earlier one)
    years = {}
    if is_year_field(v.name):
        for k, value in enumerate(v.values):
            num = pd.to_numeric(value, errors="coerce")
            if trained[FIRST_VALUE + k] and not pd.isna(num):
                years[FIRST_VALUE + k] = float(num)
    year_codes = np.array(sorted(years, key=lambda c: (years[c], c)), dtype=np.int64)
    year_values = np.array([years[c] for c in year_codes])
    for k, value in enumerate(v.values):
        code = FIRST_VALUE + k
        if trained[code]:
            continue
        num = pd.to_numeric(value, errors="coerce")
        if year_codes.size and not pd.isna(num):
            target = int(year_codes[np.argmin(np.abs(year_values - float(num)))])
            code_map[code] = target
            untrained.append((value, v.values[target - FIRST_VALUE]))
        else:
            code_map[code] = UNKNOWN
            untrained.append((value, None))
    if not trained[OTHER]:
        code_map[OTHER] = UNKNOWN
        untrained += [(value, None) for value in v.folded]
    return FieldVocab(v.name, v.multi, v.values, v.folded, v.width, tuple(untrained)), code_map


def restrict_to_training(encoders: FeatureEncoders, data: EncodedDataset, train_users: np.ndarray,
                         train_items: np.ndarray) -> Tuple[EncodedDataset, FeatureEncoders]:
    """Map every feature value that none of ``train_users`` / ``train_items`` carries (indices of
    the users and items of the training tasks) to UNKNOWN, or, in a year field, to the nearest
    year that training items carry; returns the re-encoded data and the matching encoders (so
    that ``encode_user``/``encode_item`` give the same rows for new entities).

    Why: an embedding row that no training entity indexes never receives a gradient and keeps
    its random initialisation; every test-only value (e.g. the years of new items, which are all
    after the cutoff) would add seed-dependent noise. UNKNOWN rows start at zero (FieldEmbedder).
    """
    out = {}
    for kind, vocabs, x, rows in (("user", encoders.user_vocabs, data.user_x, train_users),
                                  ("item", encoders.item_vocabs, data.item_x, train_items)):
        x = x.copy()
        new_vocabs, start = [], 0
        for v in vocabs:
            cols = x[:, start:start + v.width]
            nv, code_map = _restrict_field(v, cols, np.asarray(rows, dtype=np.int64))
            x[:, start:start + v.width] = code_map[cols]
            new_vocabs.append(nv)
            start += v.width
        out[kind] = (new_vocabs, x)
    restricted = FeatureEncoders(out["user"][0], out["item"][0], encoders.min_count)
    data = dataclasses.replace(data, user_x=out["user"][1], item_x=out["item"][1],
                               encoders=restricted.to_dict())
    return data, restricted


# -------------------------------------------------------------------- helpers
def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA


def _as_str(values: Iterable[Any]) -> np.ndarray:
    """Values as an object array of str, missing ones None (None never matches a vocabulary entry)."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    missing = pd.isna(arr)
    present = arr[~missing]
    # the readers already give str, so the per-value str() is only paid for other input
    if len(present) and pd.api.types.infer_dtype(present, skipna=False) != "string":
        arr[~missing] = [str(v) for v in present]
    arr[missing] = None
    return arr


def _tuple_of(v: Any) -> Tuple[str, ...]:
    """A multi-valued cell as a tuple of distinct str, first occurrence order."""
    if _is_missing(v):
        return ()
    if isinstance(v, str):
        v = (v,)
    return tuple(dict.fromkeys(str(x) for x in v if not _is_missing(x)))


def _fit_field(table: pd.DataFrame, f: Field, min_count: int) -> FieldVocab:
    if len(table) and f.name not in table.columns:
        raise MamoError(f"entity table has no column for field {f.name!r}")
    col = table[f.name] if len(table) else pd.Series([], dtype=object)
    if f.multi:
        cells = [_tuple_of(v) for v in col.to_numpy(dtype=object)]
        width = max([len(c) for c in cells] + [1])
        flat = pd.Series([x for c in cells for x in c], dtype=object)
    else:
        width = 1
        flat = pd.Series(_as_str(col.to_numpy(dtype=object)), dtype=object).dropna()
    counts = flat.value_counts()   # multi cells hold distinct values, so this counts entities
    kept = tuple(sorted(str(v) for v in counts.index[counts.to_numpy() >= min_count]))
    folded = tuple(sorted(str(v) for v in counts.index[counts.to_numpy() < min_count]))
    return FieldVocab(f.name, f.multi, kept, folded, width)


def _encode_multi(col: np.ndarray, v: FieldVocab) -> np.ndarray:
    """int64 [len(col), v.width]: codes of each cell's distinct values, PAD-filled; () -> UNKNOWN.

    Cells with more values than ``width`` (possible only for data not seen at fit time) keep
    their first ``width`` values.
    """
    cells = [_tuple_of(c)[:v.width] for c in col]
    lengths = np.fromiter((len(c) for c in cells), dtype=np.int64, count=len(cells))
    flat = [x for c in cells for x in c]
    codes = v.codes_of(flat)
    out = np.full((len(cells), v.width), PAD, dtype=np.int64)
    rows = np.repeat(np.arange(len(cells)), lengths)
    # slot of each value inside its cell: running index minus the cell's start offset
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(cells) else np.zeros(0, np.int64)
    slots = np.arange(len(flat)) - np.repeat(starts, lengths)
    out[rows, slots] = codes
    out[lengths == 0, 0] = UNKNOWN
    return out


def _encode_one(values: Mapping[str, Any], vocabs: Sequence[FieldVocab], kind: str) -> np.ndarray:
    """One entity's row. Values never seen at fit time -> UNKNOWN; values folded at fit time -> OTHER;
    absent or None fields -> UNKNOWN. Multi fields take an iterable of str (a lone str is one value)."""
    known = {v.name for v in vocabs}
    extra = set(values) - known
    if extra:
        raise MamoError(f"unknown {kind} field(s) {sorted(extra)}; known: {sorted(known)}")
    parts = []
    for v in vocabs:
        cell = values.get(v.name)
        if v.multi:
            one = np.empty(1, dtype=object)   # a 1-cell column (np.array would unpack the tuple)
            one[0] = _tuple_of(cell)
            parts.append(_encode_multi(one, v)[0])
        else:
            parts.append(v.codes_of([cell]))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _sorted_ids(ids: np.ndarray) -> np.ndarray:
    """Distinct ids as an object array of str, sorted numerically if all are integers, else as str."""
    uniq = pd.unique(pd.Series(ids, dtype=object).dropna())
    s = pd.Series(_as_str(uniq), dtype=object)
    nums = pd.to_numeric(s, errors="coerce")
    if len(s) and nums.notna().all() and (nums == np.floor(nums)).all():
        order = np.lexsort((s.to_numpy(dtype=str), nums.to_numpy(dtype=np.float64)))
    else:
        order = np.argsort(s.to_numpy(dtype=str), kind="stable")
    return s.to_numpy(dtype=object)[order]
