"""Readers: every format read back into the values the fixture generator wrote."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest

from mamo_l2l.data.readers import (
    AGE_CODES,
    DuplicateRowsWarning,
    age_bucket,
    detect_format,
    read_folder,
)
from mamo_l2l.data.types import Field, RawDataset

ML_USER_FIELDS = (Field("gender"), Field("age"), Field("occupation"), Field("zip"))
ML_ITEM_FIELDS = (Field("release_year"), Field("genres", multi=True))


def hand_bucket(age):
    """ML-1M age codes written out case by case (independent of the reader's searchsorted)."""
    if age < 18:
        return "1"
    if age <= 24:
        return "18"
    if age <= 34:
        return "25"
    if age <= 44:
        return "35"
    if age <= 49:
        return "45"
    if age <= 55:
        return "50"
    return "56"


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_ratings_match_world(raw: RawDataset, world, user_key, item_key, scale=1):
    """Every rating the generator wrote, in file order, with its timestamp."""
    r = raw.ratings
    assert list(r.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert len(r) == len(world.ratings)
    assert r["user_id"].tolist() == [user_key(u) for u, _, _, _ in world.ratings]
    assert r["item_id"].tolist() == [item_key(i) for _, i, _, _ in world.ratings]
    np.testing.assert_array_equal(r["rating"].to_numpy(), [scale * x for _, _, x, _ in world.ratings])
    np.testing.assert_array_equal(r["timestamp"].to_numpy(), [t for _, _, _, t in world.ratings])
    assert r["rating"].dtype == np.float64 and r["timestamp"].dtype == np.float64


# ----------------------------------------------------------------------------- detection
@pytest.mark.parametrize("folder,expected", [
    ("ml-100k-raw", "ml-100k-raw"), ("ml-1m-raw", "ml-1m-raw"), ("ml-100k-atomic", "atomic"),
    ("ml-1m-atomic", "ml-1m-atomic"), ("atomic", "atomic"), ("book-crossing", "book-crossing")])
def test_detect_format(format_dirs, folder, expected):
    assert detect_format(format_dirs[folder]) == expected
    assert read_folder(format_dirs[folder]).format == expected


# ----------------------------------------------------------------------------- age buckets
def test_age_bucket_edges_match_ml1m_codes():
    ages = [7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73]
    expected = ["1", "1", "18", "18", "25", "25", "35", "35", "45", "45", "50", "50", "56", "56"]
    assert age_bucket(pd.Series(ages, dtype=float)).tolist() == expected
    # ML-1M codes map onto themselves; unknown ages are None
    assert age_bucket(pd.Series([float(c) for c in AGE_CODES])).tolist() == list(AGE_CODES)
    assert age_bucket(pd.Series([np.nan])).tolist() == [None]
    # Book-Crossing keeps ages 5..100 only
    assert age_bucket(pd.Series([4.0, 5.0, 100.0, 101.0, 0.0]), 5, 100).tolist() == [None, "1", "56", None, None]


# ----------------------------------------------------------------------------- MovieLens-100K
def test_ml100k_raw(ml100k_raw_dir, fixtures_module):
    w = fixtures_module.movie_world(0)
    raw = read_folder(ml100k_raw_dir)
    assert raw.name == "ml-100k" and raw.rating_range == (1.0, 5.0) and raw.duplicates_dropped == 0
    check_ratings_match_world(raw, w, str, str)
    assert raw.user_fields == ML_USER_FIELDS and raw.item_fields == ML_ITEM_FIELDS
    assert len(raw.users) == fixtures_module.N_USERS and len(raw.items) == fixtures_module.N_ITEMS
    assert raw.users.loc["1"].to_dict() == {"gender": "M", "age": "18", "occupation": "technician", "zip": "85"}
    assert raw.users.loc["2", "zip"] == "T8"                      # Canadian zip T8H1N
    for uid, (age, gender, occ, z) in w.users.items():
        assert raw.users.loc[str(uid), "age"] == hand_bucket(age)
        assert raw.users.loc[str(uid), "zip"] == z[:2]
    toy = raw.items.loc["1"]
    assert toy["release_year"] == "1995" and toy["year"] == 1995.0
    assert toy["genres"] == ("Animation", "Children's", "Comedy")
    assert raw.items.loc["3", "genres"] == ("Drama", "Musical")   # the latin-1 title parsed
    assert raw.items.loc["4", "release_year"] is None and math.isnan(raw.items.loc["4", "year"])
    assert raw.items["year"].dtype == np.float64
    assert raw.source_files == {
        name: sha256(ml100k_raw_dir / name) for name in ("u.data", "u.user", "u.item", "u.genre")
    }


def test_ml100k_atomic_equals_ml100k_raw(ml100k_atomic_dir, ml100k_raw_dir):
    """RecBole's ML-100K layout gets the MovieLens field names and the same values as the originals."""
    a, r = read_folder(ml100k_atomic_dir), read_folder(ml100k_raw_dir)
    assert a.name == "ml-100k" and a.rating_range == (1.0, 5.0)
    assert a.user_fields == r.user_fields and a.item_fields == r.item_fields
    pd.testing.assert_frame_equal(a.ratings, r.ratings)
    pd.testing.assert_frame_equal(a.users, r.users)
    # item 4 has no release date in u.item but a year in the atomic copy; everything else agrees
    pd.testing.assert_frame_equal(a.items.drop(index="4"), r.items.drop(index="4"))
    assert a.items.loc["4", "year"] == float(read_year(ml100k_atomic_dir, "4"))


def read_year(folder, item):
    for line in (folder / "ml-100k.item").read_text(encoding="utf-8").splitlines()[1:]:
        cells = line.split("\t")
        if cells[0] == item:
            return cells[2]


# ----------------------------------------------------------------------------- MovieLens-1M
def test_ml1m_raw(ml1m_raw_dir, fixtures_module):
    w = fixtures_module.movie_world(0)
    raw = read_folder(ml1m_raw_dir)
    assert raw.name == "ml-1m" and raw.format == "ml-1m-raw" and raw.rating_range == (1.0, 5.0)
    check_ratings_match_world(raw, w, str, str)
    assert raw.user_fields == ML_USER_FIELDS and raw.item_fields == ML_ITEM_FIELDS
    assert raw.users.loc["1"].to_dict() == {"gender": "M", "age": "18", "occupation": "17", "zip": "85"}
    for uid, (age, _, occ, _) in w.users.items():
        assert raw.users.loc[str(uid), "age"] == hand_bucket(age)
        assert raw.users.loc[str(uid), "occupation"] == str(occ)
    star_wars = raw.items.loc["2"]  # a ':' inside the title
    assert star_wars["year"] == 1977.0 and star_wars["genres"] == ("Action", "Adventure", "Sci-Fi")
    assert raw.items.loc["3", "release_year"] == "1995"  # latin-1 title
    assert raw.items.loc["4", "year"] == float(w.items[4][1])  # ML-1M years come from the title
    assert set(raw.source_files) == {"ratings.dat", "users.dat", "movies.dat"}


def test_ml1m_atomic(ml1m_atomic_dir, fixtures_module):
    w = fixtures_module.movie_world(0)
    raw = read_folder(ml1m_atomic_dir)
    assert raw.name == "ml-1m" and raw.format == "ml-1m-atomic" and raw.rating_range == (1.0, 5.0)
    titles = {i: f"{t} ({y})" for i, (t, y, _) in w.items.items()}
    check_ratings_match_world(raw, w, lambda u: f"1m_{u}", titles.get)
    # float-typed codes become the same tokens as in ratings.dat/users.dat; CRLF leaves no '\r'
    assert raw.users.loc["1m_1"].to_dict() == {"gender": "M", "age": "18", "occupation": "17", "zip": "85"}
    assert raw.items.loc["Toy Story (1995)", "genres"] == ("Animation", "Children's", "Comedy")
    assert raw.items.loc["Misérables, Les (1995)", "year"] == 1995.0
    assert raw.items.loc["Star Wars: Episode IV - A New Hope (1977)", "release_year"] == "1977"
    assert not any("\r" in str(v) for v in raw.items["genres"].map(" ".join))


# ----------------------------------------------------------------------------- generic atomic
def test_generic_atomic_rules(atomic_dir, fixtures_module):
    w = fixtures_module.movie_world(0)
    raw = read_folder(atomic_dir)
    assert raw.name == "tiny" and raw.format == "atomic"
    check_ratings_match_world(raw, w, lambda u: f"u{u}", lambda i: f"i{i}", scale=2)
    doubled = [2 * x for _, _, x, _ in w.ratings]
    assert raw.rating_range == (min(doubled), max(doubled))
    # token -> single, token_seq -> multi; ids, *name* fields and floats are not features;
    # the token field `year` is renamed so the float column `year` keeps its meaning
    assert raw.user_fields == (Field("gender"), Field("country"))
    assert raw.item_fields == (Field("year_token"), Field("tags", multi=True))
    assert list(raw.users.columns) == ["gender", "country"]
    assert sorted(raw.items.columns) == ["tags", "year", "year_token"]
    assert raw.users.loc["u2", "country"] == "ca"
    assert raw.items.loc["i1", "tags"] == ("animation", "children's", "comedy")
    assert raw.items.loc["i2", "year_token"] == "1977" and raw.items.loc["i2", "year"] == 1977.0


# ----------------------------------------------------------------------------- Book-Crossing
def test_book_crossing(book_crossing_dir, fixtures_module):
    w = fixtures_module.book_world(0)
    raw = read_folder(book_crossing_dir)
    assert raw.name == "book-crossing" and raw.rating_range == (1.0, 10.0)
    explicit = [(u, b, r) for u, b, r in w.ratings if r > 0]
    assert len(explicit) < len(w.ratings)  # the fixture has implicit rows
    assert list(zip(raw.ratings.user_id, raw.ratings.item_id, raw.ratings.rating)) == [
        (u, b, float(r)) for u, b, r in explicit
    ]
    assert raw.ratings["timestamp"].isna().all()
    assert raw.user_fields == (Field("age"), Field("country"))
    assert raw.item_fields == (Field("author"), Field("pub_year"), Field("publisher"))
    assert len(raw.users) == fixtures_module.N_USERS + 4 and len(raw.items) == fixtures_module.N_ITEMS
    u = raw.users
    assert u.loc["1000"].to_dict() == {"age": "18", "country": "usa"}
    assert u.loc["1001"].to_dict() == {"age": None, "country": None}  # NULL age, empty country
    assert u.loc["1002"].to_dict() == {"age": None, "country": "russia"}  # age 0
    assert u.loc["1003", "age"] is None  # age 150
    spain = [uid for uid, (loc, _) in w.users.items() if loc.endswith("Spain")]
    assert spain and all(u.loc[x, "country"] == "spain" for x in spain)
    isbns = list(w.books)
    first = raw.items.loc[isbns[0]]  # escaped quotes, ';' in a title
    assert first.to_dict() == {
        "author": "Antoine de Saint-Exupéry",
        "pub_year": "1943",
        "publisher": "Harcourt",
        "year": 1943.0,
    }
    assert raw.items.loc[isbns[1], "pub_year"] is None and math.isnan(raw.items.loc[isbns[1], "year"])  # year 0
    assert raw.items.loc[isbns[2], "pub_year"] is None and raw.items.loc[isbns[2], "publisher"] is None  # 2030, NULL
    assert set(raw.source_files) == {"BX-Book-Ratings.csv", "BX-Users.csv", "BX-Books.csv"}


# ----------------------------------------------------------------------------- duplicates
def test_duplicates_keep_latest_timestamp(tmp_path):
    (tmp_path / "d.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "a\tx\t1\t300\n"  # latest of (a, x): kept although it comes first
        "a\tx\t2\t100\n"
        "b\tx\t3\t50\n"
        "a\tx\t4\t200\n"
        "b\ty\t5\t10\n",
        encoding="utf-8",
    )
    with pytest.warns(DuplicateRowsWarning, match="2 duplicate"):
        raw = read_folder(tmp_path)
    assert raw.duplicates_dropped == 2
    assert list(zip(raw.ratings.user_id, raw.ratings.item_id, raw.ratings.rating)) == [
        ("a", "x", 1.0),
        ("b", "x", 3.0),
        ("b", "y", 5.0),
    ]


def test_duplicates_without_timestamps_keep_last_in_file(tmp_path, book_crossing_dir):
    for name in ("BX-Users.csv", "BX-Books.csv"):
        (tmp_path / name).write_bytes((book_crossing_dir / name).read_bytes())
    (tmp_path / "BX-Book-Ratings.csv").write_text(
        '"User-ID";"ISBN";"Book-Rating"\n"1";"A";"3"\n"1";"B";"4"\n"1";"A";"9"\n"2";"A";"0"\n"1";"A";"7"\n',
        encoding="latin-1",
    )
    with pytest.warns(DuplicateRowsWarning, match="2 duplicate"):
        raw = read_folder(tmp_path)
    assert raw.duplicates_dropped == 2
    assert list(zip(raw.ratings.user_id, raw.ratings.item_id, raw.ratings.rating)) == [("1", "B", 4.0), ("1", "A", 7.0)]


def test_forced_format_applies_movielens_profile(tmp_path, ml100k_atomic_dir):
    """format='ml-1m-atomic' on a differently named atomic folder still gives MovieLens fields."""
    for suffix in ("inter", "user", "item"):
        (tmp_path / f"mine.{suffix}").write_bytes((ml100k_atomic_dir / f"ml-100k.{suffix}").read_bytes())
    generic = read_folder(tmp_path)
    assert [f.name for f in generic.user_fields] == ["age", "gender", "occupation", "zip_code"]
    forced = read_folder(tmp_path, format="ml-1m-atomic")
    assert forced.format == "ml-1m-atomic" and forced.user_fields == ML_USER_FIELDS
    assert forced.users.loc["1", "zip"] == "85" and forced.rating_range == (1.0, 5.0)


# ----------------------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_ml100k(ml100k_real_dir):
    raw = read_folder(ml100k_real_dir)
    assert len(raw.ratings) == 100_000
    assert raw.ratings.user_id.nunique() == 943 and raw.ratings.item_id.nunique() == 1682
    assert len(raw.users) == 943 and len(raw.items) == 1682
    assert raw.rating_range == (1.0, 5.0)
    assert raw.ratings.rating.min() == 1.0 and raw.ratings.rating.max() == 5.0
    assert raw.users.loc["1"].to_dict() == {"gender": "M", "age": "18", "occupation": "technician", "zip": "85"}
    toy = raw.items.loc["1"]
    assert toy["release_year"] == "1995" and toy["year"] == 1995.0
    assert toy["genres"] == ("Animation", "Children's", "Comedy")
    first = raw.ratings.iloc[0]  # first data line: 196 242 3 881250949
    assert (first.user_id, first.item_id, first.rating, first.timestamp) == ("196", "242", 3.0, 881250949.0)
    assert raw.source_files["ml-100k.inter"] == "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff"


# ----------------------------------------------------------------------------- the fixtures themselves
@pytest.mark.parametrize("folder", ["ml-100k-raw", "book-crossing"])
def test_fixtures_are_big_enough_for_the_protocol(format_dirs, folder):
    """>= 40 users with 15-60 ratings each, and every cold-start scenario non-empty with the
    default protocol settings."""
    from mamo_l2l.core.config import DataConfig
    from mamo_l2l.data.features import FeatureEncoders
    from mamo_l2l.data.protocol import build_splits

    raw = read_folder(format_dirs[folder])
    per_user = raw.ratings.groupby("user_id").size()
    assert len(per_user) >= 40 and per_user.min() >= 15 and per_user.max() <= 60
    splits = build_splits(FeatureEncoders.fit(raw, 2).encode(raw), DataConfig(), 0)
    assert splits.item_year_cutoff is not None
    assert all(len(splits.test[s]) > 0 for s in ("warm", "user_cold", "item_cold", "user_item_cold"))


def test_fixtures_are_deterministic(tmp_path, fixtures_module, format_dirs):
    again = fixtures_module.make_fixtures(tmp_path, seed=0)
    for name, folder in again.items():
        for f in folder.iterdir():
            assert f.read_bytes() == (format_dirs[name] / f.name).read_bytes(), f
