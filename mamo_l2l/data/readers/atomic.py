"""RecBole atomic files: ``<name>.inter`` (+ optional ``<name>.user``, ``<name>.item``).

UTF-8, tab-separated, one header line of ``field:type`` cells (token, token_seq, float,
float_seq). Ids are the fields ``user_id`` and ``item_id``; ratings come from ``rating``.

Generic rule for features: ``token`` fields -> single-valued fields, ``token_seq`` ->
multi-valued (space-separated), leaving out the id field and free text (a field whose name
contains "title" or "name"); float fields are not features. An item field ``release_year`` (or
else ``year``) also gives the float ``year`` column; a token field named ``year`` becomes the
feature ``year_token`` so it does not clash with that column.

MovieLens profile (data sets named ml-100k / ml-1m, or format ``ml-1m-atomic``): users get
``gender``, ``age`` (bucketed into ML-1M age codes), ``occupation`` (numeric codes as '0'..'20'),
``zip`` (first 2 characters of ``zip_code``); items get ``release_year`` (str year) and
``genres`` (multi-valued, from ``class``/``genre``/``genres``); ratings must lie in 1..5.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

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
    numeric_column,
    read_typed,
    require_file,
    require_values,
    sha256_file,
)
from mamo_l2l.data.types import Field, RawDataset

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
MOVIELENS_STEMS = ("ml-100k", "ml-1m")
MOVIELENS_RANGE = (1.0, 5.0)
_GENRE_FIELDS = ("class", "genre", "genres")
_EXPECTED = {
    "inter": "a RecBole .inter file: tab-separated, UTF-8, header cells field:type with user_id, item_id, rating",
    "user": "a RecBole .user file: tab-separated, UTF-8, header cells field:type with user_id",
    "item": "a RecBole .item file: tab-separated, UTF-8, header cells field:type with item_id",
}


@dataclass
class AtomicTable:
    """One atomic file: field -> type in header order, and the rows (columns named by field)."""
    path: Path
    types: Dict[str, str]
    frame: pd.DataFrame


def read_atomic_table(path: Path, kind: str, required: Sequence[str],
                      numeric: Sequence[str] = ()) -> AtomicTable:
    """Read one atomic file, checking the header. Fields in ``numeric`` are read as float64
    when they parse (the fast path); otherwise every column is str with missing = NaN."""
    expected = _EXPECTED[kind]
    require_file(path, expected)
    line, header = first_line(path, "utf-8", expected)
    if "\t" not in header and (len(required) >= 2 or any(s in header for s in (",", ";", "|"))):
        check_separator(path, line, header, "\t", None, expected)   # raises: names the separator seen
    types: Dict[str, str] = {}
    for cell in header.split("\t"):
        field, _, typ = cell.strip().rpartition(":")
        if not field or typ not in ATOMIC_TYPES:
            raise MamoError(f"header cell {cell!r} is not field:type with type one of {', '.join(ATOMIC_TYPES)} "
                            f"({expected})", path=str(path), line=line)
        if field in types:
            raise MamoError(f"field {field!r} appears twice in the header ({expected})", path=str(path), line=line)
        types[field] = typ
    missing = [f for f in required if f not in types]
    if missing:
        raise MamoError(f"missing field(s) {', '.join(missing)}; the header has {', '.join(types)} "
                        f"({expected})", path=str(path), line=line)
    cells = header.split("\t")
    check_field_counts(path, "\t", len(cells), expected)   # a short line would read as missing values
    common = dict(header=0, quoting=csv.QUOTE_NONE, keep_default_na=False, na_values=[""],
                  skiprows=line - 1)
    frame = read_typed(path, expected, cells, [c for c, f in zip(cells, types) if f in numeric],
                       sep="\t", encoding="utf-8", **common)
    frame.columns = list(types)
    return AtomicTable(path, types, frame)


def find_inter(folder: Path, name: Optional[str] = None) -> Path:
    """The folder's ``<name>.inter`` (the only one when ``name`` is None)."""
    if name is not None and (folder / f"{name}.inter").is_file():
        return folder / f"{name}.inter"
    found = sorted(p for p in folder.glob("*.inter") if p.is_file())
    if len(found) == 1 and name is None:
        return found[0]
    if not found:
        raise MamoError("no <name>.inter file found (RecBole atomic format: <name>.inter, optional "
                        "<name>.user and <name>.item)", path=str(folder))
    raise MamoError(f"expected one <name>.inter file{'' if name is None else f' named {name}.inter'}, "
                    f"found {', '.join(p.name for p in found)}", path=str(folder))


def read_atomic(folder, name: Optional[str] = None, movielens: Optional[bool] = None) -> RawDataset:
    """Read a RecBole atomic data set from ``folder``.

    name: the file stem to read when the folder holds several .inter files.
    movielens: apply the MovieLens profile (see the module docstring); None = when the stem is
    one of MOVIELENS_STEMS.
    """
    folder = Path(folder)
    inter_path = find_inter(folder, name)
    stem = inter_path.name[: -len(".inter")]
    profile = stem in MOVIELENS_STEMS if movielens is None else movielens
    sources = {inter_path.name: sha256_file(inter_path)}

    inter = read_atomic_table(inter_path, "inter", ("user_id", "item_id", "rating"),
                              numeric=("rating", "timestamp"))
    ratings, dropped = _ratings(inter, profile)

    users = _empty_table("user_id")
    user_fields: Tuple[Field, ...] = ()
    user_path = folder / f"{stem}.user"
    if user_path.is_file():
        table = read_atomic_table(user_path, "user", ("user_id",))
        sources[user_path.name] = sha256_file(user_path)
        columns, user_fields = (_movielens_user_columns if profile else _generic_columns)(table, "user_id")
        require_values(table.frame["user_id"], user_path, "user_id", 1)
        users = entity_table(table.frame["user_id"], columns, "user_id", user_path)

    items = _empty_table("item_id", with_year=True)
    titles = None
    item_fields: Tuple[Field, ...] = ()
    item_path = folder / f"{stem}.item"
    if item_path.is_file():
        table = read_atomic_table(item_path, "item", ("item_id",))
        sources[item_path.name] = sha256_file(item_path)
        columns, item_fields = (_movielens_item_columns if profile else _generic_item_columns)(table)
        columns["year"] = _year_column(table)
        require_values(table.frame["item_id"], item_path, "item_id", 1)
        items = entity_table(table.frame["item_id"], columns, "item_id", item_path)
        title_field = _title_field(table.types)
        if title_field is not None:
            titles = title_series(table.frame["item_id"], table.frame[title_field])

    rating_range = MOVIELENS_RANGE if profile else (float(ratings["rating"].min()), float(ratings["rating"].max()))
    return RawDataset(name=stem, ratings=ratings, users=users, items=items, user_fields=user_fields,
                      item_fields=item_fields, rating_range=rating_range, source_files=sources,
                      duplicates_dropped=dropped, format="ml-1m-atomic" if (profile and stem == "ml-1m") else "atomic",
                      item_titles=titles)


def _ratings(inter: AtomicTable, profile: bool) -> Tuple[pd.DataFrame, int]:
    f, path = inter.frame, inter.path
    expected = _EXPECTED["inter"]
    require_ratings(f, path, expected)
    for col in ("user_id", "item_id"):
        require_values(f[col], path, col, 1)
    rating = numeric_column(f["rating"], path, "rating", 1, "the rating of each row")
    if profile:
        check_rating_range(rating, *MOVIELENS_RANGE, path, 1, "MovieLens")
    ts = None
    if "timestamp" in f.columns:
        ts = numeric_column(f["timestamp"], path, "timestamp", 1, "a unix time", allow_missing=True)
    return ratings_frame(f["user_id"], f["item_id"], rating, ts, path)


def _is_free_text(field: str) -> bool:
    low = field.lower()
    return "title" in low or "name" in low


def _title_field(types: Dict[str, str]) -> Optional[str]:
    """The item field shown as the title (display only): the first free-text field whose name
    contains "title", else the first containing "name"; None when there is none."""
    for word in ("title", "name"):
        for field in types:
            if word in field.lower() and field != "item_id":
                return field
    return None


def _generic_columns(table: AtomicTable, id_field: str, skip: Sequence[str] = ()
                     ) -> Tuple[Dict[str, pd.Series], Tuple[Field, ...]]:
    """token -> single-valued, token_seq -> multi-valued; ids, free text and floats left out."""
    columns: Dict[str, pd.Series] = {}
    fields: List[Field] = []
    for field, typ in table.types.items():
        if field == id_field or field in skip or _is_free_text(field):
            continue
        if typ == "token":
            columns[field] = as_tokens(table.frame[field])
            fields.append(Field(field))
        elif typ == "token_seq":
            columns[field] = as_token_tuples(table.frame[field], " ")
            fields.append(Field(field, multi=True))
    return columns, tuple(fields)


def _generic_item_columns(table: AtomicTable) -> Tuple[Dict[str, pd.Series], Tuple[Field, ...]]:
    columns, fields = _generic_columns(table, "item_id")
    if "year" in columns:   # the float column `year` is the protocol's; keep the token apart
        columns["year_token"] = columns.pop("year")
        fields = tuple(Field("year_token", f.multi) if f.name == "year" else f for f in fields)
    return columns, fields


def _year_column(table: AtomicTable) -> pd.Series:
    for field in ("release_year", "year"):
        if field in table.types:
            return to_float(table.frame[field])
    return pd.Series(np.full(len(table.frame), np.nan), index=table.frame.index)


def _movielens_user_columns(table: AtomicTable, id_field: str) -> Tuple[Dict[str, pd.Series], Tuple[Field, ...]]:
    f = table.frame
    columns: Dict[str, pd.Series] = {}
    if "gender" in f:
        columns["gender"] = as_tokens(f["gender"])
    if "age" in f:
        columns["age"] = age_bucket(to_float(f["age"]))
    if "occupation" in f:
        columns["occupation"] = numeric_tokens(f["occupation"])
    if "zip_code" in f:
        columns["zip"] = zip_prefix(f["zip_code"])
    known = ("gender", "age", "occupation", "zip_code")
    rest, rest_fields = _generic_columns(table, id_field, skip=known)
    columns.update(rest)
    return columns, tuple(Field(n) for n in columns if n not in rest) + rest_fields


def _movielens_item_columns(table: AtomicTable) -> Tuple[Dict[str, pd.Series], Tuple[Field, ...]]:
    f = table.frame
    columns: Dict[str, pd.Series] = {}
    fields: List[Field] = []
    if "release_year" in f:
        columns["release_year"] = year_token(to_float(f["release_year"]))
        fields.append(Field("release_year"))
    genre = next((g for g in _GENRE_FIELDS if g in f), None)
    if genre is not None:
        # ML-1M's atomic copy types genres as `token` but space-separates them: split either way
        columns["genres"] = as_token_tuples(f[genre], " ")
        fields.append(Field("genres", multi=True))
    rest, rest_fields = _generic_columns(table, "item_id", skip=("release_year", "year") + _GENRE_FIELDS)
    columns.update(rest)
    return columns, tuple(fields) + rest_fields


def zip_prefix(values: pd.Series) -> pd.Series:
    """Zip codes -> their first 2 characters (str); missing -> None."""
    tokens = as_tokens(values)
    out = tokens.copy()
    present = tokens.notna()
    out[present] = tokens[present].str[:2]
    return out


def _empty_table(index_name: str, with_year: bool = False) -> pd.DataFrame:
    frame = pd.DataFrame(index=pd.Index([], dtype=object, name=index_name))
    if with_year:
        frame["year"] = np.zeros(0, dtype=np.float64)
    return frame
