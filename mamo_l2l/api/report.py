"""The tables of a comparison (``mamo-l2l compare``, mamo_l2l/api/comparison.py): the mean and
sample standard deviation over seeds of every metric per scenario (``aggregate``), the paired
differences against one model (``paired_comparison``), and the files ``results.md``,
``results.csv``, ``results.json`` and ``mae.png`` (``write_results``)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.progress import log
from mamo_l2l.data.types import SCENARIOS
from mamo_l2l.evaluation.metrics import CATALOGUE_METRICS, LIST_METRICS, NDCG_KS
from mamo_l2l.evaluation.scoring import REFERENCE_NOTES, WARM_NOTES

# catalogue metrics (docs/algorithm.md, Metrics) come from scenarios[s]["catalogue"][...]
CATALOGUE = tuple(f"catalogue_{m}" for m in CATALOGUE_METRICS + LIST_METRICS)


METRICS = ("mae", "rmse") + tuple(f"ndcg@{k}" for k in NDCG_KS) + CATALOGUE


LOWER_IS_BETTER = {"mae": True, "rmse": True, **{f"ndcg@{k}": False for k in NDCG_KS},
                   **{m: False for m in CATALOGUE}, "catalogue_popularity@10": True}


LABELS = {"mae": "MAE", "rmse": "RMSE", **{f"ndcg@{k}": f"nDCG@{k}" for k in NDCG_KS},
          **{f"catalogue_{m}": f"cat. {m.replace('recall', 'Recall').replace('ndcg', 'NDCG').replace('hit', 'Hit')}"
             for m in CATALOGUE_METRICS},
          **{f"catalogue_{m}": m.replace("personalisation", "personal.") for m in LIST_METRICS}}


def metric_value(scenario_metrics: Optional[Dict[str, Any]], metric: str) -> float:
    """One metric of a run's scenario entry; NaN when absent (e.g. a run evaluated before catalogue
    ranking existed)."""
    if not scenario_metrics:
        return float("nan")
    if metric.startswith("catalogue_"):
        return float(scenario_metrics.get("catalogue", {}).get(metric[len("catalogue_"):], float("nan")))
    return float(scenario_metrics.get(metric, float("nan")))


PLOT_HINT = ("matplotlib is not installed, so no chart was drawn (the tables are written); "
             "`pip install matplotlib` or `EXTRAS=test,plot bash scripts/install.sh` gets it")


# ------------------------------------------------------------------ aggregation
def long_frame(per_run: Dict[str, Dict[int, Dict[str, Any]]], models: Sequence[str], seeds: Sequence[int],
               scenarios: Sequence[str]):
    """One row per (model, scenario, seed) with every metric as a column (NaN when absent) and
    the scored users and ratings."""
    rows = []
    for m in models:
        for scen in scenarios:
            for k in seeds:
                r = per_run[m][k]["scenarios"].get(scen)
                rows.append({"model": m, "scenario": scen, "seed": k,
                             "users": int(r["users"]) if r else 0, "ratings": int(r["ratings"]) if r else 0,
                             **{metric: metric_value(r, metric) for metric in METRICS}})
    return pd.DataFrame(rows, columns=["model", "scenario", "seed", "users", "ratings", *METRICS])


def aggregate(per_run: Dict[str, Dict[int, Dict[str, Any]]], models: Sequence[str],
              seeds: Sequence[int]) -> Dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; NaN values skipped) over seeds per model,
    scenario and metric (pandas ``groupby``); ``best`` marks the best mean of each (scenario,
    metric) column over the models."""
    scenarios = [s for s in SCENARIOS if any(s in per_run[m][k]["scenarios"] for m in models for k in seeds)]
    frame = long_frame(per_run, models, seeds, scenarios)
    stats = frame.groupby(["model", "scenario"], sort=False)[list(METRICS)].agg(["mean", "std"])
    table: Dict[str, Dict[str, Dict[str, Any]]] = {m: {} for m in models}
    for (m, scen), group in frame.groupby(["model", "scenario"], sort=False):
        cell = {metric: {"mean": float(stats.loc[(m, scen), (metric, "mean")]),
                         "std": float(stats.loc[(m, scen), (metric, "std")]),
                         "values": [float(v) for v in group[metric]]} for metric in METRICS}
        cell["users"], cell["ratings"] = group["users"].tolist(), group["ratings"].tolist()
        table[m][scen] = cell
    for scen in scenarios:
        for metric in METRICS:
            means = stats.xs(scen, level="scenario")[(metric, "mean")]
            best = means.min() if LOWER_IS_BETTER[metric] else means.max()   # NaN only when all are
            for m in models:
                table[m][scen][metric]["best"] = bool(abs(means[m] - best) <= 1e-12)
    first = per_run[models[0]]
    counts = {str(k): {"splits": first[k].get("counts", {}).get("splits", {}),
                       "scenarios": first[k].get("counts", {}).get("scenarios", {}),
                       "item_year_cutoff": first[k].get("counts", {}).get("item_year_cutoff")} for k in seeds}
    timing = {m: {"train_seconds": [per_run[m][k].get("timing", {}).get("train_seconds") for k in seeds],
                  "eval_seconds": [per_run[m][k].get("timing", {}).get("eval_seconds") for k in seeds],
                  "best_epoch": [per_run[m][k].get("best_epoch") for k in seeds],
                  "epochs_run": [len(per_run[m][k].get("history", [])) for k in seeds]} for m in models}
    return {"models": list(models), "seeds": list(seeds), "scenarios": scenarios, "metrics": list(METRICS),
            "results": table, "counts": counts, "timing": timing}


# ------------------------------------------------------------------ paired comparison
# Two-sided 95% critical values of Student's t for 1..30 degrees of freedom (then the normal 1.96).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)


PAIRED_METRICS = ("mae", "ndcg@3", "catalogue_recall@10")


NEEDS_SEEDS = "n/a (needs 2+ seeds)"   # the verdict when one seed gives no spread to judge by


def t_critical(df: int) -> float:
    return _T975[df - 1] if 1 <= df <= len(_T975) else 1.96


def paired_comparison(results: Dict[str, Any], reference: str,
                      metrics: Sequence[str] = PAIRED_METRICS) -> Dict[str, Any]:
    """``reference`` against each other model, seed by seed (the same seed = the same users, split
    and initialisation seed, so the seeds pair up): per scenario and metric, the mean over seeds
    of the difference (reference - other), its standard error (sample std / sqrt(n)), the 95%
    t interval and a verdict: ``better`` / ``worse`` (for the reference, the interval excludes 0)
    or ``within noise``; with fewer than two paired seeds there is no spread to judge by, so the
    verdict is ``NEEDS_SEEDS``."""
    table, seeds = results["results"], results["seeds"]
    if reference not in table:
        raise MamoError(f"--paired-with {reference!r} is not one of the compared models ({', '.join(table)})")
    out: Dict[str, Any] = {"reference": reference, "seeds": list(seeds), "confidence": 0.95, "models": {}}
    for other in results["models"]:
        if other == reference:
            continue
        per_scen: Dict[str, Any] = {}
        for scen in results["scenarios"]:
            per_metric = {}
            for metric in metrics:
                if metric not in table[reference][scen] or metric not in table[other][scen]:
                    continue   # a metric the runs did not record (e.g. no catalogue ranking)
                a = np.asarray(table[reference][scen][metric]["values"], dtype=np.float64)
                b = np.asarray(table[other][scen][metric]["values"], dtype=np.float64)
                d = a - b
                d = d[~np.isnan(d)]
                n = int(d.size)
                mean = float(d.mean()) if n else float("nan")
                se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
                half = t_critical(n - 1) * se if n > 1 else float("nan")
                if n < 2:
                    verdict = NEEDS_SEEDS
                elif math.isnan(half) or abs(mean) <= half:
                    verdict = "within noise"
                else:
                    good = mean < 0 if LOWER_IS_BETTER[metric] else mean > 0
                    verdict = "better" if good else "worse"
                per_metric[metric] = {"mean_diff": mean, "se": se, "ci95": [mean - half, mean + half],
                                      "n": n, "verdict": verdict}
            per_scen[scen] = per_metric
        out["models"][other] = per_scen
    return out


def format_paired(paired: Dict[str, Any]) -> List[str]:
    ref = paired["reference"]
    lines = ["", f"## Paired comparison: {ref} against each model", "",
             f"Per seed, the difference {ref} minus the other model (same seed: same split, users and "
             f"initialisation seed); mean ± standard error over {len(paired['seeds'])} seeds, and the verdict "
             f"for {ref} from the 95% t interval of the mean difference (*better* / *worse* when it excludes 0, "
             "else *within noise*; with one seed there is no spread to judge by: *n/a (needs 2+ seeds)*). "
             "Lower MAE is better, higher nDCG and Recall are better.", ""]
    scen_names = sorted({s for per in paired["models"].values() for s in per}, key=list(SCENARIOS).index)
    recorded = {m for per in paired["models"].values() for cells in per.values() for m in cells}
    for metric in (m for m in PAIRED_METRICS if m in recorded):
        lines += [f"{LABELS[metric]} difference ({ref} - model):", "",
                  "| model | " + " | ".join(scen_names) + " |", "| --- |" + " --- |" * len(scen_names)]
        for other, per in paired["models"].items():
            cells = []
            for scen in scen_names:
                c = per[scen].get(metric)
                cells.append("-" if c is None else _paired_cell(c))
            lines.append(f"| {other} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _missing(x) -> bool:
    """NaN, or None: results.json writes NaN as null (``_json_safe``), so a table rendered again
    from the file reads None where the comparison itself had NaN."""
    return x is None or math.isnan(x)


def _paired_cell(c: Dict[str, Any]) -> str:
    if _missing(c["mean_diff"]):
        return "n/a"
    if c["n"] < 2 or _missing(c["se"]):
        return f"{c['mean_diff']:+.4f}, {NEEDS_SEEDS}"
    return f"{c['mean_diff']:+.4f} ± {c['se']:.4f} {c['verdict']}"


def summary_text(results: Dict[str, Any]) -> str:
    """The short summary ``compare`` prints on stdout: MAE, nDCG@3 and the catalogue Recall@10
    (mean ± std over seeds) per model and scenario, then the paired verdicts of the reference
    model on MAE and the catalogue Recall@10, if any. A row with no figure (a top-N reference has
    no rating metrics) is left out; the full tables are in results.md."""
    models, scenarios, table = results["models"], results["scenarios"], results["results"]
    width = max(len("model"), *(len(m) for m in models))
    lines = []
    for metric in ("mae", "ndcg@3", "catalogue_recall@10"):
        cells = {m: [_fmt(table[m][s].get(metric), bold=False) for s in scenarios] for m in models}
        cells = {m: row for m, row in cells.items() if any(c not in ("n/a", "-") for c in row)}
        if not cells:
            continue
        col = max(15, *(len(c) for row in cells.values() for c in row))
        lines += [f"{LABELS[metric]}, mean ± std over {len(results['seeds'])} seed(s):",
                  f"{'model':<{width}} " + " ".join(f"{s:>{col}}" for s in scenarios)]
        lines += [f"{m:<{width}} " + " ".join(f"{c:>{col}}" for c in row) for m, row in cells.items()]
        lines.append("")
    paired = results.get("paired")
    for metric in ("mae", "catalogue_recall@10") if paired else ():
        ref = paired["reference"]
        rows = [(other, per) for other, per in paired["models"].items()
                if any(not _missing((per[s].get(metric) or {}).get("mean_diff")) for s in per)]
        if rows:
            lines.append(f"{ref} against each model ({LABELS[metric]} difference, mean ± standard error; "
                         "the verdict from the 95% paired t interval):")
            lines += [f"  vs {other}: " + "; ".join(f"{s} {_paired_cell(per[s][metric])}" for s in per
                                                     if per[s].get(metric))
                      for other, per in rows]
    return "\n".join(lines).rstrip("\n")


# ------------------------------------------------------------------ writing
def _fmt(stat: Optional[Dict[str, Any]], bold: bool = True) -> str:
    if stat is None:   # a metric the runs did not record (results made before it existed)
        return "-"
    if _missing(stat["mean"]):
        return "n/a"
    text = f"{stat['mean']:.4f}" + ("" if _missing(stat["std"]) else f" ± {stat['std']:.4f}")
    return f"**{text}**" if bold and stat.get("best") else text


def plain_number(value) -> str:
    """A number as written by hand: 1996.0 -> 1996, 1996.5 -> 1996.5, None -> -."""
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def _mean_or_dash(values) -> str:
    vals = [v for v in values if v is not None]
    return f"{np.mean(vals):.1f}" if vals else "-"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "---:") -> List[str]:
    """A markdown table: the first column left-aligned, the others ``align``."""
    return (["| " + " | ".join(header) + " |", "| --- |" + f" {align} |" * (len(header) - 1)]
            + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def format_markdown(results: Dict[str, Any]) -> str:
    models, scenarios, seeds = results["models"], results["scenarios"], results["seeds"]
    table = results["results"]
    lines = [f"# Model comparison on {results.get('dataset')}", ""]
    if results.get("command"):
        lines += ["Command:", "", "```bash", results["command"], "```", ""]
    lines += [f"Seeds {', '.join(map(str, seeds))}: mean ± sample standard deviation over seeds (ddof=1). "
              f"Warm test: `{results.get('warm_eval')}`. Backend: `{results.get('backend')}`. "
              "Best mean per column in **bold** (lowest MAE/RMSE, highest nDCG).", "",
              f"{WARM_NOTES.get(str(results.get('warm_eval')), '')}.", ""]
    baselines = [n for n in REFERENCE_NOTES if n.split(":")[0].replace("_", "-") in models]
    if baselines:   # the mean baselines among the models: what their rows are
        lines += [f"* {n.replace('_mean', '-mean')}" for n in baselines] + [""]
    def per_scenario(title: str, metric: str, note: Sequence[str] = ()) -> List[str]:
        return ([f"## {title} per scenario", "", *note]
                + markdown_table(["model", *scenarios], [[m, *(_fmt(table[m][s].get(metric)) for s in scenarios)]
                                                         for m in models]) + [""])

    lines += per_scenario("MAE", "mae") + per_scenario("nDCG@3", "ndcg@3")
    lines += per_scenario("Catalogue NDCG@10", "catalogue_ndcg@10", [
        "All candidate items not in the user's support set ranked; relevant = query items rated at "
        "least `data.relevant_rating` (docs/algorithm.md, Metrics).", ""])
    for scen in scenarios:
        users = table[models[0]][scen]["users"]
        ratings = table[models[0]][scen]["ratings"]
        lines += [f"## {scen}", "",
                  f"Scored per seed: users {', '.join(map(str, users))}; ratings {', '.join(map(str, ratings))}.", ""]
        lines += markdown_table(["model", *(LABELS[k] for k in METRICS)],
                                [[m, *(_fmt(table[m][scen].get(k)) for k in METRICS)] for m in models]) + [""]
    count_rows = []
    for i, k in enumerate(seeds):
        c = results["counts"][str(k)]
        sp = c.get("splits", {})
        count_rows.append([k, plain_number(c.get("item_year_cutoff")),
                           sp.get("train", {}).get("users", ""), sp.get("train", {}).get("ratings", ""),
                           sp.get("valid", {}).get("users", ""), sp.get("valid", {}).get("ratings", ""),
                           *(f"{table[models[0]][s]['users'][i]} / {table[models[0]][s]['ratings'][i]}"
                             for s in scenarios)])
    lines += ["## Data counts per seed", ""]
    lines += markdown_table(["seed", "item year cutoff", "train users", "train ratings", "valid users",
                             "valid ratings", *(f"{s} users / ratings" for s in scenarios)], count_rows)
    lines += ["", "## Runs", ""]
    lines += markdown_table(["model", "best epoch per seed", "epochs run", "train s (mean)", "evaluation s (mean)"],
                            [[m, ", ".join(map(str, tm["best_epoch"])), ", ".join(map(str, tm["epochs_run"])),
                              _mean_or_dash(tm["train_seconds"]), _mean_or_dash(tm["eval_seconds"])]
                             for m, tm in ((m, results["timing"][m]) for m in models)])
    if results.get("paired"):
        lines += format_paired(results["paired"])
    if results.get("wall_seconds") is not None:
        runs = [r for per_seed in results.get("runs", {}).values() for r in per_seed.values()]
        reused = sum(r["reused"] for r in runs)   # trained runs only: the reference rows are no runs
        lines += ["", f"Wall time of this comparison: {duration(results['wall_seconds'])} "
                      f"({reused} of {len(runs)} runs reused)."]
    return "\n".join(lines) + "\n"


def write_csv(results: Dict[str, Any], path: Path) -> None:
    """One row per (model, scenario): seeds, mean users/ratings, ``<metric>_mean``/``_std`` and the
    metrics the model is best at (``;``-separated); NaN as an empty cell (pandas ``to_csv``)."""
    rows = []
    for m in results["models"]:
        for scen in results["scenarios"]:
            cell = results["results"][m][scen]
            row = {"model": m, "scenario": scen, "seeds": len(results["seeds"]),
                   "users_mean": float(np.mean(cell["users"])), "ratings_mean": float(np.mean(cell["ratings"]))}
            for k in METRICS:
                row[f"{k}_mean"], row[f"{k}_std"] = cell[k]["mean"], cell[k]["std"]
            row["best"] = ";".join(k for k in METRICS if cell[k]["best"])
            rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)


def _json_safe(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def plot_mae(results: Dict[str, Any], path: Path) -> bool:
    """A grouped bar chart of MAE per scenario per model with std error bars; False if matplotlib
    is missing."""
    try:
        import matplotlib  # optional dependency
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # optional dependency
    except ImportError:
        return False
    models, scenarios = results["models"], results["scenarios"]
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(7.0, 2.0 + 1.5 * len(scenarios) + 0.15 * len(models) * len(scenarios)), 4.5))
    x = np.arange(len(scenarios))
    for k, m in enumerate(models):
        means = [results["results"][m][s]["mae"]["mean"] for s in scenarios]
        stds = [results["results"][m][s]["mae"]["std"] for s in scenarios]
        stds = [0.0 if math.isnan(v) else v for v in stds]
        ax.bar(x + (k - (len(models) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=m)
    ax.set_xticks(x)
    ax.set_xticklabels(scenarios)
    ax.set_ylabel("MAE (lower is better)")
    ax.set_title(f"{results.get('dataset')}: MAE per scenario, mean ± std over {len(results['seeds'])} seed(s)")
    lows, highs = [], []
    for m in models:
        for s in scenarios:
            st = results["results"][m][s]["mae"]
            if not math.isnan(st["mean"]):
                spread = 0.0 if math.isnan(st["std"]) else st["std"]
                lows.append(st["mean"] - spread)
                highs.append(st["mean"] + spread)
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 0.05), max(highs) + 0.05)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_results(results: Dict[str, Any], out_dir) -> List[Path]:
    """results.md, results.csv, results.json (and mae.png when matplotlib is there) in ``out_dir``."""
    out_dir = Path(out_dir)
    paths = [out_dir / "results.md", out_dir / "results.csv", out_dir / "results.json"]
    paths[0].write_text(format_markdown(results), encoding="utf-8")
    write_csv(results, paths[1])
    paths[2].write_text(json.dumps(_json_safe(results), indent=2) + "\n", encoding="utf-8")
    if plot_mae(results, out_dir / "mae.png"):
        paths.append(out_dir / "mae.png")
    else:
        log.info(PLOT_HINT)
    log.info("wrote " + ", ".join(str(p) for p in paths))
    return paths


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


