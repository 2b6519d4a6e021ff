"""Compare models over seeds: train (or reuse) one run per (model, seed), then write
``results.md``, ``results.csv`` and ``results.json`` with the mean and sample standard deviation
over seeds of every metric per scenario, the best model per column marked, the data counts and
the exact command; plus ``mae.png`` (MAE per scenario, std error bars) when matplotlib is there.

Layout of ``out_dir``::

    runs/<model>-seed<k>/   one run folder each (config.yaml, best.pt, last.pt, metrics.json, results.txt)
    results.md / results.csv / results.json / mae.png

A run whose ``metrics.json`` was made with the same result-affecting config (mamo_l2l/runid.py:
the location of the data, the device and the thread count aside) on the same data by the same
package version and model code (code fingerprint) is reused, not retrained; otherwise it is
retrained and a log line says why. A run interrupted after some epochs continues from its
``last.pt`` when that checkpoint matches the same way.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np

from .config import Config
from .data.types import SCENARIOS
from .errors import MamoError
from .metrics import CATALOGUE_METRICS, NDCG_KS

# catalogue metrics (docs/algorithm.md, Metrics) come from scenarios[s]["catalogue"][...]
CATALOGUE = tuple(f"catalogue_{m}" for m in CATALOGUE_METRICS)
METRICS = ("mae", "rmse") + tuple(f"ndcg@{k}" for k in NDCG_KS) + CATALOGUE
LOWER_IS_BETTER = {"mae": True, "rmse": True, **{f"ndcg@{k}": False for k in NDCG_KS},
                   **{m: False for m in CATALOGUE}}
LABELS = {"mae": "MAE", "rmse": "RMSE", **{f"ndcg@{k}": f"nDCG@{k}" for k in NDCG_KS},
          **{f"catalogue_{m}": f"cat. {m.replace('recall', 'Recall').replace('ndcg', 'NDCG').replace('hit', 'Hit')}"
             for m in CATALOGUE_METRICS}}


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


# ------------------------------------------------------------------ runs
def _log(line: str) -> None:
    """The default ``log``: the logger "mamo_l2l" (quiet from Python unless configured; docs/operations.md)."""
    logging.getLogger("mamo_l2l").info(line)


def run_dir(out_dir, model: str, seed: int) -> Path:
    return Path(out_dir) / "runs" / f"{model}-seed{seed}"


def why_not_reusable(recorded: Dict[str, Any], config: Config, fingerprint: str) -> Optional[str]:
    """Why a run recorded as ``recorded`` (its metrics.json or last.pt) is not this run, or None
    when it is (mamo_l2l/runid.py: one definition for compare, resume and evaluate)."""
    from .runid import code_differs, config_differences, describe
    if recorded.get("data_fingerprint") != fingerprint:
        return "it was made on other data (data fingerprint differs)"
    diffs = config_differences(config.to_dict(), recorded.get("config", {}) or {})
    if diffs:
        return "it was made with another config (" + describe(diffs, "there", "now") + ")"
    return code_differs(recorded, config.model.name)


def reusable_metrics(folder: Path, config: Config, fingerprint: str,
                     log: Optional[Callable[[str], None]] = None) -> Optional[Dict[str, Any]]:
    """The run's metrics.json if it was made with this config on this data by this code, else
    None (with a ``log`` line saying why, when there was one)."""
    path = folder / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    why = why_not_reusable(metrics, config, fingerprint)
    if why is not None:
        if log is not None:
            log(f"  not reusing {path}: {why}; training afresh")
        return None
    return metrics


def _resumable(folder: Path, config: Config, fingerprint: str) -> bool:
    """Whether ``folder/last.pt`` is an interrupted run of exactly this run."""
    from .checkpoint import load_checkpoint
    path = folder / "last.pt"
    if not path.is_file():
        return False
    try:
        ckpt = load_checkpoint(path)
    except MamoError:   # an unreadable last.pt just means: start afresh
        return False
    if ckpt.get("model_name") != config.model.name:
        return False
    from .runid import RESUME_MAY_CHANGE, config_differences
    if ckpt.get("data_fingerprint") != fingerprint or config_differences(config.to_dict(), ckpt.get("config", {}),
                                                                         RESUME_MAY_CHANGE):
        return False
    from .runid import code_differs
    return code_differs(ckpt, config.model.name) is None


def train_or_reuse(bundle, config: Config, folder: Path, progress: bool = True, catalogue: bool = True,
                   log: Callable[[str], None] = _log) -> tuple:
    """(metrics, reused) for one run: reuse ``folder``'s metrics.json when it matches, else train
    (continuing from last.pt when the folder's config.yaml matches) and evaluate."""
    import yaml

    from . import api
    from .runfiles import RunLock, write_text_atomic
    metrics = reusable_metrics(folder, config, bundle.data.fingerprint, log=log)
    if metrics is not None:
        return metrics, True
    with RunLock(folder):
        resume = _resumable(folder, config, bundle.data.fingerprint)
        if resume:
            log(f"  continuing the interrupted run in {folder} from its last.pt")
        write_text_atomic(folder / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        run = api.fit(bundle, config, model_name=config.model.name, out_dir=folder, resume=resume,
                      progress=progress)
        metrics = api.evaluate(run, catalogue=catalogue)
        api.write_metrics(metrics, folder)
    return metrics, False


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def compare(config: Config, models: Sequence[str], seeds: int, out_dir, cache_dir=None,
            command: Optional[str] = None, progress: bool = True,
            log: Callable[[str], None] = _log, paired_with: Optional[str] = None,
            catalogue: bool = True) -> Dict[str, Any]:
    """Train or reuse ``models`` x seeds 0..seeds-1 under ``config`` (its model name and seed are
    set per run), write the result files into ``out_dir`` and return the results.json content.
    ``paired_with`` (default: the first model) is compared seed by seed with each other model
    (``paired_comparison``). ``catalogue=False`` skips the catalogue ranking of newly trained runs
    (slow on large catalogues: about 5 minutes a run on Book-Crossing's 65k items, measured)."""
    from . import api
    from .algorithms import require_models
    models = list(dict.fromkeys(models))
    if paired_with is not None and paired_with not in models:
        raise MamoError(f"--paired-with {paired_with!r} is not one of --models ({', '.join(models)})")
    require_models(*models, listing=True)
    if not models or seeds < 1:
        raise MamoError("compare needs at least one model and --seeds >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = len(models) * seeds
    done = 0
    seconds_by_model: Dict[str, List[float]] = {}
    per_run: Dict[str, Dict[int, Dict[str, Any]]] = {m: {} for m in models}
    reused_runs: Dict[str, Dict[int, bool]] = {m: {} for m in models}
    started = time.perf_counter()
    for seed in range(seeds):
        seed_config = config.override("train", seed=seed)
        bundle = api.load_data(seed_config, cache_dir=cache_dir, progress=progress)
        for model in models:
            run_config = seed_config.override("model", name=model)
            folder = run_dir(out_dir, model, seed)
            log(f"[run {done + 1}/{total}] {model} seed {seed}: {done} done, elapsed "
                f"{_duration(time.perf_counter() - started)}, ETA {_eta(models, seeds, done, model, seed, seconds_by_model)}")
            t0 = time.perf_counter()
            metrics, reused = train_or_reuse(bundle, run_config, folder, progress=progress, log=log,
                                             catalogue=catalogue)
            seconds = time.perf_counter() - t0
            if reused:
                log(f"  reusing {folder} (its metrics.json has the same config and data)")
            else:
                seconds_by_model.setdefault(model, []).append(seconds)
                log(f"  {model} seed {seed} done in {_duration(seconds)}: MAE "
                    + ", ".join(f"{s} {metrics['scenarios'][s]['mae']:.4f}" for s in SCENARIOS
                                if s in metrics["scenarios"]))
            per_run[model][seed] = metrics
            reused_runs[model][seed] = reused
            done += 1
    results = aggregate(per_run, models, list(range(seeds)))
    if len(models) > 1:
        results["paired"] = paired_comparison(results, paired_with or models[0])
    results.update(dataset=config.data.dataset, command=command, warm_eval=config.data.warm_eval,
                   backend=config.train.backend, config=config.to_dict(),
                   runs={m: {str(s): {"dir": str(run_dir(out_dir, m, s)), "reused": reused_runs[m][s]}
                             for s in range(seeds)} for m in models},
                   wall_seconds=time.perf_counter() - started)
    write_results(results, out_dir, log=log)
    return results


def _eta(models, seeds, done, model, seed, seconds_by_model) -> str:
    """Remaining time, from the mean duration of each model's runs trained so far (a model not
    yet seen is estimated by the mean over all trained runs)."""
    all_secs = [s for v in seconds_by_model.values() for s in v]
    if not all_secs:
        return "unknown until a run has finished"
    overall = float(np.mean(all_secs))
    remaining = 0.0
    order = [(s, m) for s in range(seeds) for m in models]
    for s, m in order[done:]:
        remaining += float(np.mean(seconds_by_model[m])) if m in seconds_by_model else overall
    return _duration(remaining)


# ------------------------------------------------------------------ aggregation
def _stats(values: List[float]) -> Dict[str, Any]:
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    mean = float(arr.mean()) if arr.size else float("nan")
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return {"mean": mean, "std": std, "values": [float(v) for v in values]}


def aggregate(per_run: Dict[str, Dict[int, Dict[str, Any]]], models: Sequence[str],
              seeds: Sequence[int]) -> Dict[str, Any]:
    """Mean and sample standard deviation (ddof=1) over seeds per model, scenario and metric;
    ``best`` marks the best mean of each (scenario, metric) column over the models."""
    scenarios = [s for s in SCENARIOS if any(s in per_run[m][k]["scenarios"] for m in models for k in seeds)]
    table: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for m in models:
        table[m] = {}
        for scen in scenarios:
            runs = [per_run[m][k]["scenarios"].get(scen) for k in seeds]
            cell = {metric: _stats([metric_value(r, metric) for r in runs]) for metric in METRICS}
            cell["users"] = [int(r["users"]) if r else 0 for r in runs]
            cell["ratings"] = [int(r["ratings"]) if r else 0 for r in runs]
            table[m][scen] = cell
    for scen in scenarios:
        for metric in METRICS:
            means = {m: table[m][scen][metric]["mean"] for m in models}
            valid = [v for v in means.values() if not math.isnan(v)]
            best = (min(valid) if LOWER_IS_BETTER[metric] else max(valid)) if valid else None
            for m in models:
                table[m][scen][metric]["best"] = best is not None and abs(means[m] - best) <= 1e-12
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
PAIRED_METRICS = ("mae", "ndcg@3")


def t_critical(df: int) -> float:
    return _T975[df - 1] if 1 <= df <= len(_T975) else 1.96


def paired_comparison(results: Dict[str, Any], reference: str,
                      metrics: Sequence[str] = PAIRED_METRICS) -> Dict[str, Any]:
    """``reference`` against each other model, seed by seed (the same seed = the same users, split
    and initialisation seed, so the seeds pair up): per scenario and metric, the mean over seeds
    of the difference (reference - other), its standard error (sample std / sqrt(n)), the 95%
    t interval and a verdict: ``better`` / ``worse`` (for the reference, the interval excludes 0)
    or ``within noise``."""
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
                a = np.asarray(table[reference][scen][metric]["values"], dtype=np.float64)
                b = np.asarray(table[other][scen][metric]["values"], dtype=np.float64)
                d = a - b
                d = d[~np.isnan(d)]
                n = int(d.size)
                mean = float(d.mean()) if n else float("nan")
                se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
                half = t_critical(n - 1) * se if n > 1 else float("nan")
                if n < 2 or math.isnan(half) or abs(mean) <= half:
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
             "else *within noise*). Lower MAE is better, higher nDCG is better.", ""]
    scen_names = sorted({s for per in paired["models"].values() for s in per}, key=list(SCENARIOS).index)
    for metric in PAIRED_METRICS:
        lines += [f"{LABELS[metric]} difference ({ref} - model):", "",
                  "| model | " + " | ".join(scen_names) + " |", "| --- |" + " --- |" * len(scen_names)]
        for other, per in paired["models"].items():
            cells = []
            for scen in scen_names:
                c = per[scen][metric]
                cells.append("n/a" if math.isnan(c["mean_diff"]) else
                             f"{c['mean_diff']:+.4f} ± {c['se']:.4f} {c['verdict']}")
            lines.append(f"| {other} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


# ------------------------------------------------------------------ writing
def _fmt(stat: Dict[str, Any], bold: bool = True) -> str:
    if math.isnan(stat["mean"]):
        return "n/a"
    text = f"{stat['mean']:.4f}" + ("" if math.isnan(stat["std"]) else f" ± {stat['std']:.4f}")
    return f"**{text}**" if bold and stat.get("best") else text


def _mean_or_dash(values) -> str:
    vals = [v for v in values if v is not None]
    return f"{np.mean(vals):.1f}" if vals else "-"


def format_markdown(results: Dict[str, Any]) -> str:
    models, scenarios, seeds = results["models"], results["scenarios"], results["seeds"]
    table = results["results"]
    lines = [f"# Model comparison on {results.get('dataset')}", ""]
    if results.get("command"):
        lines += ["Command:", "", "```bash", results["command"], "```", ""]
    lines += [f"Seeds {', '.join(map(str, seeds))}: mean ± sample standard deviation over seeds (ddof=1). "
              f"Warm test: `{results.get('warm_eval')}`. Backend: `{results.get('backend')}`. "
              "Best mean per column in **bold** (lowest MAE/RMSE, highest nDCG).", ""]
    lines += ["## MAE per scenario", "", "| model | " + " | ".join(scenarios) + " |",
              "| --- |" + " ---: |" * len(scenarios)]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_fmt(table[m][s]["mae"]) for s in scenarios) + " |")
    lines += ["", "## nDCG@3 per scenario", "", "| model | " + " | ".join(scenarios) + " |",
              "| --- |" + " ---: |" * len(scenarios)]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_fmt(table[m][s]["ndcg@3"]) for s in scenarios) + " |")
    lines += ["", "## Catalogue NDCG@10 per scenario", "",
              "All candidate items not in the user's support set ranked; relevant = query items rated at "
              "least `data.relevant_rating` (docs/algorithm.md, Metrics).", "",
              "| model | " + " | ".join(scenarios) + " |", "| --- |" + " ---: |" * len(scenarios)]
    for m in models:
        lines.append(f"| {m} | " + " | ".join(_fmt(table[m][s]["catalogue_ndcg@10"]) for s in scenarios) + " |")
    for scen in scenarios:
        users = table[models[0]][scen]["users"]
        ratings = table[models[0]][scen]["ratings"]
        lines += ["", f"## {scen}", "",
                  f"Scored per seed: users {', '.join(map(str, users))}; ratings {', '.join(map(str, ratings))}.", "",
                  "| model | " + " | ".join(LABELS[k] for k in METRICS) + " |",
                  "| --- |" + " ---: |" * len(METRICS)]
        for m in models:
            lines.append(f"| {m} | " + " | ".join(_fmt(table[m][scen][k]) for k in METRICS) + " |")
    lines += ["", "## Data counts per seed", "",
              "| seed | item year cutoff | train users | train ratings | valid users | valid ratings | "
              + " | ".join(f"{s} users / ratings" for s in scenarios) + " |",
              "| ---: |" + " ---: |" * (5 + len(scenarios))]
    for k in seeds:
        c = results["counts"][str(k)]
        sp = c.get("splits", {})
        row = [str(k), str(c.get("item_year_cutoff")),
               str(sp.get("train", {}).get("users", "")), str(sp.get("train", {}).get("ratings", "")),
               str(sp.get("valid", {}).get("users", "")), str(sp.get("valid", {}).get("ratings", ""))]
        row += [f"{table[models[0]][s]['users'][seeds.index(k)]} / {table[models[0]][s]['ratings'][seeds.index(k)]}"
                for s in scenarios]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Runs", "", "| model | best epoch per seed | epochs run | train s (mean) | evaluation s (mean) |",
              "| --- | --- | --- | ---: | ---: |"]
    for m in models:
        tm = results["timing"][m]
        lines.append(f"| {m} | {', '.join(str(e) for e in tm['best_epoch'])} | "
                     f"{', '.join(str(e) for e in tm['epochs_run'])} | {_mean_or_dash(tm['train_seconds'])} | "
                     f"{_mean_or_dash(tm['eval_seconds'])} |")
    if results.get("paired"):
        lines += format_paired(results["paired"])
    if results.get("wall_seconds") is not None:
        reused = sum(r["reused"] for runs in results.get("runs", {}).values() for r in runs.values())
        lines += ["", f"Wall time of this comparison: {_duration(results['wall_seconds'])} "
                      f"({reused} of {len(models) * len(seeds)} runs reused)."]
    return "\n".join(lines) + "\n"


def write_csv(results: Dict[str, Any], path: Path) -> None:
    header = ["model", "scenario", "seeds", "users_mean", "ratings_mean"]
    for k in METRICS:
        header += [f"{k}_mean", f"{k}_std"]
    header.append("best")
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for m in results["models"]:
            for scen in results["scenarios"]:
                cell = results["results"][m][scen]
                row = [m, scen, len(results["seeds"]), float(np.mean(cell["users"])), float(np.mean(cell["ratings"]))]
                for k in METRICS:
                    row += [_num(cell[k]["mean"]), _num(cell[k]["std"])]
                row.append(";".join(k for k in METRICS if cell[k]["best"]))
                w.writerow(row)


def _num(x: float) -> str:
    return "" if math.isnan(x) else repr(float(x))


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
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
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


def write_results(results: Dict[str, Any], out_dir, log: Callable[[str], None] = _log) -> List[Path]:
    """results.md, results.csv, results.json (and mae.png when matplotlib is there) in ``out_dir``."""
    out_dir = Path(out_dir)
    paths = [out_dir / "results.md", out_dir / "results.csv", out_dir / "results.json"]
    paths[0].write_text(format_markdown(results), encoding="utf-8")
    write_csv(results, paths[1])
    paths[2].write_text(json.dumps(_json_safe(results), indent=2) + "\n", encoding="utf-8")
    if plot_mae(results, out_dir / "mae.png"):
        paths.append(out_dir / "mae.png")
    else:
        log(PLOT_HINT)
    log("wrote " + ", ".join(str(p) for p in paths))
    return paths
