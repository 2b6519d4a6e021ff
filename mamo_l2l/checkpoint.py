"""Checkpoints: parameters, memories (buffers), optimiser state, encoders, full config, data
fingerprint and library versions, in one file.

Written atomically (temporary file in the same folder, then ``os.replace``), read with
``torch.load(..., weights_only=True)``: only tensors and plain containers, no pickled code.
"""
from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Dict

import torch

from . import __version__
from .errors import MamoError

FORMAT = "mamo_l2l-checkpoint-1"


def library_versions() -> Dict[str, str]:
    import numpy
    import pandas
    out = {"mamo_l2l": __version__, "torch": str(torch.__version__), "numpy": numpy.__version__,
           "pandas": pandas.__version__, "python": platform.python_version()}
    try:
        from importlib.metadata import version
        out["learn2learn"] = version("learn2learn")
        out["higher"] = version("higher")
    except Exception:  # metadata missing: versions are informative only
        pass
    return out


def save_checkpoint(path, payload: Dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus format tag and versions) to ``path``."""
    from .runfiles import os_error
    path = Path(path)
    payload = dict(payload, format=FORMAT, versions=library_versions())
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):   # a full disk, an unwritable folder: a clear error, no partial file
            raise os_error(e, path) from None
        raise
    return path


def load_checkpoint(path) -> Dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (safe loading only)."""
    path = Path(path)
    if not path.is_file():
        raise MamoError("checkpoint not found", path=str(path))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, another format, pickled code refused, ...
        raise MamoError(f"not a readable mamo_l2l checkpoint ({type(e).__name__}: {e})", path=str(path))
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MamoError(f"not a mamo_l2l checkpoint (expected format {FORMAT})", path=str(path))
    return payload
