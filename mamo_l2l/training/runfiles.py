"""A run folder (docs/operations.md): the names of its files, writing them safely (one writer
per folder, whole files only) and reading them back.

* ``config.yaml`` (the config used), ``metrics.json`` + ``results.txt`` (the evaluation),
  ``best.pt`` (the selected model), ``last.pt`` (for ``--resume``; checkpoint.py) and
  ``history.csv`` (one row per epoch; tracking.py).

* ``write_text_atomic``: a temporary file in the same folder, fsync, then ``os.replace``; a full
  disk or an unwritable folder gives a MamoError naming the file and leaves no partial file.
* ``RunLock``: an exclusive lock on ``<folder>/.lock`` (``fcntl.flock``; where there is no fcntl,
  a file created with O_EXCL holding the owner's pid, taken over when that process is gone),
  released when the process exits or the ``with`` block ends. A second process writing to the
  same folder gets a MamoError instead of interleaved files. Re-entrant within one process.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Dict, Optional, Union

import yaml

from mamo_l2l.core.errors import MamoError
from mamo_l2l.evaluation.scoring import results_table

LOCK_NAME = ".lock"
CONFIG, METRICS, RESULTS, BEST, LAST = "config.yaml", "metrics.json", "results.txt", "best.pt", "last.pt"


def os_error(e: OSError, path, doing: str = "cannot write") -> MamoError:
    """A MamoError for an OSError while writing ``path``, in plain words."""
    reason = e.strerror or str(e)
    if e.errno == errno.ENOSPC:
        reason = "no space left on the device"
    elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        reason = f"{reason} (the output location is not writable; choose another --out)"
    return MamoError(f"{doing} the file: {reason}", path=str(path))


def write_bytes_atomic(path, data: bytes) -> Path:
    path = Path(path)
    tmp: Optional[str] = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise os_error(e, path) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; MamoError (no partial file) on failure."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_config(folder, config) -> Path:
    """``config.yaml``: the run's whole config (what ``--resume`` falls back on)."""
    return write_text_atomic(Path(folder) / CONFIG, yaml.safe_dump(config.to_dict(), sort_keys=False))


def write_metrics(metrics: Dict, folder) -> Path:
    """``metrics.json`` and ``results.txt`` (the results table), each written atomically."""

    folder = Path(folder)
    path = write_text_atomic(folder / METRICS, json.dumps(metrics, indent=2, sort_keys=False) + "\n")
    write_text_atomic(folder / RESULTS, results_table(metrics) + "\n")
    return path


def read_metrics(folder) -> Optional[Dict]:
    """The folder's ``metrics.json``, or None when it is missing or unreadable."""
    path = Path(folder) / METRICS
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError):
        return None


def read_config(folder) -> Optional[Dict]:
    """The config of the run in ``folder``: its ``config.yaml``, else the config its
    ``metrics.json`` records; None when the folder holds no run (or neither file is readable)."""
    path = Path(folder) / CONFIG
    try:
        recorded = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        recorded = None
    if isinstance(recorded, dict):
        return recorded
    metrics = read_metrics(folder)
    return metrics.get("config") if isinstance(metrics, dict) and isinstance(metrics.get("config"), dict) else None


try:
    import fcntl
except ImportError:  # pragma: no cover -- Windows
    fcntl = None

_HELD: Dict[str, list] = {}   # resolved lock path -> [file object or None, depth]


class RunLock:
    """``with RunLock(folder):`` -- exclusive use of a run folder by this process."""

    def __init__(self, folder: Union[str, Path]):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.key = ""

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise os_error(e, self.folder, "cannot create the run folder for") from None
        self.key = str(self.path.resolve())
        held = _HELD.get(self.key)
        if held is not None:
            held[1] += 1
            return
        handle = self._lock_fcntl() if fcntl is not None else self._lock_exclusive_file()
        _HELD[self.key] = [handle, 1]

    def release(self) -> None:
        held = _HELD.get(self.key)
        if held is None:
            return
        held[1] -= 1
        if held[1] > 0:
            return
        del _HELD[self.key]
        handle = held[0]
        try:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
                handle.close()
            else:  # pragma: no cover
                os.unlink(self.path)
        except OSError:
            pass

    def _busy(self, owner: str) -> MamoError:
        who = f" (pid {owner})" if owner else ""
        return MamoError(f"another mamo-l2l process{who} is writing to this run folder; wait for it to end "
                         "or choose another --out", path=str(self.folder))

    def _lock_fcntl(self):
        try:
            handle = open(self.path, "a+")
        except OSError as e:
            raise os_error(e, self.path, "cannot create the lock") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip()
            handle.close()
            raise self._busy(owner) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def _lock_exclusive_file(self):  # pragma: no cover -- the portable fallback
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self.path.read_text().strip()
                if owner.isdigit() and not _alive(int(owner)):
                    os.unlink(self.path)   # a stale lock of a process that is gone
                    continue
                raise self._busy(owner) from None
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return None
        raise self._busy("")


def _alive(pid: int) -> bool:  # pragma: no cover
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True
