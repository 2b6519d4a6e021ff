"""Validation figures of trained runs, for choosing the ranking levers (docs/results.md, "Ranking").

Validation users only; the test scenarios are never scored. For each run folder (``RUN/best.pt``,
``RUN/metrics.json``, as ``mamo-l2l train`` writes them) it prints, at the selected epoch:
validation MAE and nDCG@3 (from the run's history), the catalogue Recall@10 of the validation
users at the chosen weight of the ranking score and that weight (metrics.json ``ranking``), and a
proxy of new-item quality: the validation users scored with every item's identity read as
UNKNOWN (no identity embedding, no item bias), as a new item is. With ``--references`` it also
prints the validation item-mean nDCG@3 and the popularity Recall@10 per seed.

    python studies/ranking_levers.py runs/a-s0 runs/a-s1 runs/a-s2 [--references --dataset ml-1m]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def masked_identity_metrics(run):
    """Validation MAE and nDCG@3 with every item identity read as UNKNOWN."""
    from mamo_l2l.data.identity import mask_identity
    from mamo_l2l.evaluation.metrics import scenario_metrics
    from mamo_l2l.evaluation.scoring import predict_tasks
    valid = run.bundle.splits.valid
    preds = predict_tasks(run.model, run.algorithm, run.backend, valid, mask_identity(run.bundle.data), run.inner)
    return scenario_metrics(preds, [t.query_ratings for t in valid])


def run_row(folder: Path) -> dict:
    from mamo_l2l.api.load import load_run
    metrics = json.loads((folder / "metrics.json").read_text())
    best = {r["epoch"]: r for r in metrics["history"]}[metrics["best_epoch"]]
    ranking = metrics.get("ranking") or {}
    recall = ranking.get("valid", {}).get(f"{ranking.get('weight', 0.0):g}", {}).get("recall@10", float("nan"))
    masked = masked_identity_metrics(load_run(folder / "best.pt"))
    return {"run": folder.name, "seed": metrics["seed"], "best_epoch": metrics["best_epoch"],
            "valid_mae": best["valid_mae"], "valid_ndcg@3": best["valid_ndcg@3"], "weight": ranking.get("weight"),
            "valid_recall@10": recall, "masked_mae": masked["mae"], "masked_ndcg@3": masked["ndcg@3"]}


def references(dataset: str, seeds):
    import mamo_l2l as ml
    from mamo_l2l.data.batching import task_ratings
    from mamo_l2l.data.identity import training_items
    from mamo_l2l.evaluation.catalogue import CatalogueAccumulator, relevant_threshold
    from mamo_l2l.evaluation.metrics import scenario_metrics
    from mamo_l2l.evaluation.references import reference_predictions
    for seed in seeds:
        cfg = ml.load_config().override("data", dataset=dataset).override("train", seed=seed)
        b = ml.load_data(cfg, progress=False)
        splits, data = b.splits, b.data
        lo, hi = data.rating_range
        item_mean = reference_predictions(splits.train, len(data.item_ids))["item_mean"]
        m = scenario_metrics([np.clip(item_mean.predict(t), lo, hi) for t in splits.valid],
                             [t.query_ratings for t in splits.valid])
        cand = training_items(splits)
        counts = np.bincount(task_ratings(splits.train)[0], minlength=len(data.item_ids)).astype(float)
        acc = CatalogueAccumulator(cand, relevant_threshold(cfg.data.relevant_rating, data.rating_range))
        for t in splits.valid:
            acc.add(t, counts[cand])
        print(f"seed {seed}: validation item-mean nDCG@3 {m['ndcg@3']:.4f} MAE {m['mae']:.4f}; "
              f"popularity Recall@10 {acc.result()['recall@10']:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", type=Path)
    ap.add_argument("--references", action="store_true")
    ap.add_argument("--dataset", default="ml-1m")
    ap.add_argument("--seeds", default="0,1,2")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.references:
        references(args.dataset, [int(s) for s in args.seeds.split(",")])
    for folder in args.runs:
        r = run_row(folder)
        print(
            f"{r['run']}: best epoch {r['best_epoch']}, valid MAE {r['valid_mae']:.4f} nDCG@3 {r['valid_ndcg@3']:.4f}, "
            f"Recall@10 {r['valid_recall@10']:.4f} (w {r['weight']}), identity masked: MAE {r['masked_mae']:.4f} "
            f"nDCG@3 {r['masked_ndcg@3']:.4f}"
        )


if __name__ == "__main__":
    main()
