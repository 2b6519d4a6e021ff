"""raw files -> encoded arrays -> splits, with the result cached on disk (npz + json, no pickle).

Cache entry: ``cache_root(cache_dir)/processed/<key>.npz`` (every array) and ``<key>.json``
(everything else, written last so it marks a complete entry). ``key`` = sha256 over the source
files' sha256, ``DataConfig.protocol_key()``, the seed and ``DATA_VERSION``. An entry that cannot
be read back completely is rebuilt and overwritten.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from mamo_l2l.core.config import DataConfig
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.hashing import file_digest, json_sha256
from mamo_l2l.data.features import FeatureEncoders, restrict_to_training
from mamo_l2l.data.fetch import cache_root, cached_folder, fetch_dataset, known_datasets
from mamo_l2l.data.identity import add_item_identity, training_items
from mamo_l2l.data.protocol import build_splits
from mamo_l2l.data.readers import read_folder
from mamo_l2l.data.types import (
    SCENARIOS,
    EncodedDataset,
    FieldLayout,
    RawDataset,
    Splits,
    Task,
)

# Bump whenever readers/features/protocol change their output, so stale entries are not used.
# 2: item display titles (EncodedDataset.item_titles) are cached too.
# 3: task items in a seeded random order, not by item index (issue 9; docs/protocol.md step 7).
DATA_VERSION = 3

_SPLIT_NAMES = ("train", "valid") + tuple(f"test_{s}" for s in SCENARIOS)
_DATA_ARRAYS = ("user_ids", "item_ids", "user_x", "item_x", "rating_user", "rating_item", "rating",
                "timestamp", "item_year", "item_titles")
_TASK_ARRAYS = ("user", "s_off", "s_items", "s_ratings", "q_off", "q_items", "q_ratings")


# ------------------------------------------------------------------ sources and keys
def source_dir(cfg: DataConfig, cache_dir=None, progress: bool = True) -> Path:
    """The folder the data set is read from: ``cfg.data_dir`` or the fetched copy in the cache."""
    if cfg.data_dir is not None:
        d = Path(cfg.data_dir).expanduser()
        if not d.is_dir():
            raise MamoError("data directory not found (expected a folder with the data set's files)", path=str(d))
        return d
    return Path(fetch_dataset(cfg.dataset, cache_dir=cache_dir, progress=progress))


def source_checksums(folder: Path) -> Dict[str, str]:
    """{file name: sha256} of the regular, non-hidden files directly in ``folder``.

    Hashing (about 1 GB/s) instead of parsing keeps a cache hit fast; it covers every file a
    reader could use, so a changed file always changes the key.
    """
    return {p.name: file_digest(p) for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".")}


def cache_key(checksums: Dict[str, str], cfg: DataConfig, seed: int) -> str:
    """sha256 hex of the inputs that determine the processed arrays."""
    payload = {"sources": sorted(checksums.items()), "protocol": cfg.protocol_key(), "seed": int(seed),
               "data_version": DATA_VERSION}
    return json_sha256(payload)


def processed_paths(key: str, cache_dir=None) -> Tuple[Path, Path]:
    """(npz path, json path) of the cache entry ``key``."""
    folder = Path(cache_root(cache_dir)) / "processed"
    return folder / f"{key}.npz", folder / f"{key}.json"


def load_raw(dataset: str, data_dir=None, format: Optional[str] = None, cache_dir=None, fetch: bool = True,
             progress: bool = True) -> RawDataset:
    """The RawDataset of ``dataset``: read from ``data_dir`` when given (format detected, or
    ``format``), else from the cached fetched copy (fetched first when absent and ``fetch``)."""
    if data_dir is not None:
        return read_folder(data_dir, format=format)
    if dataset not in known_datasets():
        raise MamoError(f"unknown data set {dataset!r}; known data sets: {', '.join(known_datasets())} "
                        "(or pass --data-dir with a folder of files in a supported format)")
    folder = (
        fetch_dataset(dataset, cache_dir=cache_dir, progress=progress) if fetch else cached_folder(dataset, cache_dir)
    )
    if folder is None:
        raise MamoError(
            f"data set {dataset!r} is not in the cache and fetching is off; run "
            f"`mamo-l2l data fetch {dataset}` or pass --data-dir with the files"
        )
    return read_folder(folder, format=format)


# ------------------------------------------------------------------ prepare
def prepare(
    cfg: DataConfig, seed: int, cache_dir=None, progress: bool = True, refresh: bool = False
) -> Tuple[EncodedDataset, Splits, FeatureEncoders]:
    """load_raw -> FeatureEncoders.fit/encode -> build_splits, served from the processed cache
    when an intact entry exists (``refresh=True`` rebuilds it anyway)."""
    cfg.validate()
    folder = source_dir(cfg, cache_dir, progress)
    key = cache_key(source_checksums(folder), cfg, seed)
    npz_path, json_path = processed_paths(key, cache_dir)
    if not refresh:
        hit = _read_entry(npz_path, json_path, key)
        if hit is not None:
            _say(progress, f"{cfg.dataset}: processed arrays from cache {npz_path.name[:12]}...")
            return _with_identity(hit, cfg)
    t0 = time.perf_counter()
    raw = load_raw(
        cfg.dataset, data_dir=str(folder), format=cfg.format, cache_dir=cache_dir, fetch=True, progress=progress
    )
    t1 = time.perf_counter()
    encoders = FeatureEncoders.fit(raw, cfg.min_count)
    data = encoders.encode(raw)
    data.item_titles = item_titles(raw, data.item_ids)
    del raw
    t2 = time.perf_counter()
    splits = build_splits(data, cfg, seed)
    t3 = time.perf_counter()
    _say(progress, f"{cfg.dataset}: read {t1 - t0:.1f} s, encode {t2 - t1:.1f} s, protocol {t3 - t2:.1f} s")
    try:
        _write_entry(npz_path, json_path, key, data, splits)
    except OSError as e:  # a read-only or full cache must not stop the run
        _say(progress, f"warning: could not write the processed cache ({e})")
    return _with_identity((data, splits, encoders), cfg)


def item_titles(raw, item_ids: np.ndarray) -> np.ndarray:
    """Display titles in item index order (str; "" where the files name none). Never a feature."""
    if raw.item_titles is None or not len(raw.item_titles):
        return np.full(len(item_ids), "", dtype=object).astype(str)
    return raw.item_titles.reindex(list(item_ids)).fillna("").to_numpy(dtype=object).astype(str)


def _with_identity(result, cfg: DataConfig):
    """After the protocol (it depends on the training split, never on a test rating): map feature
    values that no training user/item carries to UNKNOWN (features.restrict_to_training,
    docs/data.md section 3), then append the item identity field when configured
    (data/identity.py)."""
    data, splits, encoders = result
    train_users = np.unique(np.array([t.user for t in splits.train], dtype=np.int64))
    data, encoders = restrict_to_training(encoders, data, train_users, training_items(splits))
    if cfg.item_id_feature:
        data = add_item_identity(data, splits)
    return data, splits, encoders


def _say(progress: bool, message: str) -> None:
    if progress:  # the logger "mamo_l2l" (docs/operations.md, "Output")
        logging.getLogger("mamo_l2l").info(message)


# ------------------------------------------------------------------ writing
def _flatten(tasks: List[Task]) -> Dict[str, np.ndarray]:
    def off(parts):
        return np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)

    def cat(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    return {
        "user": np.array([t.user for t in tasks], dtype=np.int64),
        "s_off": off([t.support_items for t in tasks]),
        "s_items": cat([t.support_items for t in tasks], np.int64),
        "s_ratings": cat([t.support_ratings for t in tasks], np.float32),
        "q_off": off([t.query_items for t in tasks]),
        "q_items": cat([t.query_items for t in tasks], np.int64),
        "q_ratings": cat([t.query_ratings for t in tasks], np.float32),
    }


def _write_entry(npz_path: Path, json_path: Path, key: str, data: EncodedDataset, splits: Splits) -> None:
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(data, name) for name in _DATA_ARRAYS}
    # str ids as fixed-width unicode: object arrays would need pickle
    arrays["user_ids"] = np.asarray(data.user_ids, dtype=str)
    arrays["item_ids"] = np.asarray(data.item_ids, dtype=str)
    arrays["item_titles"] = np.asarray(
        data.item_titles if data.item_titles is not None else np.full(len(data.item_ids), ""), dtype=str
    )
    warm_is_train = splits.test["warm"] is splits.train
    lists = {"train": splits.train, "valid": splits.valid, **{f"test_{s}": splits.test[s] for s in SCENARIOS}}
    for name, tasks in lists.items():
        if name == "test_warm" and warm_is_train:
            continue
        for k, v in _flatten(tasks).items():
            arrays[f"{name}__{k}"] = v
    meta = {
        "key": key,
        "data_version": DATA_VERSION,
        "name": data.name,
        "rating_range": list(data.rating_range),
        "fingerprint": data.fingerprint,
        "user_layout": [fl.__dict__ for fl in data.user_layout],
        "item_layout": [fl.__dict__ for fl in data.item_layout],
        "encoders": data.encoders,
        "counts": splits.counts,
        "item_year_cutoff": splits.item_year_cutoff,
        "warm_is_train": warm_is_train,
    }
    # write to temporary names, then rename: a crash never leaves a half entry under the real name
    tmp = f".tmp{os.getpid()}"
    tmp_npz = npz_path.with_name(npz_path.name + tmp)
    with open(tmp_npz, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp_npz, npz_path)
    meta["npz_size"] = npz_path.stat().st_size
    tmp_json = json_path.with_name(json_path.name + tmp)
    tmp_json.write_text(json.dumps(meta), encoding="utf-8")
    os.replace(tmp_json, json_path)


# ------------------------------------------------------------------ reading
def _unflatten(a: Dict[str, np.ndarray]) -> List[Task]:
    s_items, s_ratings = np.split(a["s_items"], a["s_off"][1:-1]), np.split(a["s_ratings"], a["s_off"][1:-1])
    q_items, q_ratings = np.split(a["q_items"], a["q_off"][1:-1]), np.split(a["q_ratings"], a["q_off"][1:-1])
    if len(a["user"]) == 0:
        return []
    return [Task(int(u), s_items[k], s_ratings[k], q_items[k], q_ratings[k]) for k, u in enumerate(a["user"])]


def _read_entry(npz_path: Path, json_path: Path, key: str):
    """(data, splits, encoders) from an intact entry, else None (missing, stale or corrupt)."""
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
        if meta.get("key") != key or meta.get("data_version") != DATA_VERSION:
            return None
        if npz_path.stat().st_size != meta["npz_size"]:
            return None
        with np.load(npz_path, allow_pickle=False) as z:
            arrays = {name: z[name] for name in z.files}  # reads every member: CRC-checked
        data = EncodedDataset(
            name=meta["name"],
            user_ids=arrays["user_ids"],
            item_ids=arrays["item_ids"],
            user_x=arrays["user_x"],
            item_x=arrays["item_x"],
            user_layout=tuple(FieldLayout(**fl) for fl in meta["user_layout"]),
            item_layout=tuple(FieldLayout(**fl) for fl in meta["item_layout"]),
            rating_user=arrays["rating_user"],
            rating_item=arrays["rating_item"],
            rating=arrays["rating"],
            timestamp=arrays["timestamp"],
            item_year=arrays["item_year"],
            rating_range=tuple(meta["rating_range"]),
            fingerprint=meta["fingerprint"],
            encoders=meta["encoders"],
            item_titles=arrays["item_titles"],
        )
        lists = {}
        for name in _SPLIT_NAMES:
            if name == "test_warm" and meta["warm_is_train"]:
                continue
            part = {k: arrays[f"{name}__{k}"] for k in _TASK_ARRAYS}
            if part["s_off"][-1] != len(part["s_items"]) or part["q_off"][-1] != len(part["q_items"]):
                return None
            lists[name] = _unflatten(part)
        if meta["warm_is_train"]:
            lists["test_warm"] = lists["train"]
        splits = Splits(
            train=lists["train"],
            valid=lists["valid"],
            test={s: lists[f"test_{s}"] for s in SCENARIOS},
            item_year_cutoff=meta["item_year_cutoff"],
            counts=meta["counts"],
        )
        return data, splits, FeatureEncoders.from_dict(meta["encoders"])
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 -- any unreadable entry (bad zip, bad json, missing array) is rebuilt
        return None
