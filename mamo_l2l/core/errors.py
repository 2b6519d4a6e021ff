"""The one error type a user can cause (bad file, bad config, unknown data set, ...)."""
from __future__ import annotations

from typing import Optional


class MamoError(Exception):
    """A problem with the user's input. The CLI prints it without a traceback and exits 1.

    The message names the file (and line, where there is one) and says what was expected.
    """

    def __init__(self, message: str, path: Optional[str] = None, line: Optional[int] = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}, line {line}"
            where += ": "
        super().__init__(where + message)
        self.reason = message
