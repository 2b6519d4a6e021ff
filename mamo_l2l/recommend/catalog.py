"""The item catalogue of a run: the items it can recommend (ids, titles, feature rows) and what is
needed to encode a new user (the user-field layouts and vocabularies, the rating range), stored in
``best.pt`` under ``catalog`` so that a recommender loads from the checkpoint alone (docs/serving.md)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.features import FeatureEncoders
from mamo_l2l.data.types import PAD, UNKNOWN, EncodedDataset, FieldLayout

CATALOG_VERSION = 1
#: known values listed in a message about a profile value the run never saw
MAX_LISTED = 20


def _natural(value: str):
    """Numbers in numeric order, before other strings."""
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


# ------------------------------------------------------------------------------ catalogue
@dataclass
class Catalog:
    """The items a run can recommend, and what is needed to encode a new user."""
    item_ids: np.ndarray                 # [n] str, as in the data set's files
    titles: np.ndarray                   # [n] str ("" where the files name none)
    item_x: np.ndarray                   # [n, S_i] int64 feature rows (with the identity field, if any)
    user_layout: Tuple[FieldLayout, ...]
    item_layout: Tuple[FieldLayout, ...]
    rating_range: Tuple[float, float]
    encoders: Dict[str, Any]             # FeatureEncoders.to_dict()
    fingerprint: str = ""
    _index: Dict[str, int] = field(default=None, repr=False, compare=False)
    _lower: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_data(cls, data: EncodedDataset, encoders: Any) -> "Catalog":
        titles = data.item_titles if data.item_titles is not None else np.full(len(data.item_ids), "")
        enc = encoders.to_dict() if hasattr(encoders, "to_dict") else dict(encoders or {})
        return cls(np.asarray(data.item_ids).astype(str), np.asarray(titles).astype(str),
                   np.asarray(data.item_x, dtype=np.int64), tuple(data.user_layout), tuple(data.item_layout),
                   (float(data.rating_range[0]), float(data.rating_range[1])), enc, data.fingerprint)

    def to_payload(self) -> Dict[str, Any]:
        """Plain containers and tensors only (checkpoints are read with weights_only=True)."""
        return {"version": CATALOG_VERSION, "item_ids": [str(i) for i in self.item_ids],
                "titles": [str(t) for t in self.titles], "item_x": torch.from_numpy(self.item_x.copy()),
                "user_layout": [dict(fl.__dict__) for fl in self.user_layout],
                "item_layout": [dict(fl.__dict__) for fl in self.item_layout],
                "rating_range": list(self.rating_range), "encoders": self.encoders, "fingerprint": self.fingerprint}

    @classmethod
    def from_payload(cls, d: Mapping[str, Any], path=None) -> "Catalog":
        if d.get("version") != CATALOG_VERSION:
            raise MamoError(f"item catalogue of version {d.get('version')!r}; this library reads "
                            f"version {CATALOG_VERSION}", path=path)
        return cls(
            np.asarray(d["item_ids"], dtype=object).astype(str),
            np.asarray(d["titles"], dtype=object).astype(str),
            d["item_x"].numpy().astype(np.int64),
            tuple(FieldLayout(**fl) for fl in d["user_layout"]),
            tuple(FieldLayout(**fl) for fl in d["item_layout"]),
            tuple(float(x) for x in d["rating_range"]),
            dict(d["encoders"]),
            str(d.get("fingerprint", "")),
        )

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def index(self) -> Dict[str, int]:
        if self._index is None:
            self._index = {str(i): k for k, i in enumerate(self.item_ids)}
        return self._index

    def stub_dataset(self) -> EncodedDataset:
        """An EncodedDataset with the catalogue's layouts and items and no ratings: enough to
        build the model (``build_model``) without the data set's files."""
        empty = np.zeros(0, np.int64)
        width = sum(fl.stop - fl.start for fl in self.user_layout)
        return EncodedDataset(
            "catalog",
            np.zeros(0, dtype=str),
            self.item_ids,
            np.zeros((0, width), np.int64),
            self.item_x,
            self.user_layout,
            self.item_layout,
            empty,
            empty,
            np.zeros(0, np.float32),
            np.zeros(0),
            np.full(len(self), np.nan),
            self.rating_range,
            fingerprint=self.fingerprint,
            encoders=self.encoders,
            item_titles=self.titles,
        )

    def user_values(self) -> Dict[str, Optional[List[str]]]:
        """{user field: the values the run saw (kept or folded), sorted; None when the run stored
        no vocabularies}, in layout order."""
        vocabs = {e["name"]: sorted(set(e["values"]) | set(e["folded"]), key=_natural)
                  for e in self.encoders.get("user_fields", [])}
        return {fl.name: vocabs.get(fl.name) for fl in self.user_layout}

    def profile_problems(self, user: Optional[Mapping[str, Any]]) -> List[str]:
        """What in a new user's profile the run does not know, one plain sentence each, naming
        the known fields or values: an unknown field (refused by ``user_row``) or a value no
        user of the run had (encoded as unknown, so it changes nothing). [] when all is known."""
        if not isinstance(user, Mapping):
            return []
        known = self.user_values()
        problems = []
        extra = [str(k) for k in user if str(k) not in known]
        if extra:
            problems.append(f"unknown user field(s) {', '.join(extra)}; this run knows: {', '.join(known) or 'none'}")
        for name, value in user.items():
            vocab = known.get(str(name))
            if vocab is None or value is None:
                continue
            values = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
            unseen = [v for v in values if v not in set(vocab)]
            if unseen:
                shown = ", ".join(vocab[:MAX_LISTED]) + (f" and {len(vocab) - MAX_LISTED} more"
                                                         if len(vocab) > MAX_LISTED else "")
                problems.append(f"{name}={'|'.join(unseen)} is a value this run never saw (it counts as unknown); "
                                f"known {name} values: {shown}")
        return problems

    def user_row(self, user: Optional[Mapping[str, Any]]) -> np.ndarray:
        """A new user's feature row; fields not given (or None) are UNKNOWN."""
        user = {} if user is None else user
        if not isinstance(user, Mapping):
            raise MamoError(f"user must be a mapping of profile fields to values, got {type(user).__name__}")
        known = [fl.name for fl in self.user_layout]
        extra = sorted(set(map(str, user)) - set(known))
        if extra:
            raise MamoError(f"unknown user field(s) {extra}; this run knows: {known}")
        values = {
            str(k): (None if v is None else (v if isinstance(v, (list, tuple)) else str(v))) for k, v in user.items()
        }
        if "user_fields" in self.encoders:
            row = FeatureEncoders.from_dict(self.encoders).encode_user(values)
        elif not any(v is not None for v in values.values()):
            row = np.full(sum(fl.stop - fl.start for fl in self.user_layout), PAD, dtype=np.int64)
            for fl in self.user_layout:
                row[fl.start] = UNKNOWN
        else:
            raise MamoError("this run has no user-field vocabularies, so a user profile cannot be encoded")
        return np.asarray(row, dtype=np.int64)

    def search(self, query: str, limit: int = 20) -> List[Tuple[str, str]]:
        """(item id, title) of items whose title contains ``query`` (case-insensitive), or whose id
        is ``query``; titles starting with it first, then shorter titles; at most ``limit``."""
        q = str(query).strip().lower()
        if not q or limit < 1:
            return []
        if self._lower is None:
            self._lower = np.char.lower(self.titles.astype(str))
        pos = np.char.find(self._lower, q)
        hits = np.flatnonzero(pos >= 0)
        order = sorted(hits.tolist(), key=lambda k: (pos[k] != 0, len(self._lower[k]), k))
        exact = self.index.get(str(query).strip())
        if exact is not None:
            order = [exact] + [k for k in order if k != exact]
        return [(str(self.item_ids[k]), str(self.titles[k])) for k in order[:limit]]


# ------------------------------------------------------------------------------ loading
def catalog_payload(bundle) -> Dict[str, Any]:
    """The ``catalog`` entry of best.pt (train.save_model)."""
    return Catalog.from_data(bundle.data, bundle.encoders).to_payload()
