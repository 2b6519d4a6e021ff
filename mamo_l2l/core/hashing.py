"""The checksums used everywhere (data files, fetched archives, cache keys, fingerprints)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def file_digest(path, algo: str = "sha256") -> str:
    """Hex digest (sha256 unless ``algo`` says otherwise, e.g. md5 for an archive) of a file's bytes."""
    h = hashlib.new(algo)
    with open(Path(path), "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def json_sha256(payload: Any) -> str:
    """sha256 hex of ``payload`` as canonical JSON (keys sorted; other objects as ``str``)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode("utf-8")).hexdigest()
