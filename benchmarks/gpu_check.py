"""The device check (docs/performance.md, "GPU"): one table of what a device does with MAMO.

    python benchmarks/gpu_check.py --device cuda [--data-dir DIR] [--synth-scale 10] [--procs 1,2,4]
    python benchmarks/gpu_check.py --device cpu --quick --data-dir DIR   # the CPU dry run (tests)

Rows, each printed with what made it (the library API with these settings):
* ``epoch``: one training epoch of the default MAMO with the func backend, at 1 and 5 local steps
  (5 with ``train.local_clip: 10``) and meta-batch 32 and 256: seconds and tasks/s, and the same
  epoch with the l2l backend at 1 and 5 steps (func / l2l ratio); then func at 9 first-order
  local steps (clipped as 5), the authors' setting;
* ``evaluate``: the 1-step, meta-batch-32 run's evaluation of the four test scenarios and its
  catalogue ranking (references included): seconds;
* ``synthetic``: one epoch on a synthetic MovieLens-shaped data set ``--synth-scale`` times ML-1M
  (``mamo-l2l data synth``);
* ``peak``: the peak device memory of the process (CUDA) or its peak resident memory (CPU);
* ``torchrun``: benchmarks/bench_scale.py on the same data with 1, 2, 4 CPU processes (tasks/s).
``--quick``: every row on a small synthetic data set (epochs still whole), a dry run of the script.
``--rows epoch,peak``: only those rows (e.g. the func / l2l ratios on a CPU machine).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mamo_l2l as ml
from mamo_l2l.training.run import peak_device_memory_mib, peak_memory_mib

HERE = Path(__file__).resolve()
ROWS = []
ROW_NAMES = ("epoch", "evaluate", "synthetic", "peak", "torchrun")


def row(name: str, setting: str, value: str) -> None:
    ROWS.append((name, setting, value))
    print(f"  {name:<10} {setting:<44} {value}", flush=True)


def _config(args, **train):
    cfg = ml.load_config(None).override("data", dataset=args.dataset, data_dir=args.data_dir, format=args.format)
    cfg = cfg.override("train", device=args.device, epochs=1, seed=0, threads=args.threads, **train)
    return cfg.override("model", choice_prior=False)   # the epoch rows time training, not the weight grid


def epoch_rows(args, bundle) -> object:
    """The epoch rows; returns the 1-step, meta-batch-32 func run (for the evaluate row)."""
    keep, seconds = None, {}
    for backend in ("func", "l2l"):
        for steps in (1, 5):
            for batch in ((32, 256) if backend == "func" else (32,)):
                clip = 10.0 if steps > 1 else 0.0
                cfg = _config(args, backend=backend, local_steps=steps, local_clip=clip, meta_batch_size=batch)
                run = ml.fit(bundle, cfg, model_name="mamo", progress=False)
                t = run.timing
                seconds[backend, steps, batch] = t["train_seconds"]
                row("epoch", f"{backend}, {steps} local step(s), meta-batch {batch}",
                    f"{t['train_seconds']:.2f} s, {t['train_tasks_per_s']:.0f} tasks/s")
                if (backend, steps, batch) == ("func", 1, 32):
                    keep = run
    for steps in (1, 5):
        row("epoch", f"func / l2l at {steps} local step(s), meta-batch 32",
            f"{seconds['l2l', steps, 32] / max(seconds['func', steps, 32], 1e-9):.1f}x")
    # the authors' setting: 9 first-order local steps (docs/performance.md compares their tasks/s)
    t = ml.fit(bundle, _config(args, local_steps=9, first_order=True, local_clip=10.0), model_name="mamo").timing
    row("epoch", "func, 9 first-order local steps, meta-batch 32",
        f"{t['train_seconds']:.2f} s, {t['train_tasks_per_s']:.0f} tasks/s")
    return keep


def evaluate_row(run) -> None:
    t = ml.evaluate(run)["timing"]
    row("evaluate", "four scenarios, then the catalogue with references",
        f"{t['eval_seconds']:.2f} s, catalogue {t['catalogue_seconds']:.2f} s")


def synthetic_row(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _synth(args.synth_scale, tmp)
        cfg = _config(args).override("data", dataset="synth", data_dir=tmp, format="atomic")
        started = time.perf_counter()
        bundle = ml.load_data(cfg, progress=False)
        loaded = time.perf_counter() - started
        run = ml.fit(bundle, cfg, model_name="mamo", progress=False)
        t = run.timing
        row("synthetic", f"scale {args.synth_scale:g} ({len(bundle.splits.train)} training users), 1 epoch",
            f"{t['train_seconds']:.2f} s, {t['train_tasks_per_s']:.0f} tasks/s (data {loaded:.1f} s)")


def torchrun_rows(args) -> None:
    if not args.data_dir:
        row("torchrun", "skipped", "needs --data-dir")
        return
    cmd = [sys.executable, str(HERE.parent / "bench_scale.py"), "--data-dir", args.data_dir, "--dataset",
           args.dataset, "--procs", args.procs, "--batches", str(args.batches), "--skip", "data,eval"]
    if args.format:
        cmd += ["--format", args.format]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.startswith("train"):
            row("torchrun", line.split(":")[0], line.split(":", 1)[-1].strip())
    print(f"  (command: {' '.join(cmd)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--format", default=None)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--synth-scale", type=float, default=10.0)
    ap.add_argument("--procs", default="1,2,4")
    ap.add_argument("--batches", type=int, default=100, help="timed meta-batches per torchrun measure")
    ap.add_argument("--quick", action="store_true", help="a dry run: small synthetic data, few batches")
    ap.add_argument("--rows", default=",".join(ROW_NAMES), help="the rows to run, comma-separated")
    args = ap.parse_args()
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = sorted(set(args.rows) - set(ROW_NAMES))
    if unknown or ("evaluate" in args.rows and "epoch" not in args.rows):
        ap.error(f"--rows: choose from {', '.join(ROW_NAMES)} (evaluate needs epoch); got {', '.join(args.rows)}")
    with tempfile.TemporaryDirectory() as tmp:
        if args.quick:   # every row on a small synthetic data set
            args.synth_scale, args.procs, args.batches = 0.05, "1", 3
            _synth(args.synth_scale, tmp)
            args.dataset, args.data_dir, args.format = "synth", tmp, "atomic"
        check(args)


def _synth(scale: float, out: str) -> None:
    subprocess.run([sys.executable, "-m", "mamo_l2l", "data", "synth", "--scale", str(scale), "--out", out],
                   check=True, capture_output=True)


def check(args) -> None:
    print(f"device check: {args.device}, data {args.dataset} {args.data_dir or '(cache)'}; "
          f"command: {' '.join(sys.argv)}", flush=True)
    if "epoch" in args.rows:
        run = epoch_rows(args, ml.load_data(_config(args), progress=False))
        if "evaluate" in args.rows:
            evaluate_row(run)
    if "synthetic" in args.rows:
        synthetic_row(args)
    if "peak" in args.rows:
        peak = peak_device_memory_mib(args.device)
        row("peak", "device memory" if peak is not None else "resident memory (no device counter)",
            f"{peak if peak is not None else peak_memory_mib():.0f} MiB")
    if "torchrun" in args.rows:
        torchrun_rows(args)
    print("\n| row | setting | value |\n| --- | --- | --- |")
    for name, setting, value in ROWS:
        print(f"| {name} | {setting} | {value} |")


if __name__ == "__main__":
    main()
