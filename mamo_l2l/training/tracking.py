"""Run tracking (docs/operations.md, "Run tracking"): the per-epoch curves of a run.

* ``history.csv`` in every run folder, rewritten (atomically) after each epoch: one row per
  epoch with the epoch, the training loss, the validation metrics, the memory diagnostics (MAMO
  and its ablations: attention entropy, smallest slot distances, top-slot counts, start spreads,
  re-seeded slots) and the epoch's time. Needs nothing beyond the package. A resumed run's file
  holds every epoch (the history travels in last.pt).
* TensorBoard event files in ``train.log_dir`` (`train --tensorboard DIR`): the same figures as
  scalars, one step per epoch, through ``torch.utils.tensorboard``, which needs the optional
  ``tensorboard`` package (the ``tensorboard`` extra); a clear MamoError when it is missing.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from mamo_l2l.core.errors import MamoError
from mamo_l2l.training.runfiles import write_text_atomic

HISTORY = "history.csv"
#: the first columns of history.csv, in this order; the others follow in the order they first appear
FIRST_COLUMNS = ("epoch", "train_loss", "valid_mae", "valid_rmse", "valid_ndcg@3", "valid_masked_mae",
                 "valid_masked_ndcg@3")
LAST_COLUMNS = ("seconds", "tasks_per_s")
TENSORBOARD_MISSING = ("train.log_dir / --tensorboard writes TensorBoard event files through "
                       "torch.utils.tensorboard, which needs the tensorboard package: pip install tensorboard "
                       "(or pip install 'mamo_l2l[tensorboard]'); history.csv in the run folder needs nothing")


def flat_record(record: Dict[str, Any]) -> Dict[str, float]:
    """An epoch record of the run history as {column: number}: nested dicts joined with ``.``
    (``memory.slot_distance_min_ratio.profile``), lists by index (``memory.top_slot_counts.0``);
    None and non-numbers left out."""
    out: Dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (list, tuple)):
            for k, v in enumerate(value):
                walk(f"{prefix}.{k}", v)
        elif isinstance(value, bool):
            out[prefix] = float(value)
        elif isinstance(value, (int, float)):
            out[prefix] = value

    walk("", record)
    return out


def history_columns(rows: Sequence[Dict[str, float]]) -> List[str]:
    seen: Dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    first = [c for c in FIRST_COLUMNS if c in seen]
    last = [c for c in LAST_COLUMNS if c in seen]
    return first + [c for c in seen if c not in first and c not in last] + last


def write_history(history: Sequence[Dict[str, Any]], folder) -> Path:
    """``folder/history.csv``: one row per epoch record (``flat_record``), empty cells where an
    epoch has no value (e.g. no validation that epoch)."""
    rows = [flat_record(r) for r in history]
    columns = history_columns(rows) or ["epoch", "train_loss", *LAST_COLUMNS]   # no epochs: the header only
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if c not in row or (isinstance(row[c], float) and math.isnan(row[c])) else row[c])
                         for c in columns})
    return write_text_atomic(Path(folder) / HISTORY, buffer.getvalue())


def tag_of(column: str) -> str:
    """TensorBoard tag of a history column: train/loss, valid/mae, memory/..., time/seconds."""
    if column == "train_loss":
        return "train/loss"
    if column.startswith("valid_"):
        return "valid/" + column[len("valid_"):]
    if column in LAST_COLUMNS:
        return "time/" + column
    return column.replace(".", "/")


def require_tensorboard() -> None:
    """MamoError ``TENSORBOARD_MISSING`` when torch.utils.tensorboard cannot be imported (checked
    before any data is read when ``train.log_dir`` is set)."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (optional dependency)
    except ImportError:
        raise MamoError(TENSORBOARD_MISSING) from None


class TensorBoardLog:
    """TensorBoard event files in ``log_dir``: ``add(record)`` writes one epoch record's figures at
    step = its epoch. ``close()`` flushes."""

    def __init__(self, log_dir):
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional dependency
        except ImportError:
            raise MamoError(TENSORBOARD_MISSING) from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def add(self, record: Dict[str, Any]) -> None:
        row = flat_record(record)
        step = int(row.get("epoch", 0))
        for column, value in row.items():
            if column != "epoch" and not (isinstance(value, float) and math.isnan(value)):
                self.writer.add_scalar(tag_of(column), value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_tensorboard(log_dir: Optional[str]) -> Optional[TensorBoardLog]:
    """A TensorBoardLog for ``train.log_dir``, or None when it is not set."""
    return None if not log_dir else TensorBoardLog(log_dir)
