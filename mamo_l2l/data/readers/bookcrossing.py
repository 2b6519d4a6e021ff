"""Book-Crossing (BX-CSV-Dump): ``BX-Book-Ratings.csv``, ``BX-Users.csv``, ``BX-Books.csv``.

';'-separated, every field double-quoted, latin-1, backslash escapes, NULL for missing; parsed
as docs/data-formats.md says (pandas C parser, ``escapechar='\\\\'``, ``na_values=['NULL']``).
Only explicit ratings (1-10) are kept; 0 means an implicit interaction and is dropped.

Fields: users ``age`` (bucketed into ML-1M age codes; ages outside 5..100 or missing -> None),
``country`` (last comma-separated part of Location, stripped, lower-cased; empty -> None);
items ``author``, ``pub_year`` (str year; 0 or > 2025 -> None) and ``publisher``. The items'
float column ``year`` (NaN unknown) holds the same year for the protocol.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.readers._frames import (
    age_bucket,
    as_tokens,
    check_rating_range,
    entity_table,
    ratings_frame,
    require_ratings,
    title_series,
    to_float,
    year_token,
)
from mamo_l2l.data.readers._io import (
    check_csv_field_counts,
    check_separator,
    first_line,
    numeric_column,
    read_typed,
    require_file,
    require_values,
    sha256_file,
)
from mamo_l2l.data.types import Field, RawDataset

RATING_RANGE = (1.0, 10.0)
AGE_RANGE = (5.0, 100.0)
LAST_YEAR = 2025
USER_FIELDS = (Field("age"), Field("country"))
ITEM_FIELDS = (Field("author"), Field("pub_year"), Field("publisher"))
FILES = {
    "BX-Book-Ratings.csv": ("User-ID", "ISBN", "Book-Rating"),
    "BX-Users.csv": ("User-ID", "Location", "Age"),
    "BX-Books.csv": ("ISBN", "Book-Title", "Book-Author", "Year-Of-Publication", "Publisher"),
}
_CSV = dict(header=0, escapechar="\\", keep_default_na=False, na_values=["NULL", ""])


def _read(folder: Path, name: str, numeric: Sequence[str] = ()) -> pd.DataFrame:
    """One BX file, only the columns it must have (str, missing = NaN; ``numeric`` ones float64
    when every cell parses), after checking the header names them."""
    path = folder / name
    columns = FILES[name]
    expected = f"{name}: ';'-separated, double-quoted, latin-1, with columns " + ";".join(f'"{c}"' for c in columns)
    require_file(path, expected)
    line, header = first_line(path, "latin-1", expected)
    check_separator(path, line, header, ";", None, expected)
    present = [cell.strip().strip('"') for cell in header.split(";")]
    missing = [c for c in columns if c not in present]
    if missing:
        raise MamoError(f"missing column(s) {', '.join(missing)}; expected {expected}", path=str(path), line=line)
    check_csv_field_counts(path, ";", "latin-1", expected)   # usecols would hide extra or missing fields
    # reading only the needed columns skips BX-Books' three image URLs (half its bytes)
    return read_typed(path, expected, list(columns), numeric, sep=";", encoding="latin-1", usecols=list(columns),
                      **_CSV)


def read_book_crossing(folder) -> RawDataset:
    """Read the three BX CSVs in ``folder`` (explicit ratings only)."""
    folder = Path(folder)
    r = _read(folder, "BX-Book-Ratings.csv", numeric=("Book-Rating",))
    u = _read(folder, "BX-Users.csv")
    b = _read(folder, "BX-Books.csv")
    sources = {name: sha256_file(folder / name) for name in FILES}

    path = folder / "BX-Book-Ratings.csv"
    require_ratings(r, path, "rows User-ID;ISBN;Book-Rating")
    require_values(r["User-ID"], path, "User-ID", 1)
    require_values(r["ISBN"], path, "ISBN", 1)
    rating = numeric_column(r["Book-Rating"], path, "Book-Rating", 1, "0 (implicit) or 1-10")
    check_rating_range(rating, 0.0, RATING_RANGE[1], path, 1, "Book-Crossing")   # 0 is allowed: implicit
    explicit = rating > 0
    ratings, dropped = ratings_frame(r["User-ID"][explicit], r["ISBN"][explicit], rating[explicit], None, path)

    require_values(u["User-ID"], folder / "BX-Users.csv", "User-ID", 1)
    users = entity_table(u["User-ID"], {"age": age_bucket(to_float(u["Age"]), *AGE_RANGE),
                                        "country": country(u["Location"])}, "user_id", folder / "BX-Users.csv")

    require_values(b["ISBN"], folder / "BX-Books.csv", "ISBN", 1)
    year = to_float(b["Year-Of-Publication"])
    year = year.where((year > 0) & (year <= LAST_YEAR))
    items = entity_table(b["ISBN"], {"author": as_tokens(b["Book-Author"]), "pub_year": year_token(year),
                                     "publisher": as_tokens(b["Publisher"]), "year": year},
                         "item_id", folder / "BX-Books.csv")
    return RawDataset(name="book-crossing", ratings=ratings, users=users, items=items, user_fields=USER_FIELDS,
                      item_fields=ITEM_FIELDS, rating_range=RATING_RANGE, source_files=sources,
                      duplicates_dropped=dropped, format="book-crossing",
                      item_titles=title_series(b["ISBN"], b["Book-Title"]) if "Book-Title" in b.columns else None)


def country(location: pd.Series) -> pd.Series:
    """'nyc, new york, usa' -> 'usa': last comma-separated part, stripped, lower-cased; empty -> None."""
    cells = [(x[x.rfind(",") + 1:].strip().lower() or None) if isinstance(x, str) else None
             for x in location.to_numpy(dtype=object)]
    return pd.Series(cells, index=location.index, dtype=object)
