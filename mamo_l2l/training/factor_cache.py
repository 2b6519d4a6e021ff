"""The model's start factors kept (docs/data.md, "The start factors' cache").

The default model starts from two ALS fits of the training ratings (models/factors.py: the taste
factors, ALS with biases; the choice head's identities, implicit ALS). They depend on the training
tasks and the fit's settings alone, so every model of a data bundle (``compare``'s models of one
seed) and every later process on the same data, seed and split would fit the same factors again
(7-9 s on MovieLens-1M). ``FactorMemo(bundle)`` is the ``memo`` of ``Recommender.init_item_factors``
and ``init_choice``: it keeps the factors in ``bundle.derived`` and, when the bundle has a cache
folder, in ``<cache>/factors/<key>.npy``.

``key`` = sha256 over the data fingerprint, the protocol fields of the data config, the seed (the
split), the fit's name and settings, the package version and the code fingerprint of the
result-affecting source. The array is written under a temporary name and renamed; one that cannot
be read back (or has another shape) is reported and fitted again; a cache that cannot be written is
reported and skipped. ``np.save`` / ``np.load`` keep the float32 factors bit for bit.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.hashing import json_sha256
from mamo_l2l.core.progress import log
from mamo_l2l.core.version import __version__
from mamo_l2l.training.runfiles import write_bytes_atomic
from mamo_l2l.training.runid import code_fingerprint

FOLDER = "factors"


class FactorMemo:
    """``memo(name, settings, compute)`` for one data bundle (module doc)."""

    def __init__(self, bundle):
        self.bundle = bundle
        self.sources = {"fitted": 0, "shared": 0, "cached": 0}   # how each request was served

    def key(self, name: str, settings: dict) -> str:
        b = self.bundle
        return json_sha256({"data": b.data.fingerprint, "protocol": b.config.data.protocol_key(),
                            "seed": int(b.config.train.seed), "name": name, "settings": settings,
                            "version": __version__, "code": code_fingerprint(None)})

    def path(self, key: str) -> Optional[Path]:
        folder = self.bundle.cache_dir
        return None if folder is None else Path(folder) / FOLDER / f"{key}.npy"

    def __call__(self, name: str, settings: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
        key = self.key(name, settings)
        kept = self.bundle.derived.get(("factors", key))
        if kept is not None:
            self.sources["shared"] += 1
            return kept.copy()
        path = self.path(key)
        factors = _read(path, settings.get("n_items")) if path is not None else None
        if factors is None:
            factors = compute()
            self.sources["fitted"] += 1
            if path is not None:
                _write(path, factors)
        else:
            self.sources["cached"] += 1
        self.bundle.derived[("factors", key)] = factors
        return factors.copy()


def _read(path: Path, n_items: Optional[int]) -> Optional[np.ndarray]:
    if not path.is_file():
        return None
    try:
        factors = np.load(path, allow_pickle=False)
        if factors.ndim != 2 or (n_items is not None and factors.shape[0] != n_items):
            raise ValueError(f"shape {factors.shape}")
        return factors
    except (OSError, ValueError) as e:
        log.warning(f"warning: the start factors' cache entry {path.name[:12]}... cannot be read ({e}); "
                    "fitting them again")
        return None


def _write(path: Path, factors: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(factors), allow_pickle=False)
    try:
        write_bytes_atomic(path, buffer.getvalue())
    except MamoError as e:
        log.warning(f"warning: could not keep the start factors in the cache ({e}); they are fitted again next time")
