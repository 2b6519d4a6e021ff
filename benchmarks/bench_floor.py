"""The floor of one training epoch: its FLOPs over this machine's matrix-multiply rate.

    python benchmarks/bench_floor.py                          # ML-1M (cached), shipped default, func
    python benchmarks/bench_floor.py --threads 1 --batches 40
    python benchmarks/bench_floor.py --dataset synth --data-dir DIR --format atomic --batches 3   # (tests)

What it does, in one process (docs/performance.md, "The floor of an epoch"):
1. builds the shipped default MAMO on the data set exactly as ``fit`` does (ALS starts included,
   not timed here) and runs the first ``--warmup`` meta-batches of epoch 1 untimed;
2. times the next ``--batches`` meta-batches through ``fit``'s own epoch code (forward, backward,
   the outer step and the memory writes) and extrapolates to the epoch's tasks;
3. runs the same number of the following meta-batches under ``torch.utils.flop_counter.FlopCounterMode``
   (forward and backward: the matrix products, which is what the counter counts; element-wise
   ops are left out, so the floor is a lower bound) and extrapolates to the epoch;
4. measures the machine's float32 matrix-multiply rate (square ``--gemm``-sized products, best of
   several) with the same thread count.
Floor = epoch FLOPs / rate; gap = measured epoch seconds / floor.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from itertools import islice

import torch
from torch.utils.flop_counter import FlopCounterMode

import mamo_l2l as ml
from mamo_l2l.training.fit import MetaEpochs, make_optimizer
from mamo_l2l.training.run import build_run, training_user_rows


def gemm_rate(n: int, seconds: float = 1.0) -> float:
    """Best float32 GFLOP/s of an n x n x n product over ``seconds`` of repeats."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best, deadline = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n ** 3 / (time.perf_counter() - t0) / 1e9)
    return best


class Fixed:
    """A sampler that hands MetaEpochs these meta-batches (a window of epoch 1's)."""

    def __init__(self, groups):
        self.groups = groups

    def epoch(self, epoch: int):
        return iter(self.groups)


def _window(epochs: MetaEpochs, sampler, start: int, stop: int) -> int:
    """Run meta-batches [start, stop) of epoch 1 through the epoch code; the tasks they held."""
    groups = list(islice(sampler.epoch(1), start, stop))
    epochs.sampler = Fixed(groups)
    epochs.run_epoch(1)
    return sum(len(g) for g in groups)


def measure(args) -> dict:
    cfg = ml.load_config(None).override("data", dataset=args.dataset, data_dir=args.data_dir, format=args.format)
    cfg = cfg.override("train", epochs=1, seed=0, threads=args.threads, backend=args.backend).validate()
    bundle = ml.load_data(cfg, progress=False)
    run = build_run(bundle, cfg, "mamo")
    run.algorithm.begin_training(training_user_rows(bundle), cfg.train.seed)
    run.model.train()
    begin_epoch = getattr(run.model, "begin_epoch", None)
    if begin_epoch is not None:
        begin_epoch(cfg.model.identity_dropout, cfg.train.seed, 1)
    epochs = MetaEpochs(run, make_optimizer(run.model, cfg))
    sampler, w, n = epochs.sampler, args.warmup, args.batches
    _window(epochs, sampler, 0, w)
    t0 = time.perf_counter()
    timed_tasks = _window(epochs, sampler, w, w + n)
    timed = time.perf_counter() - t0
    with FlopCounterMode(display=False) as counter:
        counted_tasks = _window(epochs, sampler, w + n, w + 2 * n)
    per_op = defaultdict(int)
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        per_op[str(op).split(".")[1] if "." in str(op) else str(op)] += flops
    tasks = len(bundle.splits.train)
    flops = counter.get_total_flops() / counted_tasks * tasks
    rate = gemm_rate(args.gemm)
    epoch_s = timed / timed_tasks * tasks
    return {"tasks": tasks, "threads": torch.get_num_threads(), "flops": flops, "per_op": dict(per_op),
            "counted_tasks": counted_tasks, "rate": rate, "floor_s": flops / (rate * 1e9), "epoch_s": epoch_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--format", default=None)
    ap.add_argument("--backend", default="func")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = the run's automatic choice)")
    ap.add_argument("--warmup", type=int, default=5, help="untimed meta-batches first")
    ap.add_argument("--batches", type=int, default=30, help="meta-batches timed, then as many counted")
    ap.add_argument("--gemm", type=int, default=1024, help="size of the square products that measure the rate")
    args = ap.parse_args()
    r = measure(args)
    total = sum(r["per_op"].values()) or 1
    print(f"command: {' '.join(['python', *sys.argv])}")
    print(f"{args.dataset}, shipped default, backend {args.backend}, {r['threads']} thread(s); "
          f"FLOPs counted over {r['counted_tasks']} tasks, extrapolated to the epoch's {r['tasks']}\n")
    print("| figure | value |\n| --- | ---: |")
    print(f"| matrix-product FLOPs of one epoch (forward + backward) | {r['flops'] / 1e9:.4g} GFLOP |")
    for op, flops in sorted(r["per_op"].items(), key=lambda kv: -kv[1]):
        print(f"| of which {op} | {100 * flops / total:.0f}% |")
    print(f"| float32 matrix-multiply rate ({args.gemm}^3, best) | {r['rate']:.1f} GFLOP/s |")
    print(f"| floor: epoch FLOPs / rate | {r['floor_s']:.3g} s |")
    print(f"| measured epoch (extrapolated from {args.batches} meta-batches) | {r['epoch_s']:.3g} s |")
    print(f"| gap: measured / floor | {r['epoch_s'] / max(r['floor_s'], 1e-12):.1f}x |")


if __name__ == "__main__":
    main()
