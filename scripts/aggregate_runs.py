"""Tables from the finished runs of a `mamo-l2l compare` output folder, without training anything:
for a comparison stopped before every run finished, or whose runs were made by an earlier
version of the code (compare itself would retrain those). Only seeds that every model finished
are used; the paired comparison is that of compare (mamo_l2l/api/comparison.py).

    python scripts/aggregate_runs.py results/ml-1m-steps5 --models mamo,maml,melu --paired-with mamo
"""
from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--models", required=True)
    ap.add_argument("--paired-with", default=None)
    ap.add_argument("--write", default=None, help="write the markdown here (default: print it)")
    args = ap.parse_args()
    from mamo_l2l.api.comparison import run_dir
    from mamo_l2l.api.report import aggregate, format_markdown, paired_comparison
    from mamo_l2l.training.runfiles import read_metrics
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    per_run = {m: {} for m in models}
    for m in models:
        for folder in run_dir(args.out_dir, m, 0).parent.glob(f"{m}-seed*"):
            seed = folder.name[len(m) + len("-seed"):]
            metrics = read_metrics(folder) if seed.isdigit() else None
            if metrics is not None:
                per_run[m][int(seed)] = metrics
    seeds = sorted(set.intersection(*(set(v) for v in per_run.values())))
    if not seeds:
        raise SystemExit("no seed was finished by every model")
    results = aggregate(per_run, models, seeds)
    first = per_run[models[0]][seeds[0]]
    results.update(dataset=first.get("dataset"), warm_eval=first.get("warm_eval"), backend=first.get("backend"),
                   command=f"python scripts/aggregate_runs.py {args.out_dir} --models {args.models}")
    if len(models) > 1:
        results["paired"] = paired_comparison(results, args.paired_with or models[0])
    text = format_markdown(results)
    if args.write:
        Path(args.write).write_text(text, encoding="utf-8")
    else:
        print(text)


if __name__ == "__main__":
    main()
