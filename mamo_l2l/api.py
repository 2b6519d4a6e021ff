"""Evaluating a run and loading a saved one: ``evaluate`` (the metrics.json content) and
``load_run`` (a run rebuilt from its best.pt). With ``load_data`` (runtime.py), ``fit``
(train.py) and ``run`` (pipeline.py) this is the Python API; see README's example."""
from __future__ import annotations

import time
from typing import Any, Dict, Optional, Sequence

from .checkpoint import library_versions, load_checkpoint
from .config import Config
from .data.types import SCENARIOS
from .errors import MamoError
from .plugins import loaded_plugins
from .progress import log
from .runfiles import write_metrics  # noqa: F401  (part of the API)
from .runid import check_compatible, code_identity
from .runtime import DataBundle, Run, build_run, check_device, load_data, peak_device_memory_mib, peak_memory_mib
from .scoring import evaluate_references, evaluate_scenarios, results_table  # noqa: F401
from .train import fit  # noqa: F401  (part of the API)


def _add_catalogue(run: Run, scenarios, results, references, progress: bool) -> None:
    """Catalogue ranking (mamo_l2l/catalogue.py) into ``results[s]["catalogue"]`` and
    ``references[name][s]["catalogue"]`` (name: global_mean, item_mean, popularity)."""
    from .catalogue import candidate_items, catalogue_metrics, reference_catalogue, relevant_threshold
    splits, data, t = run.bundle.splits, run.bundle.data, run.config.train
    threshold = relevant_threshold(run.config.data.relevant_rating, data.rating_range)
    candidates = candidate_items(data, splits, run.config.data)
    for s in scenarios:
        results[s]["catalogue"] = catalogue_metrics(run.model, run.algorithm, run.backend, splits.test[s],
                                                    candidates[s], data, run.inner, threshold, t.device,
                                                    ranking=run.ranking)
        if progress:
            c = results[s]["catalogue"]
            log.info(f"  catalogue {s}: {c['users']} users, {c['candidates']} candidates, "
                     f"NDCG@10 {c['ndcg@10']:.4f}")
    for name, per in reference_catalogue(splits, data, candidates, threshold, scenarios).items():
        for s in scenarios:
            references.setdefault(name, {}).setdefault(s, {})["catalogue"] = per[s]


def evaluate(run: Run, scenarios: Sequence[str] = SCENARIOS, progress: bool = False,
             catalogue: bool = True) -> Dict[str, Any]:
    """Score a run on the test scenarios, with the references beside it (the metrics.json content);
    ``catalogue`` adds the catalogue ranking (docs/algorithm.md, Metrics)."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise MamoError(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    splits, data, t = run.bundle.splits, run.bundle.data, run.config.train
    started = time.perf_counter()
    results = evaluate_scenarios(run.model, run.algorithm, run.backend, splits, data, run.inner,
                                 scenarios, t.device, progress=progress)
    seconds = time.perf_counter() - started
    references = evaluate_references(splits, data, scenarios)
    started = time.perf_counter()
    if catalogue:
        _add_catalogue(run, scenarios, results, references, progress)
    catalogue_seconds = time.perf_counter() - started
    n_tasks = sum(len(splits.test[s]) for s in scenarios)
    timing = dict(run.timing, eval_seconds=seconds, eval_tasks_per_s=n_tasks / max(seconds, 1e-9),
                  catalogue_seconds=catalogue_seconds, peak_memory_mib=peak_memory_mib())
    device_peak = peak_device_memory_mib(t.device)
    if device_peak is not None:
        timing["peak_device_memory_mib"] = device_peak
    return {
        "model": run.model_name, "dataset": run.config.data.dataset, "backend": t.backend, "seed": t.seed,
        "data_fingerprint": data.fingerprint, "local_steps_at_evaluation": run.inner.steps,
        "warm_eval": run.config.data.warm_eval, "best_epoch": run.best_epoch,
        "scenarios": results, "references": references, "ranking": run.ranking_notes,
        "counts": splits.counts, "history": run.history, "timing": timing,
        **({"pretrain_history": run.pretrain_history} if run.pretrain_history else {}),
        "config": run.config.to_dict(), "versions": library_versions(),
        "plugins": loaded_plugins(run.model_name), **code_identity(run.model_name),   # mamo_l2l/runid.py
    }


def load_run(checkpoint, data_dir: Optional[str] = None, cache_dir=None, device: Optional[str] = None,
             backend: Optional[str] = None, progress: bool = False) -> Run:
    """Rebuild a trained run from ``best.pt``: same data (checked by fingerprint), model, memories."""
    ckpt = load_checkpoint(checkpoint)
    from .plugins import import_recorded
    import_recorded(ckpt, checkpoint)
    if ckpt.get("kind") != "model":
        raise MamoError("this is a resume checkpoint (last.pt); evaluate the run's best.pt", path=str(checkpoint))
    config = Config.from_recorded(ckpt["config"], source=str(checkpoint))
    if data_dir is not None:
        config = config.override("data", data_dir=str(data_dir))
    if device is not None or backend is not None:
        config = config.override("train", device=device, backend=backend)
    check_device(config.train.device)   # before any data is read
    bundle = load_data(config, cache_dir=cache_dir, progress=progress)
    run = build_run(bundle, config, ckpt["model_name"], fresh=False)   # the checkpoint's state replaces the start
    check_compatible(ckpt, run, checkpoint, allow=("train.backend",))   # evaluating with another backend is allowed
    try:
        run.model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise MamoError(f"checkpoint does not fit the model built from its config: {e}", path=str(checkpoint))
    from .ranking import Ranking
    run.ranking = Ranking.from_payload(ckpt.get("ranking"))
    run.ranking_notes = ckpt.get("ranking_notes")
    run.best_epoch = int(ckpt.get("best_epoch", 0))
    run.history = list(ckpt.get("history", []))
    return run


__all__ = ["Config", "DataBundle", "Run", "load_data", "fit", "evaluate", "load_run", "results_table",
           "write_metrics", "check_compatible"]
