"""Train + evaluate a model over several seeds on real data; print timings and MAE vs the references.

    python benchmarks/bench_train.py --dataset ml-100k --seeds 0,1,2 [--data-dir D] [--backend l2l]

Prints, per seed: epochs run, best epoch, seconds per epoch, training and evaluation tasks/s, total
wall time and peak memory; then the mean MAE per scenario of the model and of the item-mean and
global-mean references over the seeds, and whether the model beats item-mean in each scenario.
Model selection is on validation users only (early stopping); the test scenarios are scored once.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import mamo_l2l as ml
from mamo_l2l.data.types import SCENARIOS
from mamo_l2l.training.run import peak_memory_mib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--model", default="mamo")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--config", default=None)
    ap.add_argument("--epochs", type=int, default=None)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed = []
    for seed in seeds:
        cfg = ml.load_config(args.config).override("data", dataset=args.dataset, data_dir=args.data_dir)
        cfg = cfg.override("train", seed=seed, backend=args.backend, epochs=args.epochs)
        started = time.perf_counter()
        bundle = ml.load_data(cfg, progress=False)
        run = ml.fit(bundle, cfg, model_name=args.model, progress=False)
        metrics = ml.evaluate(run)
        wall = time.perf_counter() - started
        t = metrics["timing"]
        print(f"seed {seed}: {len(run.history)} epochs (best {run.best_epoch}), "
              f"{t['seconds_per_epoch']:.2f} s/epoch, train {t['train_tasks_per_s']:.0f} tasks/s, "
              f"eval {t['eval_tasks_per_s']:.0f} tasks/s ({t['eval_seconds']:.1f} s), "
              f"train+evaluate {wall:.1f} s wall, peak memory {peak_memory_mib():.0f} MiB", flush=True)
        per_seed.append(metrics)
    print(f"\nmean MAE over seeds {seeds} ({args.model}, {args.dataset}, backend "
          f"{per_seed[0]['backend']}, warm test {per_seed[0]['warm_eval']}):")
    print(f"{'scenario':<16}{args.model:>10}{'item_mean':>11}{'global_mean':>13}  beats item_mean")
    for scen in SCENARIOS:
        m = np.mean([r["scenarios"][scen]["mae"] for r in per_seed])
        s = np.std([r["scenarios"][scen]["mae"] for r in per_seed])
        im = np.mean([r["references"]["item_mean"][scen]["mae"] for r in per_seed])
        gm = np.mean([r["references"]["global_mean"][scen]["mae"] for r in per_seed])
        print(f"{scen:<16}{m:>10.4f}{im:>11.4f}{gm:>13.4f}  {'yes' if m < im else 'NO'} (std {s:.4f})")


if __name__ == "__main__":
    main()
