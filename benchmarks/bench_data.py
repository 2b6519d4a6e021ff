"""Time the data pipeline (read + encode + protocol) from raw files and from the processed cache.

    python benchmarks/bench_data.py --dataset ml-1m
    python benchmarks/bench_data.py --dataset ml-100k --data-dir ../shared/data/ml-100k

Prints one table: seconds per stage from raw files, seconds from cache (measured in a fresh
process so it pays every import and read), peak RSS (resource.getrusage) of each process.
Targets: MovieLens-1M < 15 s raw, < 2 s cached; Book-Crossing < 60 s raw; peak < 2 GiB.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cfg_of(args):
    from mamo_l2l.core.config import DataConfig
    return DataConfig(dataset=args.dataset, data_dir=args.data_dir, format=args.format)


def run_raw(args) -> dict:
    from mamo_l2l.data.features import FeatureEncoders
    from mamo_l2l.data.prepare import load_raw, prepare, source_dir
    from mamo_l2l.data.protocol import build_splits
    cfg = cfg_of(args)
    folder = source_dir(cfg, args.cache_dir, progress=False)
    t0 = time.perf_counter()
    raw = load_raw(cfg.dataset, data_dir=str(folder), format=cfg.format, cache_dir=args.cache_dir,
                   fetch=True, progress=False)
    t1 = time.perf_counter()
    data = FeatureEncoders.fit(raw, cfg.min_count).encode(raw)
    t2 = time.perf_counter()
    splits = build_splits(data, cfg, args.seed)
    t3 = time.perf_counter()
    n_ratings = len(raw.ratings)
    del raw, data, splits
    # prepare() = the same three stages + hashing the sources + writing the cache entry
    t4 = time.perf_counter()
    prepare(cfg, args.seed, cache_dir=args.cache_dir, progress=False, refresh=True)
    t5 = time.perf_counter()
    return {"ratings": n_ratings, "read_s": t1 - t0, "encode_s": t2 - t1, "protocol_s": t3 - t2,
            "prepare_write_s": t5 - t4, "peak_rss_mib": peak_rss_mib()}


def run_cached(args) -> dict:
    t0 = time.perf_counter()
    from mamo_l2l.data.prepare import prepare
    _, splits, _ = prepare(cfg_of(args), args.seed, cache_dir=args.cache_dir, progress=False)
    return {"cached_s": time.perf_counter() - t0, "train_tasks": len(splits.train),
            "peak_rss_mib": peak_rss_mib()}


def child(args, phase: str) -> dict:
    cmd = [sys.executable, __file__, "--phase", phase, "--dataset", args.dataset, "--seed", str(args.seed)]
    for flag, value in (("--data-dir", args.data_dir), ("--format", args.format), ("--cache-dir", args.cache_dir)):
        if value is not None:
            cmd += [flag, value]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{phase} phase failed:\n{done.stderr}")
    return json.loads(done.stdout)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--format")
    p.add_argument("--cache-dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phase", choices=["all", "raw", "cached"], default="all", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.phase != "all":
        print(json.dumps(run_raw(args) if args.phase == "raw" else run_cached(args)))
        return
    # Each phase runs in its own child of this light parent: Linux carries ru_maxrss over fork
    # and exec, so a child of a heavy process would report the parent's peak as its own.
    raw, cached = (child(args, phase) for phase in ("raw", "cached"))
    raw_total = raw["read_s"] + raw["encode_s"] + raw["protocol_s"]
    rows = [
        ("data set", args.dataset), ("ratings", f"{raw['ratings']:,}"),
        ("read raw files (s)", f"{raw['read_s']:.2f}"), ("fit + encode (s)", f"{raw['encode_s']:.2f}"),
        ("protocol (s)", f"{raw['protocol_s']:.2f}"), ("raw total (s)", f"{raw_total:.2f}"),
        ("prepare(), raw + cache write (s)", f"{raw['prepare_write_s']:.2f}"),
        ("prepare(), from cache, incl. imports (s)", f"{cached['cached_s']:.2f}"),
        ("peak RSS raw process (MiB)", f"{raw['peak_rss_mib']:.0f}"),
        ("peak RSS cached process (MiB)", f"{cached['peak_rss_mib']:.0f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v:>12}")


if __name__ == "__main__":
    main()
