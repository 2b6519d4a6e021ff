"""File-level helpers shared by the readers.

Checksums, the first-line check (file present, not empty, decodable, right separator) and a
``pandas.read_csv`` wrapper that turns parser failures into MamoError naming the file and line.
Line numbers are physical, 1-based lines of the file (the header is line 1).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.hashing import file_digest as sha256_file  # noqa: F401  (used by the readers)

# Separators a misformatted file is likely to use instead, in the words an error message uses.
_SEPARATOR_NAMES = (("::", "'::'"), ("\t", "tab"), (",", "comma"), (";", "semicolon"), ("|", "'|'"))


def separator_name(sep: str) -> str:
    """The separator in words ('tab', 'comma', ...)."""
    for s, name in _SEPARATOR_NAMES:
        if s == sep:
            return name
    return repr(sep)


def require_file(path: Path, expected: str) -> Path:
    """``path`` if it is a file, else MamoError saying what the file should have held."""
    if not path.is_file():
        raise MamoError(f"file not found; expected {expected}", path=str(path))
    return path


def first_line(path: Path, encoding: str, expected: str) -> Tuple[int, str]:
    """The first non-blank line of a file: (1-based line number, text without the line end).

    Raises MamoError when the file is empty (or only blank lines) or that line does not decode.
    """
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            stripped = raw.rstrip(b"\r\n")
            if not stripped.strip():
                continue
            try:
                text = stripped.decode(encoding)
            except UnicodeDecodeError as e:
                raise encoding_error(path, encoding, number, e) from None
            return number, text.lstrip("\ufeff")
    raise MamoError(f"file is empty; expected {expected}", path=str(path))


def check_separator(path: Path, line: int, text: str, sep: str, n_fields: Optional[int],
                    expected: str) -> None:
    """MamoError unless ``text`` splits on ``sep`` into ``n_fields`` parts (or >= 2 when None)."""
    parts = text.split(sep)
    ok = len(parts) >= 2 if n_fields is None else len(parts) == n_fields
    if ok:
        return
    want = "several" if n_fields is None else str(n_fields)
    msg = f"expected {want} fields separated by {separator_name(sep)} ({expected}), found {len(parts)}"
    guess = [name for s, name in _SEPARATOR_NAMES if s != sep and s in text and not (s == ":" and sep == "::")]
    if guess:
        msg += f"; the line looks {guess[0]}-separated"
    raise MamoError(msg, path=str(path), line=line)


def encoding_error(path: Path, encoding: str, line: int, err: Optional[UnicodeDecodeError] = None) -> MamoError:
    """The MamoError for bytes that do not decode as ``encoding`` on ``line``."""
    detail = ""
    if err is not None and err.start < len(err.object):
        detail = f" (byte {err.object[err.start]:#04x})"
    return MamoError(f"bytes that are not valid {encoding}{detail}; expected {encoding} text "
                     f"(re-save the file as {encoding})", path=str(path), line=line)


def first_undecodable_line(path: Path, encoding: str) -> Tuple[int, Optional[UnicodeDecodeError]]:
    """The 1-based number of the first line that does not decode (error path only: reads the file)."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as e:
                return number, e
    return 1, None


def read_table(path: Path, expected: str, *, sep: str, encoding: str, **kwargs) -> pd.DataFrame:
    """``pandas.read_csv`` with the C engine; parser failures become MamoError with the line.

    ``expected`` says in words what the file should hold; it ends up in the error messages.
    """
    try:
        return pd.read_csv(path, sep=sep, encoding=encoding, engine="c", **kwargs)
    except UnicodeDecodeError:
        line, err = first_undecodable_line(path, encoding)
        raise encoding_error(path, encoding, line, err) from None
    except pd.errors.EmptyDataError:
        raise MamoError(f"file is empty; expected {expected}", path=str(path)) from None
    except pd.errors.ParserError as e:
        text = str(e)
        m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
        if m:
            raise MamoError(f"expected {m.group(1)} fields separated by {separator_name(sep)}, found "
                            f"{m.group(3)} ({expected})", path=str(path), line=int(m.group(2))) from None
        m = re.search(r"line (\d+)", text)
        raise MamoError(f"cannot parse the file as {expected}: {text.strip()}", path=str(path),
                        line=int(m.group(1)) if m else None) from None


def line_of_row(path: Path, row: int, header_lines: int) -> int:
    """Physical 1-based line number of data row ``row`` (0-based), skipping blank lines as pandas
    does. Only called on error paths, so reading the file again is fine."""
    seen = -header_lines
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.rstrip(b"\r\n").strip():
                continue
            if seen == row:
                return number
            seen += 1
    return header_lines + row + 1


def numeric_column(values: pd.Series, path: Path, column: str, header_lines: int, expected: str,
                   allow_missing: bool = False) -> np.ndarray:
    """A column of numbers as float64 (NaN for missing cells when ``allow_missing``).

    MamoError, naming the line, at the first non-numeric value (or missing one, unless allowed).
    """
    if pd.api.types.is_numeric_dtype(values.dtype):
        out = values.to_numpy(dtype=np.float64)
        bad = np.zeros(len(out), dtype=bool) if allow_missing else np.isnan(out)
    else:
        out = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(out)
        if allow_missing:
            bad &= values.notna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raw = values.iloc[row]
        what = "a missing value" if pd.isna(raw) else f"{str(raw)!r}"
        raise MamoError(f"column '{column}' must be numeric ({expected}), found {what}",
                        path=str(path), line=line_of_row(path, row, header_lines))
    return out


def require_values(values: pd.Series, path: Path, column: str, header_lines: int) -> None:
    """MamoError at the first missing value of an id column."""
    missing = values.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise MamoError(f"column '{column}' is empty; every row needs a value",
                        path=str(path), line=line_of_row(path, row, header_lines))


def read_typed(path: Path, expected: str, labels: Sequence, numeric: Sequence, *, sep: str, encoding: str,
               **kwargs) -> pd.DataFrame:
    """``read_table`` with the columns ``numeric`` (a subset of ``labels``, the column labels
    pandas will see) as float64 when every cell parses: the fast path. When one does not, every
    column is read as str instead, so that ``numeric_column`` can name the offending line."""
    numeric = [c for c in labels if c in set(numeric)]
    if numeric:
        dtype = {c: ("float64" if c in numeric else str) for c in labels}
        try:
            return read_table(path, expected, sep=sep, encoding=encoding, dtype=dtype, **kwargs)
        except (ValueError, TypeError):   # MamoError is neither: it propagates
            pass
    return read_table(path, expected, sep=sep, encoding=encoding, dtype=str, **kwargs)


def check_field_counts(path: Path, sep: str, n_fields: int, expected: str) -> None:
    """MamoError at the first non-blank line that does not hold exactly ``n_fields`` fields
    separated by ``sep`` (pandas would fill a short line with missing values, silently).

    Fast path: one count of the separator over the file's bytes; the line-by-line scan runs only
    when the total differs (a bad line, or blank lines)."""
    data = path.read_bytes()
    s = sep.encode("latin-1")
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    if data.count(s) == (n_fields - 1) * lines:
        return
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        found = raw.count(s) + 1
        if found != n_fields:
            raise MamoError(f"expected {n_fields} fields separated by {separator_name(sep)}, found {found} "
                            f"({expected})", path=str(path), line=number)


def check_csv_field_counts(path: Path, sep: str, encoding: str, expected: str, escapechar: str = "\\") -> None:
    """``check_field_counts`` for quoted CSV (a separator inside quotes is text): every record
    must have as many fields as the header."""
    with open(path, "r", encoding=encoding, newline="") as f:
        reader = csv.reader(f, delimiter=sep, quotechar='"', escapechar=escapechar, doublequote=True)
        width = None
        for record in reader:
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if width is None:
                width = len(record)
            elif len(record) != width:
                raise MamoError(f"expected {width} fields separated by {separator_name(sep)} (as in the header), "
                                f"found {len(record)} ({expected})", path=str(path), line=reader.line_num)
