"""Feature encoders: vocabularies, min_count folding, multi-valued fields, inference rows, round trip."""
import json

import numpy as np
import pandas as pd
import pytest

from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.features import FeatureEncoders
from mamo_l2l.data.types import Field, RawDataset


def tiny_raw(source_files=None) -> RawDataset:
    """4 users with a table row + user '10' rated without a row; 3 items (one without a row)."""
    users = pd.DataFrame(
        {"occ": ["a", "b", "a", None], "genres_u": [("x", "y"), ("x",), (), ("x", "z", "y")]},
        index=pd.Index(["2", "1", "3", "4"], name="user_id"))
    # occupation counts over entities: a=2, b=1 ; genre counts: x=3, y=2, z=1
    items = pd.DataFrame(
        {"studio": ["s1", "s1", "s2"], "tags": [("t1",), ("t1", "t2"), None],
         "year": [1990.0, np.nan, 2001.0]},
        index=pd.Index(["i1", "i2", "i3"], name="item_id"))
    ratings = pd.DataFrame({
        "user_id": ["3", "1", "10", "1", "2"],
        "item_id": ["i2", "i9", "i1", "i1", "i3"],
        "rating": [4.0, 3.0, 5.0, 1.0, 2.0],
        "timestamp": [30.0, 20.0, 50.0, 10.0, 40.0],
    })
    return RawDataset("tiny", ratings, users, items,
                      (Field("occ"), Field("genres_u", multi=True)),
                      (Field("studio"), Field("tags", multi=True)),
                      (1.0, 5.0), source_files or {"r.csv": "aa", "u.csv": "bb"})


def test_vocabularies_fold_rare_values_and_mark_missing():
    enc = FeatureEncoders.fit(tiny_raw(), min_count=2)
    data = enc.encode(tiny_raw())
    # users in numeric id order: 1, 2, 3, 4, 10
    assert list(data.user_ids) == ["1", "2", "3", "4", "10"]
    # occ: kept {a}; a -> 3, b (1 entity) -> OTHER 2, None -> UNKNOWN 1
    # genres_u: kept {x, y} -> x=3, y=4; z (1 entity) -> OTHER; width 3 (user 4 has 3 values)
    expected = np.array([
        [2, 3, 0, 0],    # user 1: b ; (x)
        [3, 3, 4, 0],    # user 2: a ; (x, y)
        [3, 1, 0, 0],    # user 3: a ; () -> UNKNOWN in slot 0
        [1, 3, 2, 4],    # user 4: None ; (x, z, y)
        [1, 1, 0, 0],    # user 10: no row -> unknown everywhere
    ])
    np.testing.assert_array_equal(data.user_x, expected)
    assert [(fl.name, fl.start, fl.stop, fl.vocab_size, fl.multi) for fl in data.user_layout] == [
        ("occ", 0, 1, 4, False), ("genres_u", 1, 4, 5, True)]


def test_items_years_and_rating_order():
    data = FeatureEncoders.fit(tiny_raw(), min_count=2).encode(tiny_raw())
    # item ids are not numeric -> string order; i9 is rated but has no row
    assert list(data.item_ids) == ["i1", "i2", "i3", "i9"]
    np.testing.assert_array_equal(data.item_year[:3], [1990.0, np.nan, 2001.0])
    assert np.isnan(data.item_year[3])
    # studio: s1 (2 items) -> 3, s2 -> OTHER ; tags: t1 (2 items) -> 3, t2 -> OTHER, width 2
    np.testing.assert_array_equal(data.item_x, [[3, 3, 0], [3, 3, 2], [2, 1, 0], [1, 1, 0]])
    # ratings sorted by (user index, item index): (1,i1) (1,i9) (2,i3) (3,i2) (10,i1)
    np.testing.assert_array_equal(data.rating_user, [0, 0, 1, 2, 4])
    np.testing.assert_array_equal(data.rating_item, [0, 3, 2, 1, 0])
    np.testing.assert_array_equal(data.rating, np.array([1, 3, 2, 4, 5], dtype=np.float32))
    np.testing.assert_array_equal(data.timestamp, [10.0, 20.0, 40.0, 30.0, 50.0])
    assert data.rating.dtype == np.float32 and data.rating_user.dtype == np.int64


def test_min_count_one_keeps_everything():
    data = FeatureEncoders.fit(tiny_raw(), min_count=1).encode(tiny_raw())
    # occ: a=3, b=4 ; genres: x=3, y=4, z=5
    np.testing.assert_array_equal(data.user_x[:4], [[4, 3, 0, 0], [3, 3, 4, 0], [3, 1, 0, 0], [1, 3, 5, 4]])


def test_encode_new_entities_at_inference():
    enc = FeatureEncoders.fit(tiny_raw(), min_count=2)
    np.testing.assert_array_equal(enc.encode_user({"occ": "a", "genres_u": ["y", "never"]}), [3, 4, 1, 0])
    # a value folded at fit time stays OTHER; a missing field is UNKNOWN; a lone str is one value
    np.testing.assert_array_equal(enc.encode_user({"occ": "b"}), [2, 1, 0, 0])
    np.testing.assert_array_equal(enc.encode_user({"occ": "zzz", "genres_u": "z"}), [1, 2, 0, 0])
    # more values than the fitted width keeps the first `width` ones
    np.testing.assert_array_equal(enc.encode_item({"studio": "s1", "tags": ("t2", "t1", "t1", "q")}),
                                  [3, 2, 3])
    with pytest.raises(MamoError, match="unknown user field"):
        enc.encode_user({"age": "3"})


def test_to_dict_round_trip_through_json():
    enc = FeatureEncoders.fit(tiny_raw(), min_count=2)
    back = FeatureEncoders.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert back == enc
    a, b = enc.encode(tiny_raw()), back.encode(tiny_raw())
    np.testing.assert_array_equal(a.user_x, b.user_x)
    np.testing.assert_array_equal(a.item_x, b.item_x)
    assert a.fingerprint == b.fingerprint
    with pytest.raises(MamoError, match="version"):
        FeatureEncoders.from_dict({**enc.to_dict(), "features_version": 999})


def test_fingerprint_depends_on_sources_and_settings_only():
    raw = tiny_raw({"r.csv": "aa", "u.csv": "bb"})
    swapped = tiny_raw({"u.csv": "bb", "r.csv": "aa"})
    f = FeatureEncoders.fit(raw, 2).encode(raw).fingerprint
    assert len(f) == 64
    assert FeatureEncoders.fit(swapped, 2).encode(swapped).fingerprint == f
    assert FeatureEncoders.fit(raw, 1).encode(raw).fingerprint != f
    other = tiny_raw({"r.csv": "ab", "u.csv": "bb"})
    assert FeatureEncoders.fit(other, 2).encode(other).fingerprint != f


def test_bad_min_count_is_a_user_error():
    with pytest.raises(MamoError, match="min_count"):
        FeatureEncoders.fit(tiny_raw(), min_count=0)
