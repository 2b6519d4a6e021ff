"""Stopping a training run cleanly (docs/operations.md, "Faults and signals").

* ``graceful_stop()``: while it is active, SIGINT/SIGTERM only *ask* training to stop. ``fit``
  finishes the current epoch (validation included), writes ``last.pt`` and raises
  ``TrainingInterrupted``; the CLI prints how to resume and exits 130 (SIGINT) or 143 (SIGTERM).
  Finishing the epoch, rather than the meta-batch, keeps the checkpoint exact: ``--resume`` then
  ends bit-identical to an uninterrupted run. A second signal stops at once (the previous
  epoch's ``last.pt`` stays intact: checkpoints are written atomically).
* ``check_finite``: a loss or gradient that is NaN or infinite stops training with a MamoError
  naming the epoch and the meta-batch, before the optimiser step (so no bad value is saved).
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
from typing import Iterable, Optional

import torch

from mamo_l2l.core.errors import MamoError

_requested: Optional[int] = None   # the signal number asked for, while graceful_stop is active


class TrainingInterrupted(Exception):
    """Training stopped on a signal after writing last.pt at the end of ``epoch``."""

    def __init__(self, signum: int, epoch: int, out_dir=None):
        self.signum, self.epoch, self.out_dir = signum, epoch, out_dir
        super().__init__(f"interrupted by {signal.Signals(signum).name} after epoch {epoch}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def stop_requested() -> Optional[int]:
    """The signal number that asked training to stop, or None."""
    return _requested


@contextlib.contextmanager
def graceful_stop(notice=None):
    """SIGINT/SIGTERM set a flag (read by ``fit`` after each epoch) instead of killing the
    process; a second signal restores the default behaviour and re-delivers itself.
    Only in the main thread (elsewhere this does nothing)."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        global _requested
        if _requested is not None:   # the second signal: stop now
            for s, h in previous.items():
                signal.signal(s, h)
            signal.raise_signal(signum)
            return
        _requested = signum
        if notice is not None:
            notice(signum)

    _requested = None
    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _requested = None


def check_finite(loss: torch.Tensor, params: Iterable[torch.nn.Parameter], epoch: int, batch: int,
                 config, unit: str = "meta-batch") -> None:
    """MamoError when the loss or a gradient is NaN/inf (call after backward, before the step)."""
    value = float(loss.detach())
    what = None
    if not math.isfinite(value):
        what = f"the loss became {value}"
    else:
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
            if not math.isfinite(norm):
                what = f"a gradient became {norm} (loss {value:.4g})"
    if what is None:
        return
    t = config.train
    raise MamoError(f"training diverged at epoch {epoch}, {unit} {batch}: {what}; last.pt still holds the "
                    f"last good epoch ({epoch - 1}). Try a lower train.outer_lr (now {t.outer_lr:g}) or "
                    f"train.local_lr (now {t.local_lr:g}), fewer train.local_steps (now {t.local_steps}), or "
                    f"clip the local steps with train.local_clip (now {t.local_clip:g}; docs/algorithm.md)")
