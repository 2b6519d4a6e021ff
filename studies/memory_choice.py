"""Choose MAMO's memory settings on VALIDATION users only (docs/algorithm.md, docs/results.md).

For each candidate memory config and seed: train MAMO (early stopping on validation MAE, as
``train`` does), then print the best validation MAE / nDCG@3 and the memory diagnostics of the
selected model over the training users (slot distances, attention entropy, start spread).
Test users are never scored here.

    python studies/memory_choice.py --dataset ml-100k --seeds 0,1,2 \
        --candidate "memory_update=interpolate,memory_init=random" \
        --candidate "memory_update=competitive,memory_init=kmeans,temperature=0.1"
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def parse_candidate(text: str):
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, value = part.split("=", 1)
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                continue
        out[key] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--model", default="mamo")
    ap.add_argument("--candidate", action="append", required=True,
                    help="model.* overrides, e.g. memory_update=competitive,temperature=0.1 (repeatable)")
    ap.add_argument("--train", default="", help="train.* overrides for every candidate, e.g. local_steps=5")
    ap.add_argument("--json", default=None, help="write all results here")
    args = ap.parse_args()

    import mamo_l2l as ml
    from mamo_l2l.algorithms.memory_stats import memory_summary
    from mamo_l2l.training.run import training_user_rows

    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    for text in args.candidate:
        cand = parse_candidate(text)
        rows = []
        for seed in seeds:
            cfg = ml.load_config().override("data", dataset=args.dataset, data_dir=args.data_dir)
            cfg = cfg.override("model", **dict(cand, name=args.model))
            cfg = cfg.override("train", seed=seed, epochs=args.epochs, **parse_candidate(args.train))
            bundle = ml.load_data(cfg, progress=False)
            started = time.perf_counter()
            run = ml.fit(bundle, cfg, model_name=args.model, progress=False)
            best = next(h for h in run.history if h["epoch"] == run.best_epoch)
            row = {"seed": seed, "best_epoch": run.best_epoch, "valid_mae": best["valid_mae"],
                   "valid_ndcg@3": best["valid_ndcg@3"], "seconds": time.perf_counter() - started}
            if hasattr(run.algorithm, "memory"):
                row["memory"] = memory_summary(run.algorithm, run.algorithm.profiles(training_user_rows(bundle)))
            rows.append(row)
            mem = row.get("memory", {})
            print(f"{text:<60} seed {seed}: valid MAE {row['valid_mae']:.4f} nDCG@3 {row['valid_ndcg@3']:.4f} "
                  f"(epoch {row['best_epoch']}, {row['seconds']:.0f}s)"
                  + (f"  entropy {mem['attention_entropy_mean']:.3f} slots {mem['top_slot_counts']} "
                     f"min slot dist {json.dumps({k: round(v, 4) for k, v in mem['slot_distance_min_ratio'].items()})} "
                     f"pref spread {mem['pref_start_spread']}" if mem else ""), flush=True)
        maes = np.array([r["valid_mae"] for r in rows])
        ndcg = np.array([r["valid_ndcg@3"] for r in rows])
        print(f"== {text}: valid MAE {maes.mean():.4f} +- {maes.std(ddof=1) if len(maes) > 1 else 0:.4f}, "
              f"nDCG@3 {ndcg.mean():.4f} over seeds {seeds}", flush=True)
        results.append({"candidate": text, "runs": rows})
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
