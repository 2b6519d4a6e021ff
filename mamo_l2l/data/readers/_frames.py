"""Column helpers shared by the readers: ratings frame (duplicates resolved, range checked),
feature cells (str or None; tuples for multi-valued fields), age buckets, entity tables.

Work over ratings is vectorised (pandas/numpy). Feature cells are cleaned with plain str
methods in one list comprehension per column: that runs over entities (at most a few hundred
thousand), and on pandas' python-backed strings it is several times faster than a .str chain.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.readers._io import line_of_row

# MovieLens-1M age codes: code c stands for ages [c, next code); 1 means "under 18".
AGE_CODES = ("1", "18", "25", "35", "45", "50", "56")
_AGE_EDGES = np.array([18, 25, 35, 45, 50, 56], dtype=np.float64)


class DuplicateRowsWarning(UserWarning):
    """Repeated rows (a (user, item) pair rated twice, an id listed twice) were dropped."""


def as_tokens(values: pd.Series) -> pd.Series:
    """Single-valued feature cells: str, with missing or empty-after-strip values as None.

    Surrounding whitespace is stripped (it never carries meaning in these files)."""
    cells = [_token(x) for x in values.to_numpy(dtype=object)]
    return pd.Series(cells, index=values.index, dtype=object)


def _token(x) -> Optional[str]:
    if isinstance(x, str):
        return x.strip() or None
    if x is None or x is pd.NA or (isinstance(x, float) and x != x):
        return None
    return str(x)


def as_token_tuples(values: pd.Series, sep: str) -> pd.Series:
    """Multi-valued feature cells: tuple of distinct str in file order; missing -> ()."""
    parts = values.astype("string").fillna("").str.split(sep)
    return parts.map(lambda p: tuple(dict.fromkeys(x.strip() for x in p if x.strip())))


def age_bucket(age: pd.Series, low: float = -np.inf, high: float = np.inf) -> pd.Series:
    """Ages in years (float, NaN = unknown) -> MovieLens-1M age codes as str.

    1: under 18, 18: 18-24, 25: 25-34, 35: 35-44, 45: 45-49, 50: 50-55, 56: 56 and over.
    Applied to a code it returns the same code, so ML-1M's coded ages pass through unchanged.
    Ages outside [low, high] or NaN -> None.
    """
    a = age.to_numpy(dtype=np.float64)
    ok = ~np.isnan(a) & (a >= low) & (a <= high)
    codes = np.asarray(AGE_CODES, dtype=object)[np.searchsorted(_AGE_EDGES, np.where(ok, a, 0), side="right")]
    codes[~ok] = None
    return pd.Series(codes, index=age.index, dtype=object)


def year_token(year: pd.Series) -> pd.Series:
    """Years (float, NaN = unknown) -> str tokens like '1995'; NaN -> None."""
    y = year.to_numpy(dtype=np.float64)
    ok = ~np.isnan(y)
    out = np.full(len(y), None, dtype=object)
    out[ok] = pd.Series(y[ok]).astype(np.int64).astype(str).to_numpy(dtype=object)
    return pd.Series(out, index=year.index, dtype=object)


def numeric_tokens(values: pd.Series) -> pd.Series:
    """Codes stored as numbers ('10', '10.0') -> '10'; other values kept as tokens."""
    tokens = as_tokens(values)
    num = pd.to_numeric(tokens, errors="coerce")
    whole = num.notna() & (num == np.floor(num))
    out = tokens.copy()
    out[whole] = num[whole].astype(np.int64).astype(str).astype(object)
    return out


def to_float(values: pd.Series) -> pd.Series:
    """Numbers as float64, anything missing or non-numeric -> NaN (for feature columns only)."""
    return pd.to_numeric(values, errors="coerce").astype(np.float64)


def entity_table(ids: pd.Series, columns: Dict[str, pd.Series], index_name: str, path: Path) -> pd.DataFrame:
    """A users/items table: index = ids (str, unique: a repeated id keeps its last row)."""
    index = pd.Index(ids.astype(str).to_numpy(dtype=object), dtype=object, name=index_name)
    # explicit object dtype: pandas >= 3 would otherwise infer its string dtype and turn None into NaN
    frame = pd.DataFrame({name: pd.Series(col.to_numpy(), index=index,
                                          dtype=np.float64 if col.dtype == np.float64 else object)
                          for name, col in columns.items()}, index=index)
    dup = frame.index.duplicated(keep="last")
    if dup.any():
        warnings.warn(f"{path}: {int(dup.sum())} repeated {index_name} row(s); kept the last of each",
                      DuplicateRowsWarning, stacklevel=3)
        frame = frame[~dup]
    return frame


def title_series(ids: pd.Series, titles: pd.Series) -> pd.Series:
    """RawDataset.item_titles: item id (str) -> title (str, stripped); missing titles and repeated
    ids (the last row kept, as in ``entity_table``) handled. Display only, never a feature."""
    frame = pd.DataFrame(
        {
            "id": ids.astype(str).to_numpy(dtype=object),
            "title": [str(t).strip() if isinstance(t, str) else "" for t in titles.to_numpy(dtype=object)],
        }
    )
    frame = frame.drop_duplicates("id", keep="last")
    return pd.Series(
        frame["title"].to_numpy(dtype=object),
        index=pd.Index(frame["id"].to_numpy(dtype=object), dtype=object),
        dtype=object,
    )


def ratings_frame(
    user: pd.Series, item: pd.Series, rating: np.ndarray, timestamp: Optional[np.ndarray], path: Path
) -> Tuple[pd.DataFrame, int]:
    """The RawDataset ratings frame and the number of duplicate rows dropped.

    A (user, item) pair rated more than once keeps its latest rating: the largest timestamp,
    ties (and files without timestamps) broken by the later row in the file. Rows keep file order.
    """
    ts = np.full(len(rating), np.nan) if timestamp is None else np.asarray(timestamp, dtype=np.float64)
    frame = pd.DataFrame(
        {
            "user_id": user.astype(str).to_numpy(dtype=object),
            "item_id": item.astype(str).to_numpy(dtype=object),
            "rating": np.asarray(rating, dtype=np.float64),
            "timestamp": ts,
        }
    )
    dup = frame.duplicated(["user_id", "item_id"], keep=False)
    dropped = 0
    if dup.any():
        # stable sort: equal (or unknown) timestamps stay in file order, so keep="last" = later row
        order = frame.sort_values("timestamp", kind="stable", na_position="first")
        keep = ~order.duplicated(["user_id", "item_id"], keep="last")
        dropped = int((~keep).sum())
        frame = order[keep].sort_index()
        warnings.warn(
            f"{path}: {dropped} duplicate (user, item) rating(s) dropped; kept the latest of each",
            DuplicateRowsWarning,
            stacklevel=3,
        )
    return frame.reset_index(drop=True), dropped


def check_rating_range(
    rating: np.ndarray, low: float, high: float, path: Path, header_lines: int, dataset: str
) -> None:
    """MamoError at the first rating outside [low, high] (the data set's known scale)."""
    bad = (rating < low) | (rating > high)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise MamoError(
            f"rating {rating[row]:g} is outside {dataset}'s range {low:g}..{high:g}",
            path=str(path),
            line=line_of_row(path, row, header_lines),
        )


def require_ratings(frame: pd.DataFrame, path: Path, expected: str) -> None:
    """MamoError when a ratings file has a header but no rating rows."""
    if len(frame) == 0:
        raise MamoError(f"no ratings in the file; expected {expected}", path=str(path))
