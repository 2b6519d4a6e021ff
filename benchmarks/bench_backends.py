"""Speed and memory of the meta-learning backends (l2l, higher, func) on MovieLens-1M-shaped data.

    python benchmarks/bench_backends.py                         # all backends x (mamo, maml), a few minutes
    python benchmarks/bench_backends.py --train-tasks 320 --eval-tasks 512 --backends l2l,func
    python benchmarks/bench_backends.py --full-eval             # also time evaluating all four scenarios
    python benchmarks/bench_backends.py --profile               # where func's time goes (torch.profiler + cProfile)
    python benchmarks/bench_backends.py --device cuda

The data set is synthetic, shaped like MovieLens-1M (no file needed): 6,040 users, 3,706 items,
about 1M ratings with a heavy-tailed count per user (min 20, median ~96, like ML-1M), users with
gender / age / occupation / zip-prefix fields, items with a release year and up to 6 genres of 18;
the cold-start protocol (default DataConfig: tasks of 13-100 ratings, 10 query) splits it into
training tasks and the four test scenarios, exactly as for the real data.

Each (backend, model) runs in a fresh process (so the peak memory is its own): meta-training on
the first ``--train-tasks`` tasks of epoch 1 (meta-batch 32, default inner loop: 1 second-order
step), after ``--warmup`` untimed batches; then evaluation of ``--eval-tasks`` test tasks drawn
from all four scenarios. Seconds per epoch and "all four scenarios" are extrapolated from the
measured rates unless ``--full-eval`` times the real thing. Ratios are to l2l in the same run.
With ``--repeat N`` every (backend, model) runs N times, interleaved, and the best figures are kept
(on a machine shared with other jobs, the least disturbed run).
Peak memory: CPU = the process's peak RSS (ru_maxrss) minus its RSS after loading the data;
CUDA = torch.cuda.max_memory_allocated.
"""
from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_USERS, N_ITEMS, N_GENRES = 6040, 3706, 18


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ the synthetic data set
def _layout(widths_vocabs):
    from mamo_l2l.data.types import FieldLayout
    out, start = [], 0
    for name, width, vocab, multi in widths_vocabs:
        out.append(FieldLayout(name, start, start + width, vocab, multi))
        start += width
    return tuple(out)


def ml1m_like(seed: int = 0):
    """An EncodedDataset shaped like MovieLens-1M (see the module docstring)."""
    from mamo_l2l.data.types import FIRST_VALUE, EncodedDataset
    rng = np.random.default_rng(seed)
    # user fields: gender (2), age (7), occupation (21), zip prefix (100)
    user_vocab = {"gender": 2, "age": 7, "occupation": 21, "zip": 100}
    user_x = np.stack([FIRST_VALUE + rng.integers(0, v, N_USERS) for v in user_vocab.values()], 1)
    user_layout = _layout([(k, 1, v + FIRST_VALUE, False) for k, v in user_vocab.items()])
    # items: release year (1919-2000, most in the 1990s) and 1-6 genres of 18
    year = np.clip(2000 - np.floor(rng.exponential(9.0, N_ITEMS)), 1919, 2000)
    n_genres = np.clip(rng.geometric(0.55, N_ITEMS), 1, 6)
    genres = np.zeros((N_ITEMS, 6), np.int64)
    for i in range(N_ITEMS):
        genres[i, :n_genres[i]] = FIRST_VALUE + rng.choice(N_GENRES, n_genres[i], replace=False)
    item_x = np.concatenate([(FIRST_VALUE + year - 1919).astype(np.int64)[:, None], genres], 1)
    item_layout = _layout([("release_year", 1, 82 + FIRST_VALUE, False), ("genres", 6, N_GENRES + FIRST_VALUE, True)])
    # ratings: heavy-tailed count per user, Zipf-like item popularity (Gumbel top-k sampling)
    counts = np.clip(np.round(np.exp(rng.normal(np.log(96), 1.0, N_USERS))), 20, 2000).astype(np.int64)
    log_pop = -0.8 * np.log(1 + rng.permutation(N_ITEMS))
    users, items = [], []
    for start in range(0, N_USERS, 500):
        stop = min(start + 500, N_USERS)
        keys = log_pop + rng.gumbel(size=(stop - start, N_ITEMS))
        order = np.argsort(-keys, axis=1)
        for u in range(start, stop):
            chosen = np.sort(order[u - start, :counts[u]])
            users.append(np.full(len(chosen), u))
            items.append(chosen)
    rating_user, rating_item = np.concatenate(users), np.concatenate(items)
    rating = rng.choice(5, len(rating_user), p=[0.06, 0.11, 0.26, 0.35, 0.22]).astype(np.float32) + 1
    return EncodedDataset(
        "synthetic-ml-1m", np.arange(N_USERS).astype(str), np.arange(N_ITEMS).astype(str),
        user_x.astype(np.int64), item_x, user_layout, item_layout, rating_user.astype(np.int64),
        rating_item.astype(np.int64), rating, np.full(len(rating), np.nan), year.astype(np.float64), (1.0, 5.0),
        fingerprint=f"synthetic-ml-1m-{seed}")


def make_data(path: Path, seed: int) -> dict:
    from mamo_l2l.core.config import DataConfig
    from mamo_l2l.data.protocol import build_splits
    from mamo_l2l.data.types import SCENARIOS
    data = ml1m_like(seed)
    splits = build_splits(data, DataConfig(dataset="synthetic-ml-1m"), seed)
    with open(path, "wb") as f:
        pickle.dump((data, splits), f)
    sizes = [len(t.support_items) for t in splits.train]
    return {"ratings": int(len(data.rating)), "train": len(splits.train), "valid": len(splits.valid),
            **{s: len(splits.test[s]) for s in SCENARIOS},
            "support_mean": float(np.mean(sizes)), "support_max": int(np.max(sizes))}


# ------------------------------------------------------------------ one (backend, model) in its own process
def worker(args) -> dict:
    import torch

    from mamo_l2l.algorithms import build_model
    from mamo_l2l.backends import get_backend
    from mamo_l2l.backends.base import InnerLoop
    from mamo_l2l.core.config import ModelConfig
    from mamo_l2l.data.batching import MetaBatchSampler, pad_tasks
    from mamo_l2l.training.run import rating_mean

    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.data, "rb") as f:
        data, splits = pickle.load(f)
    device = args.device
    cuda = device.startswith("cuda")
    base_rss = rss_mib()
    torch.manual_seed(args.seed)
    model, algo = build_model(args.model, ModelConfig(), data, rating_mean(splits))
    model.to(device)
    backend = get_backend(args.backend)
    if args.eval_chunk:
        backend.eval_chunk = args.eval_chunk
    inner = InnerLoop(args.local_steps, 0.01, args.first_order)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def train_step(group):
        batch = pad_tasks(group, data).to(device)
        out = backend.run_batch(model, algo, batch, inner, training=True)
        loss = out.query_loss.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        algo.apply_writes(out.writes)

    groups = list(MetaBatchSampler(splits.train, args.meta_batch, args.seed).epoch(1))
    limit = len(groups) if args.train_tasks <= 0 else -(-args.train_tasks // args.meta_batch)
    n_train, train_s, train_cpu = time_steps(train_step, groups, args.warmup, limit, sync)
    train_rate = n_train / train_s

    out = {"backend": args.backend, "model": args.model, "train_tasks": n_train, "train_tasks_per_s": train_rate,
           "epoch_s": len(splits.train) / train_rate,
           # tasks per CPU-second (all threads): with --threads 1, a figure that other jobs barely move
           "train_tasks_per_cpu_s": n_train / max(train_cpu, 1e-9)}
    out.update(time_evaluation(args, model, algo, backend, inner, data, splits, sync))
    if cuda:
        out["peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        out["peak_mib"] = rss_mib() - base_rss
    return out


def time_steps(step, groups, warmup: int, limit: int, sync):
    """(tasks, wall seconds, CPU seconds) of ``step`` over ``limit`` groups after ``warmup`` untimed ones."""
    for g in groups[:warmup]:
        step(g)
    timed = groups[warmup:warmup + limit]
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for g in timed:
        step(g)
    sync()
    return sum(len(g) for g in timed), time.perf_counter() - t0, time.process_time() - c0


def time_evaluation(args, model, algo, backend, inner, data, splits, sync) -> dict:
    """Evaluation tasks/s over a seeded sample of the test tasks (and, with --full-eval, every one)."""
    from mamo_l2l.data.types import SCENARIOS
    from mamo_l2l.evaluation.scoring import predict_tasks

    all_test = [t for s in SCENARIOS for t in splits.test[s]]
    pick = np.random.default_rng(args.seed).permutation(len(all_test))
    sample = [all_test[i] for i in (pick if args.eval_tasks <= 0 else pick[:args.eval_tasks])]
    predict_tasks(model, algo, backend, sample[:backend.eval_chunk], data, inner, args.device)   # warm-up
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    predict_tasks(model, algo, backend, sample, data, inner, args.device)
    sync()
    eval_rate = len(sample) / (time.perf_counter() - t0)
    eval_cpu = time.process_time() - c0
    out = {"eval_tasks": len(sample), "eval_tasks_per_s": eval_rate,
           "eval_all_s": len(all_test) / eval_rate, "eval_all_measured": False,
           "eval_tasks_per_cpu_s": len(sample) / max(eval_cpu, 1e-9)}
    if args.full_eval:
        sync()
        t0 = time.perf_counter()
        for s in SCENARIOS:
            predict_tasks(model, algo, backend, splits.test[s], data, inner, args.device)
        sync()
        out.update(eval_all_s=time.perf_counter() - t0, eval_all_measured=True)
    return out


def profile(args) -> None:
    """torch.profiler (operators) and cProfile (Python) over func MAMO meta-training batches."""
    import cProfile
    import pstats

    import torch
    import torch.profiler as tp

    from mamo_l2l.algorithms import build_model
    from mamo_l2l.backends import get_backend
    from mamo_l2l.backends.base import InnerLoop
    from mamo_l2l.core.config import ModelConfig
    from mamo_l2l.data.batching import MetaBatchSampler, pad_tasks
    from mamo_l2l.training.run import rating_mean

    if args.threads:
        torch.set_num_threads(args.threads)
    with open(args.data, "rb") as f:
        data, splits = pickle.load(f)
    torch.manual_seed(args.seed)
    model, algo = build_model(args.model, ModelConfig(), data, rating_mean(splits))
    model.to(args.device)
    backend = get_backend(args.backend)
    inner = InnerLoop(args.local_steps, 0.01, args.first_order)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    groups = list(MetaBatchSampler(splits.train, args.meta_batch, args.seed).epoch(1))[:args.warmup + 10]

    def step(group):
        with tp.record_function("pad_tasks"):
            batch = pad_tasks(group, data).to(args.device)
        with tp.record_function("run_batch"):
            out = backend.run_batch(model, algo, batch, inner, training=True)
        with tp.record_function("outer_backward"):
            opt.zero_grad(set_to_none=True)
            out.query_loss.mean().backward()
        with tp.record_function("adam_step"):
            opt.step()
        with tp.record_function("apply_writes"):
            algo.apply_writes(out.writes)

    for g in groups[:args.warmup]:
        step(g)
    acts = [tp.ProfilerActivity.CPU] + ([tp.ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    with tp.profile(activities=acts, record_shapes=True) as prof:
        for g in groups[args.warmup:]:
            step(g)
    print(f"torch.profiler: {args.backend} {args.model}, {len(groups) - args.warmup} meta-batches of {args.meta_batch}")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
    print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=20))
    pr = cProfile.Profile()
    pr.enable()
    for g in groups[args.warmup:]:
        step(g)
    pr.disable()
    pstats.Stats(pr).sort_stats("cumulative").print_stats(30)


# ------------------------------------------------------------------ driver
def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backends", default="l2l,higher,func")
    ap.add_argument("--models", default="mamo,maml")
    ap.add_argument("--train-tasks", type=int, default=640, help="timed training tasks per run (<= 0: a whole epoch)")
    ap.add_argument("--eval-tasks", type=int, default=1024, help="timed test tasks per run (<= 0: all)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed meta-batches first")
    ap.add_argument("--full-eval", action="store_true", help="also time evaluating all four scenarios")
    ap.add_argument("--meta-batch", type=int, default=32)
    ap.add_argument("--local-steps", type=int, default=1)
    ap.add_argument("--first-order", action="store_true")
    ap.add_argument("--eval-chunk", type=int, default=0, help="override the backend's evaluation chunk")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1,
                    help="run every (backend, model) this many times, interleaved; report the best figures "
                         "(on a shared machine the least disturbed run)")
    ap.add_argument("--profile", action="store_true", help="profile one backend/model instead (--backends, --models)")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> None:
    args = parse_args()
    if args.worker:
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return

    import torch
    backends, models = args.backends.split(","), args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.pkl"
        t0 = time.perf_counter()
        info = make_data(path, args.seed)
        print(f"synthetic ML-1M-shaped data ({time.perf_counter() - t0:.1f}s): {json.dumps(info)}", flush=True)
        if args.profile:
            args.backend, args.model, args.data = backends[0], models[0], str(path)
            profile(args)
            return
        print(f"torch {torch.__version__}, device {args.device}, threads {args.threads or torch.get_num_threads()}, "
              f"meta-batch {args.meta_batch}, local steps {args.local_steps}, "
              f"{'first' if args.first_order else 'second'} order", flush=True)
        passthrough = [f"--{k.replace('_', '-')}={getattr(args, k)}" for k in
                       ("train_tasks", "eval_tasks", "warmup", "meta_batch", "local_steps", "eval_chunk", "device",
                        "threads", "seed")]
        passthrough += ["--first-order"] * args.first_order + ["--full-eval"] * args.full_eval
        best = {}
        for rep in range(args.repeat):
            for model in models:
                for backend in backends:
                    cmd = [sys.executable, __file__, "--worker", f"--backend={backend}", f"--model={model}",
                           f"--data={path}"] + passthrough
                    proc = subprocess.run(cmd, capture_output=True, text=True)
                    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                    if proc.returncode != 0 or not line:
                        print(f"{backend}/{model} failed:\n{proc.stderr[-3000:]}", flush=True)
                        continue
                    r = json.loads(line[-1][len("RESULT "):])
                    print(f"  [{rep + 1}/{args.repeat}] {backend:<7} {model:<5} train {r['train_tasks_per_s']:8.1f} "
                          f"tasks/s  eval {r['eval_tasks_per_s']:8.1f} tasks/s", flush=True)
                    best[(model, backend)] = merge_best(best.get((model, backend)), r)
        results = list(best.values())
    print_table(results, info)
    if args.json:
        Path(args.json).write_text(json.dumps({"data": info, "args": vars(args), "results": results}, indent=2))


def merge_best(old, new):
    """Keep the best (least disturbed) training and evaluation figures over repeats."""
    if old is None:
        return new
    out = dict(old)
    if new["train_tasks_per_s"] > old["train_tasks_per_s"]:
        out.update({k: new[k] for k in ("train_tasks_per_s", "epoch_s")})
    if new["eval_tasks_per_s"] > old["eval_tasks_per_s"]:
        out.update({k: new[k] for k in ("eval_tasks_per_s",) + (() if new["eval_all_measured"] else ("eval_all_s",))})
    if new["eval_all_measured"]:
        out["eval_all_s"] = min(old["eval_all_s"], new["eval_all_s"])
    for k in ("train_tasks_per_cpu_s", "eval_tasks_per_cpu_s"):
        out[k] = max(old[k], new[k])
    out["peak_mib"] = max(old["peak_mib"], new["peak_mib"])
    return out


def print_table(results, info) -> None:
    ref = {r["model"]: r for r in results if r["backend"] == "l2l"}
    n_test = sum(info[s] for s in ("warm", "user_cold", "item_cold", "user_item_cold"))
    head = (f"{'backend':<8} {'model':<6} {'train tasks/s':>13} {'x l2l':>6} {'s/epoch':>8} "
            f"{'eval tasks/s':>12} {'x l2l':>6} {'eval 4 scen. s':>15} {'peak MiB':>9}")
    print(f"\n{info['train']} training tasks per epoch, {n_test} test tasks in the four scenarios")
    print(head)
    print("-" * len(head))
    for r in results:
        base = ref.get(r["model"])
        tx = f"{r['train_tasks_per_s'] / base['train_tasks_per_s']:.2f}" if base else "-"
        ex = f"{r['eval_tasks_per_s'] / base['eval_tasks_per_s']:.2f}" if base else "-"
        ev = f"{r['eval_all_s']:.1f}" + ("" if r["eval_all_measured"] else " (est.)")
        print(f"{r['backend']:<8} {r['model']:<6} {r['train_tasks_per_s']:>13.1f} {tx:>6} {r['epoch_s']:>8.1f} "
              f"{r['eval_tasks_per_s']:>12.1f} {ex:>6} {ev:>15} {r['peak_mib']:>9.0f}")
    print("\nper CPU-second (all threads' CPU time; with --threads 1 barely moved by other jobs)")
    print(f"{'backend':<8} {'model':<6} {'train tasks/cpu-s':>17} {'x l2l':>6} {'eval tasks/cpu-s':>16} {'x l2l':>6}")
    for r in results:
        base = ref.get(r["model"])
        tx = f"{r['train_tasks_per_cpu_s'] / base['train_tasks_per_cpu_s']:.2f}" if base else "-"
        ex = f"{r['eval_tasks_per_cpu_s'] / base['eval_tasks_per_cpu_s']:.2f}" if base else "-"
        print(f"{r['backend']:<8} {r['model']:<6} {r['train_tasks_per_cpu_s']:>17.1f} {tx:>6} "
              f"{r['eval_tasks_per_cpu_s']:>16.1f} {ex:>6}")


if __name__ == "__main__":
    main()
