"""Tables from the finished runs of a `mamo-l2l compare` output folder, without training anything:
for a comparison stopped before every run finished, or whose runs were trained by code whose
training part is unchanged (compare itself would retrain those, since the code fingerprint
covers evaluation too). Only seeds that every model finished are used; the paired comparison is
that of compare (mamo_l2l/api/comparison.py).

``--reevaluate`` scores every run's ``best.pt`` again with the installed code (the choice-prior
weight chosen again on the validation users, as training does; the training history and timings
kept from the run's metrics.json) and writes it to ``metrics.reevaluated.json`` beside it: for
when only the evaluation changed. ``--reevaluated`` reads those files instead of scoring again.
``--json`` writes a results.json as compare does, the references of the first model's runs as rows
beside the models.

    python scripts/aggregate_runs.py results/ml-1m --models mamo,maml,melu --paired-with mamo
    python scripts/aggregate_runs.py results/ml-1m --models mamo,maml --reevaluate --json results/ml-1m/results.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mamo_l2l as ml
from mamo_l2l.api.comparison import reference_rows, run_dir
from mamo_l2l.api.report import aggregate, format_markdown, paired_comparison
from mamo_l2l.training.ranking_weight import choose_ranking
from mamo_l2l.training.runfiles import read_metrics

REEVALUATED = "metrics.reevaluated.json"


def reevaluate(folder: Path, cache_dir=None) -> dict:
    """The run in ``folder`` scored again by the installed code; written to ``REEVALUATED``."""
    recorded = read_metrics(folder) or {}
    run = ml.load_run(folder / "best.pt", cache_dir=cache_dir)
    if run.ranking is not None:
        run.ranking, run.ranking_notes = choose_ranking(run)
    metrics = ml.evaluate(run)
    metrics["history"] = recorded.get("history", metrics["history"])
    metrics["timing"] = {**metrics["timing"], **{k: v for k, v in recorded.get("timing", {}).items()
                                                 if k in ("train_seconds", "tasks_per_s", "epochs_run")}}
    (folder / REEVALUATED).write_text(json.dumps(metrics, indent=1, default=float), encoding="utf-8")
    return metrics


def recorded(folder: Path, reevaluated: bool):
    """The run's metrics.json, or the ``REEVALUATED`` one when asked and there."""
    path = folder / REEVALUATED
    if reevaluated and path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return read_metrics(folder)


def collect(out_dir, models, again: bool, cache_dir=None, reevaluated: bool = False) -> dict:
    per_run = {m: {} for m in models}
    for m in models:
        for folder in sorted(run_dir(out_dir, m, 0).parent.glob(f"{m}-seed*")):
            seed = folder.name[len(m) + len("-seed"):]
            if not seed.isdigit() or read_metrics(folder) is None:
                continue
            if again:
                print(f"re-evaluating {folder}", file=sys.stderr)
            per_run[m][int(seed)] = reevaluate(folder, cache_dir) if again else recorded(folder, reevaluated)
    return per_run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--models", required=True)
    ap.add_argument("--paired-with", default=None)
    ap.add_argument("--reevaluate", action="store_true", help="score every best.pt again with the installed code")
    ap.add_argument("--reevaluated", action="store_true",
                    help=f"read each run's {REEVALUATED} (written by an earlier --reevaluate) where it is there")
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--write", default=None, help="write the markdown here (default: print it)")
    ap.add_argument("--json", default=None, help="also write a results.json here")
    args = ap.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    per_run = collect(args.out_dir, models, args.reevaluate, args.cache_dir, args.reevaluated)
    seeds = sorted(set.intersection(*(set(v) for v in per_run.values())))
    if not seeds:
        raise SystemExit("no seed was finished by every model")
    rows = models + reference_rows(per_run, models, seeds)
    results = aggregate(per_run, rows, seeds)
    first = per_run[models[0]][seeds[0]]
    command = " ".join(["python scripts/aggregate_runs.py", *sys.argv[1:]])
    recorded = Path(args.out_dir) / "results.json"
    trained_by = json.loads(recorded.read_text())["command"] if recorded.is_file() else None
    results.update(dataset=first.get("dataset"), warm_eval=first.get("warm_eval"), backend=first.get("backend"),
                   command=command if trained_by is None else f"{trained_by}\n{command}")
    if len(rows) > 1:
        results["paired"] = paired_comparison(results, args.paired_with or models[0])
    text = format_markdown(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    elif not args.json:
        print(text)


if __name__ == "__main__":
    main()
