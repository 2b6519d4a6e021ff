"""Compare models over seeds: train (or reuse) one run per (model, seed), then write
``results.md``, ``results.csv`` and ``results.json`` with the mean and sample standard deviation
over seeds of every metric per scenario, the best model per column marked, the data counts and
the exact command; plus ``mae.png`` (MAE per scenario, std error bars) when matplotlib is there.

Layout of ``out_dir``::

    runs/<model>-seed<k>/   one run folder each (config.yaml, best.pt, last.pt, metrics.json, results.txt)
    results.md / results.csv / results.json / mae.png

Each run is the run pipeline (pipeline.py) with ``reuse=True, resume="auto"``: a run whose
``metrics.json`` was made with the same result-affecting config (mamo_l2l/training/runid.py: the location
of the data, the device and the thread count aside) on the same data by the same package version
and model code (code fingerprint) is reused, not retrained; otherwise it is retrained and a log
line says why. A run interrupted after some epochs continues from its ``last.pt`` when that
checkpoint matches the same way. Aggregation and the CSV are pandas'; progress is logged
(logger "mamo_l2l").
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from mamo_l2l.algorithms import MODELS, require_models
from mamo_l2l.api.pipeline import run
from mamo_l2l.api.report import aggregate, duration, paired_comparison, write_results
from mamo_l2l.core.config import Config, packaged_configs, preset_values
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.progress import log
from mamo_l2l.data.types import SCENARIOS
from mamo_l2l.evaluation.topn_references import TOPN_REFERENCES
from mamo_l2l.training.run import load_data


# ------------------------------------------------------------------ runs
def run_dir(out_dir, model: str, seed: int) -> Path:
    return Path(out_dir) / "runs" / f"{model}-seed{seed}"


#: what a preset entry does not change: the run budget and the machine stay the shared config's
PRESET_KEEPS = ("train.epochs", "train.patience", "train.seed", "train.device", "train.threads",
                "train.backend", "data.dataset", "data.data_dir", "data.format")


def require_entries(entries: Sequence[str]) -> None:
    """MamoError unless every ``--models`` entry is a registered model or a packaged config."""
    presets = packaged_configs()
    try:
        require_models(*[e for e in entries if e not in presets], listing=True)
    except MamoError as e:
        raise MamoError(f"{e}; or a packaged config: {', '.join(presets)}") from None


def entry_config(config: Config, entry: str) -> Config:
    """The config of one ``--models`` entry: a registered model runs under ``config`` with its
    name; a packaged config's name (``mamo-paper``, ``fomelu``, ``melu-5``, ...) runs under
    ``config`` with that preset's keys over it, except ``PRESET_KEEPS``."""
    if entry in MODELS or entry not in packaged_configs():
        return config.override("model", name=entry)
    out = config
    for section, values in preset_values(entry).items():
        kept = {k: v for k, v in values.items() if f"{section}.{k}" not in PRESET_KEEPS}
        out = out.override(section, **kept)
    return out




def _run_config(seed_config: Config, model: str, seed: int) -> Config:
    """The config of one run: the entry's preset (``entry_config``), and one TensorBoard folder per
    run beside the others when ``train.log_dir`` is set."""
    run_config = entry_config(seed_config, model)
    if seed_config.train.log_dir:
        run_log_dir = Path(seed_config.train.log_dir) / f"{model}-seed{seed}"
        run_config = run_config.override("train", log_dir=str(run_log_dir))
    return run_config


def seed_list(seeds: Union[int, Sequence[int]]) -> List[int]:
    """Seeds 0..N-1 for an int N, else the given seeds in order (repeats dropped)."""
    if isinstance(seeds, int):
        return list(range(seeds))
    return list(dict.fromkeys(int(s) for s in seeds))


def _checked(models, seeds, paired_with):
    """(models without repeats, the seed list) after the argument checks of ``compare``."""
    models = list(dict.fromkeys(models))
    if paired_with is not None and paired_with not in models:
        raise MamoError(f"--paired-with {paired_with!r} is not one of --models ({', '.join(models)})")
    require_entries(models)
    seeds = seed_list(seeds)
    if not models or not seeds or min(seeds) < 0:
        raise MamoError("compare needs at least one model and --seeds >= 1 (or a list of seeds >= 0)")
    return models, seeds


def compare(config: Config, models: Sequence[str], seeds: Union[int, Sequence[int]], out_dir, cache_dir=None,
            command: Optional[str] = None, progress: bool = True, paired_with: Optional[str] = None,
            catalogue: bool = True, reevaluate: bool = False) -> Dict[str, Any]:
    """Train or reuse ``models`` x seeds (0..seeds-1 for an int, else the listed seeds) under
    ``config`` (its model name and seed are set per run; an entry that names a packaged config
    runs under that preset, ``entry_config``), write the result files into ``out_dir`` and
    return the results.json content. ``paired_with`` (default: the first model) is compared
    seed by seed with each other model (``paired_comparison``). ``catalogue=False`` skips the
    catalogue ranking of newly trained runs (slow on large catalogues: on Book-Crossing, one
    thread, about 4 minutes of the model's own ranking a run, and 5 more to fit the references
    once per seed and data config; docs/performance.md). ``reevaluate``: a run whose best.pt is
    this run is evaluated again by this code, not reused or retrained (pipeline.reevaluated)."""
    models, seeds = _checked(models, seeds, paired_with)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    total = len(models) * len(seeds)
    done = 0
    seconds_by_model: Dict[str, List[float]] = {}
    per_run: Dict[str, Dict[int, Dict[str, Any]]] = {m: {} for m in models}
    reused_runs: Dict[str, Dict[int, bool]] = {m: {} for m in models}
    started = time.perf_counter()
    for seed in seeds:
        seed_config = config.override("train", seed=seed)
        bundles: Dict[str, Any] = {}     # one per data config of the seed (a preset may change it)
        for model in models:
            run_config = _run_config(seed_config, model, seed)
            data_key = repr(sorted(run_config.to_dict()["data"].items()))
            if data_key not in bundles:
                bundles[data_key] = load_data(run_config, cache_dir=cache_dir, progress=progress)
            bundle = bundles[data_key]
            folder = run_dir(out_dir, model, seed)
            log.info(f"[run {done + 1}/{total}] {model} seed {seed}: {done} done, elapsed "
                     f"{duration(time.perf_counter() - started)}, "
                     f"ETA {_eta(models, seeds, done, seconds_by_model)}")
            t0 = time.perf_counter()
            outcome = run(run_config, folder, resume="auto", reuse=True, bundle=bundle, progress=progress,
                          catalogue=catalogue, reevaluate=reevaluate)
            metrics, reused = outcome.metrics, outcome.reused
            seconds = time.perf_counter() - t0
            if not reused:
                seconds_by_model.setdefault(model, []).append(seconds)
                log.info(f"  {model} seed {seed} done in {duration(seconds)}: MAE "
                         + ", ".join(f"{s} {metrics['scenarios'][s]['mae']:.4f}" for s in SCENARIOS
                                     if s in metrics["scenarios"]))
            per_run[model][seed] = metrics
            reused_runs[model][seed] = reused
            done += 1
    rows = models + reference_rows(per_run, models, seeds)
    results = aggregate(per_run, rows, seeds)
    if len(rows) > 1:
        results["paired"] = paired_comparison(results, paired_with or models[0])
    results.update(dataset=config.data.dataset, command=command, warm_eval=config.data.warm_eval,
                   backend=config.train.backend, config=config.to_dict(),
                   runs={m: {str(s): {"dir": str(run_dir(out_dir, m, s)), "reused": reused_runs[m][s]}
                             for s in seeds} for m in models},
                   wall_seconds=time.perf_counter() - started)
    write_results(results, out_dir)
    return results


def reference_rows(per_run: Dict[str, Dict[int, Dict[str, Any]]], models: Sequence[str],
                   seeds: Sequence[int]) -> List[str]:
    """Add the catalogue references (popularity and evaluation/topn_references.py's) of the first
    model's runs to ``per_run`` as rows of their own (same split per seed: the same users), so the
    tables and the paired comparison list them beside the models; returns their names (those in
    every seed's metrics, not already a model)."""
    first = per_run[models[0]]
    names = [n for n in ("popularity", *TOPN_REFERENCES)
             if n not in models and all(n in first[k].get("references", {}) for k in seeds)]
    for n in names:
        per_run[n] = {}
        for k in seeds:
            scen = {}
            for s, m in first[k]["references"][n].items():
                scen[s] = dict(m, users=m.get("users", m["catalogue"]["users"]), ratings=m.get("ratings", 0))
            per_run[n][k] = {"scenarios": scen, "counts": first[k].get("counts", {})}
    return names


def _eta(models, seeds, done, seconds_by_model) -> str:
    """Remaining time, from the mean duration of each model's runs trained so far (a model not
    yet seen is estimated by the mean over all trained runs)."""
    all_secs = [s for v in seconds_by_model.values() for s in v]
    if not all_secs:
        return "unknown until a run has finished"
    overall = float(np.mean(all_secs))
    remaining = 0.0
    order = [(s, m) for s in seeds for m in models]
    for s, m in order[done:]:
        remaining += float(np.mean(seconds_by_model[m])) if m in seconds_by_model else overall
    return duration(remaining)




























