"""The references' figures on disk (docs/data.md, "The references' cache").

The top-N references (EASE, item-KNN, ALS, content-KNN, the choice prior, the constant scorers)
depend on the data and the split alone, not on the model being evaluated: evaluating a second run
of the same data, seed and split would fit and score them again (about half of an ML-1M
``train --epochs 1``). Their figures are therefore kept in ``<cache>/references/<key>.json`` (the
catalogue metrics, the ALS query metrics, the choices) beside ``<key>.npy`` (the choice prior,
written first, so the JSON marks a complete entry).

``key`` = sha256 over the data fingerprint (source files + encoder settings), the protocol fields
of the data config, the seed, the relevance threshold, the scenarios, ``FORMAT``, the package
version and the code fingerprint of the result-affecting source (training/runid.py): any change
of data, split, metric setting or scoring code gives another key. An entry that cannot be read
back is reported and fitted again; a cache that cannot be written is reported and skipped.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np

from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.hashing import json_sha256
from mamo_l2l.core.progress import log
from mamo_l2l.core.version import __version__
from mamo_l2l.training.run import DataBundle
from mamo_l2l.training.runfiles import write_bytes_atomic
from mamo_l2l.training.runid import code_fingerprint

FORMAT = 1
FOLDER = "references"


def reference_key(bundle: DataBundle, threshold: float, scenarios: Sequence[str]) -> str:
    """The cache key of the references' figures for this data bundle (module doc)."""
    data_config = bundle.config.data
    return json_sha256({"data": bundle.data.fingerprint, "protocol": data_config.protocol_key(),
                        "seed": int(bundle.config.train.seed), "threshold": float(threshold),
                        "scenarios": list(scenarios), "format": FORMAT, "version": __version__,
                        "code": code_fingerprint(None)})


def entry_paths(cache_dir, key: str):
    """(JSON path, choice-prior .npy path) of the entry ``key`` under ``cache_dir``."""
    folder = Path(cache_dir) / FOLDER
    return folder / f"{key}.json", folder / f"{key}.npy"


def read_references(cache_dir, key: str) -> Optional[Dict[str, Any]]:
    """The cached figures ({"catalogue", "als", "choices", "prior"}), or None when there is no
    intact entry (a damaged one is reported)."""
    json_path, prior_path = entry_paths(cache_dir, key)
    if not json_path.is_file():
        return None
    try:
        saved = json.loads(json_path.read_text(encoding="utf-8"))
        if saved.get("key") != key:
            raise ValueError("the entry names another key")
        prior = np.load(prior_path, allow_pickle=False)
        return {"catalogue": saved["catalogue"], "als": saved["als"], "choices": saved["choices"],
                "prior": prior}
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning(f"warning: the references' cache entry {json_path.name[:12]}... cannot be read ({e}); "
                    "fitting the references again")
        return None


def _plain(value):
    """JSON for numpy scalars (the metrics are floats and counts)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_references(cache_dir, key: str, shared: Dict[str, Any]) -> None:
    """Keep ``shared`` (as read_references returns it) under ``key``; a cache that cannot be
    written is reported, never fatal."""
    json_path, prior_path = entry_paths(cache_dir, key)
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(shared["prior"]), allow_pickle=False)
    text = json.dumps({"key": key, "catalogue": shared["catalogue"], "als": shared["als"],
                       "choices": shared["choices"]}, default=_plain)
    try:
        write_bytes_atomic(prior_path, buffer.getvalue())
        write_bytes_atomic(json_path, text.encode("utf-8"))
    except MamoError as e:
        log.warning(f"warning: could not keep the references' figures in the cache ({e}); "
                    "they are fitted again next time")
