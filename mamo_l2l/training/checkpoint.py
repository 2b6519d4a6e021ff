"""Checkpoints: parameters, memories (buffers), optimiser state, encoders, full config, data
fingerprint and library versions, in one file; a run's two checkpoints (``best.pt``, the model,
and ``last.pt``, for ``--resume``) are written and restored here. Whether a checkpoint belongs
to a run is decided in runid.py.

Written atomically (temporary file in the same folder, then ``os.replace``), read with
``torch.load(..., weights_only=True)``: only tensors and plain containers, no pickled code.
"""
from __future__ import annotations

import io
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Dict, Optional

import numpy
import pandas
import torch

from mamo_l2l.algorithms import loaded_plugins
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.version import __version__
from mamo_l2l.recommend.catalog import catalog_payload
from mamo_l2l.training.runfiles import write_bytes_atomic
from mamo_l2l.training.runid import RESUME_MAY_CHANGE, code_identity, why_differs

FORMAT = "mamo_l2l-checkpoint-1"


def library_versions() -> Dict[str, str]:
    out = {"mamo_l2l": __version__, "torch": str(torch.__version__), "numpy": numpy.__version__,
           "pandas": pandas.__version__, "python": platform.python_version()}
    for name in ("learn2learn", "higher"):   # optional backends: recorded when installed
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def save_checkpoint(path, payload: Dict[str, Any]) -> Path:
    """Atomically write ``payload`` (plus format tag and versions) to ``path``
    (``runfiles.write_bytes_atomic``: a clear MamoError and no partial file on failure)."""
    buffer = io.BytesIO()
    torch.save(dict(payload, format=FORMAT, versions=library_versions()), buffer)
    return write_bytes_atomic(path, buffer.getvalue())


def checkpoint_file(path) -> Path:
    """``path`` itself, or for a run folder its ``best.pt``; MamoError when there is none."""
    path = Path(path)
    if path.is_dir():
        if not (path / "best.pt").is_file():
            raise MamoError("this run folder has no best.pt (is the run finished? `mamo-l2l train --out "
                            f"{path} --resume` finishes an interrupted one)", path=str(path))
        return path / "best.pt"
    if not path.is_file():
        raise MamoError("checkpoint not found (give a run's best.pt or its folder)", path=str(path))
    return path


def _unreadable(e: Exception) -> str:
    """One plain line for a file torch cannot load safely (torch's own text spans many lines)."""
    if "weights_only" in str(e) or "Unpickl" in type(e).__name__:
        return ("not a readable mamo_l2l checkpoint: it holds Python objects other than tensors and plain "
                "containers, which are never loaded (only files written by mamo-l2l are read)")
    return "not a readable mamo_l2l checkpoint: not a torch file, or a truncated one"


def load_checkpoint(path) -> Dict[str, Any]:
    """Read a checkpoint written by ``save_checkpoint`` (safe loading only); a run folder stands
    for its ``best.pt``."""
    path = checkpoint_file(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, another format, pickled code refused, ...
        raise MamoError(_unreadable(e), path=str(path)) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise MamoError(f"not a mamo_l2l checkpoint (expected format {FORMAT})", path=str(path))
    return payload


def _run_identity(run) -> Dict[str, Any]:
    return {"model_name": run.model_name, "config": run.config.to_dict(),
            "data_fingerprint": run.bundle.data.fingerprint, "plugins": loaded_plugins(run.model_name),
            **code_identity(run.model_name)}


def save_model(run, path) -> Path:
    """The final checkpoint (what `mamo-l2l evaluate` reads), with the item catalogue that
    `mamo-l2l recommend` / `serve` need without the data set (docs/serving.md)."""
    return save_checkpoint(path, dict(_run_identity(run), kind="model", state_dict=run.model.state_dict(),
                                      encoders=run.bundle.encoders.to_dict(), best_epoch=run.best_epoch,
                                      history=run.history, rating_range=list(run.bundle.data.rating_range),
                                      catalog=catalog_payload(run.bundle),
                                      ranking=None if run.ranking is None else run.ranking.to_payload(),
                                      ranking_notes=run.ranking_notes))


def save_resume(run, path, optimizer, state: Dict[str, Any]) -> Path:
    """``last.pt``: the model, the optimiser and the trainer's state after an epoch."""
    return save_checkpoint(path, dict(_run_identity(run), kind="resume", state_dict=run.model.state_dict(),
                                      optimizer=optimizer.state_dict(), state=state))


def restore_resume(run, path, optimizer) -> Optional[Dict[str, Any]]:
    """Load ``last.pt`` into the run's model and ``optimizer`` and return the trainer's state;
    None when there is no such file. MamoError unless it is this very run (model, data,
    result-affecting config and code; runid.py), since the rest of the run would otherwise not
    be what an uninterrupted run gives."""
    path = Path(path)
    if not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    why = why_differs(ckpt, run.config.to_dict(), run.model_name, run.bundle.data.fingerprint, RESUME_MAY_CHANGE)
    if why is not None:
        raise MamoError(f"cannot resume: {why}; start the run afresh in a new --out (or delete {path})",
                        path=str(path))
    run.model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    return dict(ckpt["state"])
