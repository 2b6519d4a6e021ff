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
Floor = epoch FLOPs / rate; gap = measured epoch seconds / floor. ``--profile`` then runs as many
meta-batches again under torch.profiler and prints the self CPU time per op class (matrix products,
element-wise ops, gathers, copies, views, the optimizer, autograd nodes), extrapolated to the epoch.
"""
from __future__ import annotations

import argparse
import re
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


#: op classes of the profile (``--profile``): the first whose regular expression matches the
#: profiled op's name after "aten::" (other records: autograd nodes, the optimizer's step)
OP_CLASSES = (
    ("matrix products", r"(mm|bmm|addmm|baddbmm|addbmm|matmul|linear|dot)$"),
    ("optimizer (Adam's foreach ops)", r"_foreach"),
    ("gather, scatter, embedding, index", r"(index|gather|scatter|embedding|take|masked_select)"),
    ("copies, concatenation, new tensors", r"(copy|cat|stack|clone|contiguous|empty|zeros|ones|full|fill|"
                                           r"_to_copy|to|new_\w+|expand|resize_?)(_|$)"),
    ("views and shape", r"(view|reshape|permute|transpose|select|slice|squeeze|unsqueeze|as_strided|unbind|"
                        r"split|narrow|t|alias|detach|_unsafe_view|_reshape_alias|expand_as)(_|$)"),
)


TOP_OPS = 12


def op_class(name: str) -> str:
    if not name.startswith("aten::"):
        return "autograd nodes and the optimizer's own records"
    base = name[len("aten::"):]
    for label, pattern in OP_CLASSES:
        if re.match(pattern, base):
            return label
    return "element-wise and reductions"


def profile(epochs: MetaEpochs, sampler, start: int, stop: int) -> dict:
    """Self CPU seconds per op class (torch.profiler) over meta-batches [start, stop), with the
    window's wall time: what the aten ops took, and what lay outside them (Python, dispatch)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        tasks = _window(epochs, sampler, start, stop)
        wall = time.perf_counter() - t0
    per_class, per_op = defaultdict(float), {}
    for evt in prof.key_averages():
        if evt.key.startswith(("aten::", "autograd::", "Optimizer")) or "Backward" in evt.key:
            per_class[op_class(evt.key)] += evt.self_cpu_time_total / 1e6
            per_op[evt.key] = (evt.self_cpu_time_total / 1e6, evt.count)
    top = sorted(per_op.items(), key=lambda kv: -kv[1][0])[:TOP_OPS]
    return {"tasks": tasks, "wall": wall, "per_class": dict(per_class), "top": top}


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
    profiled = profile(epochs, sampler, w + 2 * n, w + 3 * n) if args.profile else None
    tasks = len(bundle.splits.train)
    flops = counter.get_total_flops() / counted_tasks * tasks
    rate = gemm_rate(args.gemm)
    epoch_s = timed / timed_tasks * tasks
    return {"tasks": tasks, "threads": torch.get_num_threads(), "flops": flops, "per_op": dict(per_op),
            "counted_tasks": counted_tasks, "rate": rate, "profile": profiled,
            "floor_s": flops / (rate * 1e9), "epoch_s": epoch_s}


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
    ap.add_argument("--profile", action="store_true",
                    help="then as many meta-batches under torch.profiler: self CPU time per op class")
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
    if r["profile"]:
        print_profile(r["profile"], r["tasks"])


def print_profile(p: dict, tasks: int) -> None:
    """The profile's table, each class's self CPU time extrapolated to the epoch."""
    scale = tasks / max(p["tasks"], 1)
    inside = sum(p["per_class"].values())
    print(f"\ntorch.profiler over {p['tasks']} tasks (profiled wall {p['wall'] * scale:.3g} s per epoch; the "
          "profiler's own cost included), self CPU time per op class, extrapolated to the epoch:\n")
    print("| op class | s per epoch | share of the ops |\n| --- | ---: | ---: |")
    for label, sec in sorted(p["per_class"].items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {sec * scale:.3g} | {100 * sec / max(inside, 1e-12):.0f}% |")
    print(f"| all ops (self CPU, every thread) | {inside * scale:.3g} | 100% |")
    print(f"\nthe {TOP_OPS} largest ops:\n\n| op | s per epoch | calls per epoch |\n| --- | ---: | ---: |")
    for name, (sec, calls) in p["top"]:
        print(f"| {name} | {sec * scale:.3g} | {calls * scale:.0f} |")


if __name__ == "__main__":
    main()
