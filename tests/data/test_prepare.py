"""prepare(): raw -> encoded -> splits, the processed cache (hit, key, corruption), real ml-100k."""
import shutil

import numpy as np
import pandas as pd
import pytest
from synthetic import flat, synthetic_raw, write_atomic

from mamo_l2l.core.config import DataConfig
from mamo_l2l.data import prepare as pipeline
from mamo_l2l.data.features import FeatureEncoders
from mamo_l2l.data.types import SCENARIOS


@pytest.fixture()
def synth_dir(tmp_path):
    return write_atomic(synthetic_raw(), tmp_path / "src")


def count_reads(monkeypatch):
    """Count calls of the raw reader that prepare() uses."""
    from mamo_l2l.data import prepare as pipeline
    calls = []
    real = pipeline.load_raw

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(pipeline, "load_raw", spy)
    return calls


def same_data(a, b):
    for name in ("user_ids", "item_ids", "user_x", "item_x", "rating_user", "rating_item", "rating",
                 "timestamp", "item_year"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y)
    assert a.user_layout == b.user_layout and a.item_layout == b.item_layout
    assert a.fingerprint == b.fingerprint and a.rating_range == b.rating_range


def test_prepare_builds_then_hits_the_cache(synth_dir, tmp_path, monkeypatch):
    calls = count_reads(monkeypatch)
    cfg = DataConfig(dataset="synth", data_dir=str(synth_dir))
    cache = tmp_path / "cache"
    d1, s1, e1 = pipeline.prepare(cfg, seed=3, cache_dir=cache, progress=False)
    assert len(calls) == 1
    entries = sorted(p.suffix for p in (cache / "processed").iterdir())
    assert entries == [".json", ".npz"]
    d2, s2, e2 = pipeline.prepare(cfg, seed=3, cache_dir=cache, progress=False)
    assert len(calls) == 1                      # served from the cache: no raw read
    same_data(d1, d2)
    assert flat(s1) == flat(s2) and s1.counts == s2.counts and e1 == e2
    assert s2.item_year_cutoff == s1.item_year_cutoff
    # the cached entry is readable without pickle
    npz = next((cache / "processed").glob("*.npz"))
    with np.load(npz, allow_pickle=False) as z:
        assert z["rating"].shape == (len(d1.rating),)
    # and equals building directly from the files
    from mamo_l2l.data.protocol import build_splits
    from mamo_l2l.data.readers import read_folder
    raw = read_folder(synth_dir)
    direct = build_splits(FeatureEncoders.fit(raw, cfg.min_count).encode(raw), cfg, 3)
    assert flat(direct) == flat(s2)


def test_cache_key_follows_sources_protocol_and_seed(synth_dir, tmp_path):
    sums = pipeline.source_checksums(synth_dir)
    assert sorted(sums) == ["synth.inter", "synth.item", "synth.user"]
    cfg = DataConfig(dataset="synth", data_dir=str(synth_dir))
    k = pipeline.cache_key(sums, cfg, 0)
    assert pipeline.cache_key(sums, cfg, 1) != k
    assert pipeline.cache_key(sums, DataConfig(dataset="synth", data_dir=str(synth_dir), n_query=5), 0) != k
    # the folder's location is not part of the key; the files' contents are
    moved = shutil.copytree(synth_dir, tmp_path / "elsewhere")
    assert (
        pipeline.cache_key(pipeline.source_checksums(moved), DataConfig(dataset="synth", data_dir=str(moved)), 0) == k
    )
    with open(moved / "synth.inter", "a", encoding="utf-8") as f:
        f.write("999\tm1\t3\t5\n")
    assert pipeline.cache_key(pipeline.source_checksums(moved), cfg, 0) != k


@pytest.mark.parametrize("damage", ["truncate_npz", "garbage_json", "delete_npz", "flip_byte"])
def test_corrupt_cache_entries_are_rebuilt(synth_dir, tmp_path, monkeypatch, damage):
    cfg = DataConfig(dataset="synth", data_dir=str(synth_dir))
    cache = tmp_path / "cache"
    _, s1, _ = pipeline.prepare(cfg, seed=0, cache_dir=cache, progress=False)
    npz = next((cache / "processed").glob("*.npz"))
    js = npz.with_suffix(".json")
    if damage == "truncate_npz":
        npz.write_bytes(npz.read_bytes()[: npz.stat().st_size // 2])
    elif damage == "garbage_json":
        js.write_text("{not json", encoding="utf-8")
    elif damage == "delete_npz":
        npz.unlink()
    else:  # same size, one byte of array data changed: the zip CRC catches it
        b = bytearray(npz.read_bytes())
        b[len(b) // 2] ^= 0xFF
        npz.write_bytes(bytes(b))
    calls = count_reads(monkeypatch)
    _, s2, _ = pipeline.prepare(cfg, seed=0, cache_dir=cache, progress=False)
    assert len(calls) == 1  # rebuilt from the raw files
    assert flat(s1) == flat(s2)
    _, s3, _ = pipeline.prepare(cfg, seed=0, cache_dir=cache, progress=False)
    assert len(calls) == 1  # and the rebuilt entry is used next time
    assert flat(s3) == flat(s1)


def test_warm_eval_seen_survives_the_cache(synth_dir, tmp_path):
    cfg = DataConfig(dataset="synth", data_dir=str(synth_dir), warm_eval="seen")
    pipeline.prepare(cfg, seed=0, cache_dir=tmp_path / "c", progress=False)
    _, s, _ = pipeline.prepare(cfg, seed=0, cache_dir=tmp_path / "c", progress=False)
    assert s.test["warm"] is s.train and len(s.train) > 0


def test_missing_data_dir_is_a_user_error(tmp_path):
    from mamo_l2l.core.errors import MamoError

    with pytest.raises(MamoError, match="not found"):
        pipeline.prepare(DataConfig(data_dir=str(tmp_path / "nope")), 0, cache_dir=tmp_path, progress=False)


# ------------------------------------------------------------------ real MovieLens-100K
@pytest.mark.realdata
def test_ml100k_counts_and_cutoff(tmp_path, ml100k_real_dir):
    cfg = DataConfig(dataset="ml-100k", data_dir=str(ml100k_real_dir))
    data, splits, _ = pipeline.prepare(cfg, seed=0, cache_dir=tmp_path, progress=False)
    c = splits.counts
    assert c["totals"] == {"users": 943, "items": 1682, "ratings": 100000}
    assert sum(c["partition"].values()) == 100000
    # cutoff worked out from the files with pandas: smallest year with <= 20 % of ratings after it
    inter = pd.read_csv(ml100k_real_dir / "ml-100k.inter", sep="\t", dtype=str)
    item = pd.read_csv(ml100k_real_dir / "ml-100k.item", sep="\t", dtype=str)
    year = pd.to_numeric(item["release_year:token"], errors="coerce")
    year.index = item["item_id:token"]
    rated_year = year.reindex(inter["item_id:token"]).to_numpy()
    shares = {y: (rated_year > y).sum() / len(inter) for y in sorted(set(year.dropna()))}
    expected = min(y for y, s in shares.items() if s <= 0.2)
    assert c["item_year_cutoff"] == expected == 1996.0
    new_share = c["partition"]["item_cold"] + c["partition"]["user_item_cold"]
    assert new_share == (rated_year > 1996).sum()
    # 80 % of the 943 users are existing
    n_new = len({t.user for s in ("user_cold", "user_item_cold") for t in splits.test[s]})
    assert n_new <= 943 - round(0.8 * 943)
    for s in SCENARIOS:
        assert c["scenarios"][s]["users"] == len(splits.test[s]) > 0
        assert all(len(t.query_items) == 10 for t in splits.test[s])


# ------------------------------------------------------------------ every reader's fixture format
FORMATS = ("ml-100k-raw", "ml-1m-raw", "ml-100k-atomic", "ml-1m-atomic", "atomic", "book-crossing")


@pytest.mark.parametrize("fmt", FORMATS)
def test_prepare_on_every_fixture_format(format_dirs, tmp_path, fmt):
    cfg = DataConfig(dataset=fmt, data_dir=str(format_dirs[fmt]))
    data, splits, enc = pipeline.prepare(cfg, seed=0, cache_dir=tmp_path, progress=False)
    c = splits.counts
    assert sum(c["partition"].values()) == c["totals"]["ratings"] == len(data.rating)
    assert splits.train and splits.valid
    for s in SCENARIOS:
        for t in splits.test[s]:
            assert len(t.query_items) == cfg.n_query and len(t.support_items) >= cfg.min_ratings - cfg.n_query
    # every encoded index lies inside its field's vocabulary
    for x, layout in ((data.user_x, data.user_layout), (data.item_x, data.item_layout)):
        for f in layout:
            assert (x[:, f.start : f.stop] >= 0).all() and (x[:, f.start : f.stop] < f.vocab_size).all()
    assert enc.to_dict() == data.encoders


def test_same_data_in_two_layouts_gives_the_same_tasks(format_dirs, tmp_path):
    """ml-100k-raw and ml-100k-atomic hold the same ratings: the tasks, named by raw ids, agree."""

    def named(fmt):
        cfg = DataConfig(dataset="ml-100k", data_dir=str(format_dirs[fmt]))
        data, s, _ = pipeline.prepare(cfg, seed=1, cache_dir=tmp_path, progress=False)
        return {
            k: sorted(
                (data.user_ids[t.user], tuple(data.item_ids[t.support_items]), tuple(data.item_ids[t.query_items]))
                for t in s.test[k]
            )
            for k in SCENARIOS
        }

    a, b = named("ml-100k-raw"), named("ml-100k-atomic")
    assert a == b and all(a[k] for k in SCENARIOS)
