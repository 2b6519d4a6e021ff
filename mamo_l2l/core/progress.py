"""What a run tells its user, and where (docs/operations.md, "Output").

* The library logs through the logger ``"mamo_l2l"`` and prints nothing itself. Called from
  Python it is quiet (a NullHandler) unless the program configures logging, or passes
  ``progress=True`` (which adds a stderr handler when logging is not configured).
* Progress bars (tqdm) are drawn only when stderr is a terminal; otherwise (a file, a pipe, CI,
  ``nohup``) a plain line is logged at most every ``PLAIN_EVERY`` seconds.
* The CLI sends the story of a run (data counts, epochs, resume notes, warnings) to stderr and
  results (tables, saved paths, JSON) to stdout; ``--quiet`` keeps warnings only, ``--verbose``
  adds debug lines.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Optional

from tqdm import tqdm

log = logging.getLogger("mamo_l2l")
log.addHandler(logging.NullHandler())
#: the inside of one run (data counts, epoch lines); `compare --quiet` silences only this child
run_log = logging.getLogger("mamo_l2l.run")
PLAIN_EVERY = 10.0
_CONSOLE_MARK = "_mamo_l2l_console"


class _Stderr(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a line is logged."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def remove_console_logging() -> None:
    for h in list(log.handlers):
        if getattr(h, _CONSOLE_MARK, False):
            log.removeHandler(h)
    log.setLevel(logging.NOTSET)
    log.propagate = True


def console_logging(level: int = logging.INFO) -> None:
    """Send the library's log lines to stderr (what the CLI and ``progress=True`` use)."""
    remove_console_logging()
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    setattr(handler, _CONSOLE_MARK, True)
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False


def ensure_visible() -> None:
    """For ``progress=True`` from Python: show INFO lines on stderr unless logging is configured."""
    configured = any(not isinstance(h, logging.NullHandler) for h in log.handlers) or logging.getLogger().handlers
    if not configured:
        console_logging(logging.INFO)


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """tqdm's update/set_postfix/close, as a log line at most every ``every`` seconds."""

    def __init__(self, total: int, desc: str, unit: str, every: float = PLAIN_EVERY):
        self.total, self.desc, self.unit, self.every = total, desc, unit, every
        self.n, self.postfix = 0, ""
        self.started = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.every and self.n < self.total:
            self.last = now
            rate = self.n / max(now - self.started, 1e-9)
            log.info("%s: %d/%d %ss (%.0f/s)%s", self.desc, self.n, self.total, self.unit, rate,
                     f"  {self.postfix}" if self.postfix else "")

    def set_postfix(self, **kwargs) -> None:
        self.postfix = " ".join(f"{k} {v}" for k, v in kwargs.items())

    def close(self) -> None:
        pass


def bar(total: int, desc: str, enabled: bool, unit: str = "task") -> Optional[object]:
    """A progress bar on a terminal, plain periodic log lines elsewhere, None when disabled."""
    if not enabled:
        return None
    if stderr_is_terminal():
        return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
    return PlainProgress(total, desc, unit)
