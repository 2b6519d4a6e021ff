"""Scale benchmark (docs/distributed.md): the data pipeline, meta-training with 1 and N processes,
and evaluation, on a data set in any supported format (e.g. `mamo-l2l data synth --scale 10`).

    python benchmarks/bench_scale.py --data-dir /tmp/synth10 --format atomic --procs 1,2 --batches 200

Prints, one line per measure:
* data: the whole pipeline (read, encode, protocol; the processed cache is bypassed) in a fresh
  process: wall seconds and that process's peak resident memory; then the cached load (what every
  rank of a distributed run does) in another fresh process;
* train: for each process count N, ``--batches`` global meta-batches of MAMO (func backend unless
  --backend) in N processes started the way torchrun starts them (one thread each unless
  --threads), after ``--warmup`` batches; global tasks/s;
* eval: the 1-process run's evaluation of the four test scenarios (no catalogue ranking unless
  --catalogue): seconds and tasks/s.

Wall seconds and the CPU seconds of the measuring process are both printed: on a shared machine a
wall time far above the CPU time (for one thread) means the process waited for a core (or was
stopped).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def _config(args):
    import mamo_l2l as ml
    cfg = ml.load_config(args.config).override("data", dataset=args.dataset, data_dir=args.data_dir,
                                                format=args.format)
    return cfg.override("train", backend=args.backend, meta_batch_size=args.meta_batch_size, seed=args.seed)


# ------------------------------------------------------------------ data (one fresh process per measure)
def data_child(args) -> None:
    import logging
    import resource

    from mamo_l2l.data.prepare import prepare
    cfg = _config(args)
    stages = []

    class Stages(logging.Handler):   # prepare() logs "NAME: read X s, encode Y s, protocol Z s"
        def emit(self, record):
            stages.append(record.getMessage().split(": ", 1)[-1])
    logger = logging.getLogger("mamo_l2l")
    logger.addHandler(Stages())
    logger.setLevel(logging.INFO)
    started = time.perf_counter()
    data, splits, _ = prepare(cfg.data, cfg.train.seed, cache_dir=args.cache_dir, progress=True,
                              refresh=args.refresh)
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "stages": "; ".join(m for m in stages if m.startswith("read ")),
                "ratings": int(len(data.rating)),
                "users": int(len(data.user_ids)),
                "items": int(len(data.item_ids)),
                "train_tasks": len(splits.train),
            }
        )
    )


def run_data(args) -> None:
    for refresh in (True, False):
        cmd = [sys.executable, str(HERE), "--data-child", *(["--refresh"] if refresh else []), *_common(args)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=_env(1)).stdout
        r = json.loads(out.strip().splitlines()[-1])
        what = "pipeline (read+encode+protocol)" if refresh else "cached load"
        print(
            f"data {what}: {r['seconds']:.1f} s wall ({r['cpu_seconds']:.1f} s CPU), "
            f"peak memory {r['peak_mib']:.0f} MiB "
            f"({r['ratings']:,} ratings, {r['users']:,} users, {r['items']:,} items, "
            f"{r['train_tasks']:,} training tasks){' ' + r['stages'] if r['stages'] else ''}",
            flush=True,
        )


# ------------------------------------------------------------------ training (N worker processes)
def train_worker(args) -> None:
    import torch

    import mamo_l2l as ml
    from mamo_l2l.training import distributed
    from mamo_l2l.training.fit import MetaEpochs, make_optimizer
    from mamo_l2l.training.run import build_run, training_user_rows

    world = distributed.init_from_env()
    cfg = _config(args).override("train", threads=args.threads)
    if not world.is_main:
        world.barrier()  # rank 0 fills the processed cache first
    bundle = ml.load_data(cfg, cache_dir=args.cache_dir, progress=False)
    if world.is_main:
        world.barrier()
    run = build_run(bundle, cfg, "mamo")
    run.algorithm.begin_training(training_user_rows(bundle), cfg.train.seed)
    world.broadcast_module(run.model)
    epochs = MetaEpochs(run, make_optimizer(run.model, cfg))
    whole = epochs.sampler.epoch
    epochs.sampler.epoch = lambda e: itertools.islice(whole(e), args.warmup)
    epochs.run_epoch(1)
    epochs.sampler.epoch = lambda e: itertools.islice(whole(e), args.warmup, args.warmup + args.batches)
    world.barrier()
    started, cpu = time.perf_counter(), time.process_time()
    losses = epochs.run_epoch(1)
    world.barrier()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    result = {
        "procs": world.size,
        "threads": torch.get_num_threads(),
        "batches": len(losses),
        "seconds": seconds,
        "cpu_seconds": cpu,
        "tasks_per_s": len(losses) * cfg.train.meta_batch_size / seconds,
        "loss": float(sum(losses) / len(losses)),
    }
    if world.is_main and args.evaluate:
        started, cpu = time.perf_counter(), time.process_time()
        metrics = ml.evaluate(run, catalogue=args.catalogue)
        result["eval_seconds"] = time.perf_counter() - started
        result["eval_cpu_seconds"] = time.process_time() - cpu
        result["eval_tasks"] = sum(s["users"] for s in metrics["scenarios"].values())
        result["catalogue_seconds"] = metrics["timing"]["catalogue_seconds"]
    if world.is_main:
        print(json.dumps(result), flush=True)
    distributed.shutdown()


def run_train(args) -> None:
    for n in [int(p) for p in args.procs.split(",")]:
        port = _free_port()
        procs = []
        for rank in range(n):
            env = _env(
                args.threads,
                WORLD_SIZE=n,
                RANK=rank,
                LOCAL_RANK=rank,
                LOCAL_WORLD_SIZE=n,
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
            )
            cmd = [
                sys.executable,
                str(HERE),
                "--train-worker",
                *_common(args),
                *(["--evaluate"] if rank == 0 and n == 1 and args.evaluate else []),
            ]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True))
        outs = [p.communicate()[0] for p in procs]
        if any(p.returncode for p in procs):
            raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
        r = json.loads(outs[0].strip().splitlines()[-1])
        print(
            f"train {r['procs']} process(es) x {r['threads']} thread(s): {r['batches']} meta-batches of "
            f"{args.meta_batch_size} in {r['seconds']:.1f} s = {r['tasks_per_s']:.0f} tasks/s "
            f"(rank 0: {r['cpu_seconds']:.1f} s CPU) "
            f"(mean loss {r['loss']:.4f})",
            flush=True,
        )
        if "eval_seconds" in r:
            print(
                f"eval (1 process): {r['eval_tasks']:,} test tasks in {r['eval_seconds']:.1f} s "
                f"({r['eval_tasks'] / r['eval_seconds']:.0f} tasks/s, {r['eval_cpu_seconds']:.1f} s CPU; "
                f"catalogue ranking "
                f"{r['catalogue_seconds']:.1f} s)",
                flush=True,
            )


# ------------------------------------------------------------------ plumbing
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(threads, **extra):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _common(args):
    out = [
        "--dataset",
        args.dataset,
        "--data-dir",
        args.data_dir,
        "--seed",
        str(args.seed),
        "--batches",
        str(args.batches),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--meta-batch-size",
        str(args.meta_batch_size),
        "--backend",
        args.backend,
    ]
    for flag, value in (("--format", args.format), ("--cache-dir", args.cache_dir), ("--config", args.config)):
        if value is not None:
            out += [flag, value]
    return out + (["--catalogue"] if args.catalogue else [])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default="synth")
    ap.add_argument("--format", default=None)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--config", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="func")
    ap.add_argument("--procs", default="1,2", help="process counts to train with (comma-separated)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--batches", type=int, default=200, help="timed meta-batches")
    ap.add_argument("--warmup", type=int, default=5, help="untimed meta-batches first")
    ap.add_argument("--meta-batch-size", type=int, default=32)
    ap.add_argument("--skip", default="", help="comma-separated: data, train, eval")
    ap.add_argument("--catalogue", action="store_true", help="also time the catalogue ranking")
    ap.add_argument("--refresh", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--evaluate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--train-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.data_child:
        return data_child(args)
    if args.train_worker:
        return train_worker(args)
    skip = set(filter(None, args.skip.split(",")))
    args.evaluate = "eval" not in skip
    if "data" not in skip:
        run_data(args)
    if "train" not in skip:
        run_train(args)


if __name__ == "__main__":
    main()
