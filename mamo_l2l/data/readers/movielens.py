"""MovieLens in GroupLens's original layouts: ML-100K (``u.data``/``u.user``/``u.item``) and
ML-1M (``ratings.dat``/``users.dat``/``movies.dat``).

Fields (the same names as the atomic reader's MovieLens profile):
users ``gender``, ``age`` (ML-1M age code as str; ML-100K ages are bucketed into those codes),
``occupation`` (ML-100K: a word; ML-1M: the code '0'..'20'), ``zip`` (first 2 characters);
items ``release_year`` (str year) and ``genres`` (multi-valued), plus the float ``year`` column.
Ratings must lie in 1..5.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Tuple

import numpy as np
import pandas as pd

from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.readers._frames import (
    age_bucket,
    as_token_tuples,
    as_tokens,
    check_rating_range,
    entity_table,
    numeric_tokens,
    ratings_frame,
    require_ratings,
    title_series,
    to_float,
    year_token,
)
from mamo_l2l.data.readers._io import (
    check_field_counts,
    check_separator,
    first_line,
    line_of_row,
    numeric_column,
    read_table,
    read_typed,
    require_file,
    require_values,
    sha256_file,
)
from mamo_l2l.data.readers.atomic import MOVIELENS_RANGE, zip_prefix
from mamo_l2l.data.types import Field, RawDataset

# u.genre's order (used when the folder has no u.genre file)
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
                 "Thriller", "War", "Western")
USER_FIELDS = (Field("gender"), Field("age"), Field("occupation"), Field("zip"))
ITEM_FIELDS = (Field("release_year"), Field("genres", multi=True))
_TEXT = dict(quoting=csv.QUOTE_NONE, keep_default_na=False, na_values=[""])


def _checked(path: Path, expected: str, sep: str, n_fields: int, encoding: str = "latin-1") -> Path:
    """The file exists, is not empty, decodes, and its first line has ``n_fields`` fields."""
    require_file(path, expected)
    line, text = first_line(path, encoding, expected)
    check_separator(path, line, text, sep, n_fields, expected)
    check_field_counts(path, sep, n_fields, expected)   # every line, not only the first
    return path


def _ratings(frame: pd.DataFrame, path: Path, expected: str) -> Tuple[pd.DataFrame, int]:
    """Columns 0..3 = user, item, rating, timestamp (any labels) -> ratings frame, checked."""
    require_ratings(frame, path, expected)
    user, item, rating, stamp = (frame.iloc[:, k] for k in range(4))
    require_values(user, path, "user id", 0)
    require_values(item, path, "item id", 0)
    r = numeric_column(rating, path, "rating", 0, "a rating 1-5")
    check_rating_range(r, *MOVIELENS_RANGE, path, 0, "MovieLens")
    ts = numeric_column(stamp, path, "timestamp", 0, "a unix time", allow_missing=True)
    return ratings_frame(user, item, r, ts, path)


# ----------------------------------------------------------------------------- ML-100K
def read_ml100k_raw(folder) -> RawDataset:
    """MovieLens-100K as GroupLens ships it (u.data, u.user, u.item; u.genre optional)."""
    folder = Path(folder)
    data_path = _checked(folder / "u.data", "u.data: user id, item id, rating, timestamp, tab-separated",
                         "\t", 4)
    genres = _ml100k_genres(folder / "u.genre")
    user_path = _checked(folder / "u.user", "u.user: user id|age|gender|occupation|zip code", "|", 5)
    item_expected = f"u.item: movie id|title|release date|video release date|IMDb URL|{len(genres)} genre flags"
    item_path = _checked(folder / "u.item", item_expected, "|", 5 + len(genres))
    sources = {p.name: sha256_file(p) for p in (data_path, user_path, item_path, folder / "u.genre") if p.is_file()}

    frame = read_typed(data_path, "u.data", [0, 1, 2, 3], [2, 3], sep="\t", encoding="latin-1",
                       header=None, **_TEXT)
    ratings, dropped = _ratings(frame, data_path, "u.data")

    u = read_table(user_path, "u.user", sep="|", encoding="latin-1", header=None, dtype=str, **_TEXT)
    require_values(u[0], user_path, "user id", 0)
    users = entity_table(u[0], {"gender": as_tokens(u[2]), "age": age_bucket(to_float(u[1])),
                                "occupation": as_tokens(u[3]), "zip": zip_prefix(u[4])}, "user_id", user_path)

    i = read_table(item_path, item_expected, sep="|", encoding="latin-1", header=None, dtype=str, **_TEXT)
    require_values(i[0], item_path, "movie id", 0)
    year = to_float(i[2].astype("string").str.extract(r"(\d{4})\s*$", expand=False))
    flags = i.iloc[:, 5:5 + len(genres)].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy() > 0
    names = np.asarray(genres, dtype=object)
    genre_cells = pd.Series([tuple(names[row]) for row in flags], index=i.index, dtype=object)
    items = entity_table(i[0], {"release_year": year_token(year), "genres": genre_cells, "year": year},
                         "item_id", item_path)
    return RawDataset(name="ml-100k", ratings=ratings, users=users, items=items, user_fields=USER_FIELDS,
                      item_fields=ITEM_FIELDS, rating_range=MOVIELENS_RANGE, source_files=sources,
                      duplicates_dropped=dropped, format="ml-100k-raw", item_titles=title_series(i[0], i[1]))


def _ml100k_genres(path: Path) -> Tuple[str, ...]:
    """Genre names in flag order, from u.genre (`name|index` lines) when present."""
    if not path.is_file():
        return ML100K_GENRES
    g = read_table(path, "u.genre: genre|index", sep="|", encoding="latin-1", header=None, dtype=str, **_TEXT)
    if g.shape[1] < 2:
        raise MamoError("expected lines 'genre|index'", path=str(path), line=1)
    index = numeric_column(g[1], path, "index", 0, "the genre's flag position")
    return tuple(g[0].to_numpy(dtype=object)[np.argsort(index, kind="stable")])


# ----------------------------------------------------------------------------- ML-1M
def read_ml1m_raw(folder) -> RawDataset:
    """MovieLens-1M as GroupLens ships it (ratings.dat, users.dat, movies.dat; '::'-separated)."""
    folder = Path(folder)
    rating_path = _checked(folder / "ratings.dat", "ratings.dat: UserID::MovieID::Rating::Timestamp", "::", 4)
    user_path = _checked(folder / "users.dat", "users.dat: UserID::Gender::Age::Occupation::Zip-code", "::", 5)
    movie_path = _checked(folder / "movies.dat", "movies.dat: MovieID::Title (Year)::Genre|Genre", "::", 3)
    sources = {p.name: sha256_file(p) for p in (rating_path, user_path, movie_path)}

    frame = _read_double_colon(rating_path, 4, (2, 3), "ratings.dat: UserID::MovieID::Rating::Timestamp")
    ratings, dropped = _ratings(frame, rating_path, "ratings.dat")

    u = _read_double_colon(user_path, 5, (), "users.dat: UserID::Gender::Age::Occupation::Zip-code")
    require_values(u[0], user_path, "UserID", 0)
    users = entity_table(u[0], {"gender": as_tokens(u[1]), "age": age_bucket(to_float(u[2])),
                                "occupation": numeric_tokens(u[3]), "zip": zip_prefix(u[4])}, "user_id", user_path)

    m = _split_lines(movie_path, "::", 3, "movies.dat: MovieID::Title (Year)::Genre|Genre")
    year = to_float(m[1].str.extract(r"\((\d{4})\)\s*$", expand=False))
    items = entity_table(m[0], {"release_year": year_token(year), "genres": as_token_tuples(m[2], "|"),
                                "year": year}, "item_id", movie_path)
    return RawDataset(name="ml-1m", ratings=ratings, users=users, items=items, user_fields=USER_FIELDS,
                      item_fields=ITEM_FIELDS, rating_range=MOVIELENS_RANGE, source_files=sources,
                      duplicates_dropped=dropped, format="ml-1m-raw", item_titles=title_series(m[0], m[1]))


def _read_double_colon(path: Path, n_fields: int, numeric: Tuple[int, ...], expected: str) -> pd.DataFrame:
    """A '::'-separated file whose fields never contain ':' (ratings.dat, users.dat), read by the
    C parser; columns 0..n_fields-1, the ``numeric`` ones float64 when they all parse.

    The C parser takes one-character separators only, so the file is split on ':' and field k
    is column 2k ('a::b' -> 'a', '', 'b'); any text in an odd column, or beyond, means a line
    that is not n_fields fields joined by '::'.
    """
    width = 2 * n_fields - 1
    # the odd columns are read as numbers too: empty cells parse as NaN on the fast path
    fast = [2 * k for k in numeric] + list(range(1, width, 2))
    try:
        frame = read_typed(path, expected, list(range(width)), fast, sep=":", encoding="latin-1", header=None,
                           **_TEXT)
    except MamoError as e:   # the parser counted ':'-fields; say it in the file's own terms
        if e.line is None or "fields separated by" not in e.reason:
            raise
        raise MamoError(f"expected {n_fields} fields separated by '::' ({expected})", path=str(path),
                        line=e.line) from None
    stray = [c for c in frame.columns if c % 2 == 1 or c >= width]
    off = frame[stray].notna().any(axis=1).to_numpy() if stray else np.zeros(len(frame), dtype=bool)
    if len(frame.columns) < width:
        off |= True
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise MamoError(f"expected {n_fields} fields separated by '::' ({expected})", path=str(path),
                        line=line_of_row(path, row, 0))
    out = frame[[2 * k for k in range(n_fields)]]
    out.columns = range(n_fields)
    return out


def _split_lines(path: Path, sep: str, n_fields: int, expected: str) -> pd.DataFrame:
    """A latin-1 file whose fields may contain single characters of ``sep`` (titles with ':'),
    split on the whole separator, at most ``n_fields`` parts; columns 0..n_fields-1 (str)."""
    # split on '\n' only: str.splitlines would also break on latin-1's NEL (byte 0x85)
    lines = pd.Series(path.read_bytes().decode("latin-1").split("\n"), dtype="string").str.rstrip("\r")
    numbers = np.arange(1, len(lines) + 1)
    keep = (lines.str.strip() != "").to_numpy()
    parts = lines[keep].str.split(sep, n=n_fields - 1, expand=True)
    for k in range(n_fields):
        if k not in parts.columns:
            parts[k] = pd.NA
    bad = parts[list(range(n_fields))].isna().any(axis=1).to_numpy()
    if bad.any():
        line = int(numbers[keep][np.flatnonzero(bad)[0]])
        raise MamoError(f"expected {n_fields} fields separated by '{sep}' ({expected})", path=str(path), line=line)
    return parts.reset_index(drop=True)
