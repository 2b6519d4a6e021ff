"""Evaluating a run: ``evaluate`` scores the test scenarios with the references beside them and,
optionally, the catalogue ranking; its answer is the content of a run's metrics.json."""
from __future__ import annotations

import copy
import time
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from mamo_l2l.algorithms import loaded_plugins
from mamo_l2l.api.reference_cache import read_references, reference_key, write_references
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.progress import ensure_visible, log
from mamo_l2l.data.types import SCENARIOS
from mamo_l2l.evaluation.catalogue import (
    CatalogueTargets,
    UserItems,
    candidate_items,
    catalogue_metrics,
    constant_scorers,
    reference_catalogue,
    relevant_threshold,
    training_popular,
)
from mamo_l2l.evaluation.ranking import choice_prior
from mamo_l2l.evaluation.scoring import evaluate_references, evaluate_scenarios
from mamo_l2l.evaluation.topn_references import (
    TOPN_REFERENCES,
    als_rating_metrics,
    fit_references,
    prior_scorer,
)
from mamo_l2l.training.checkpoint import library_versions
from mamo_l2l.training.run import (
    Run,
    peak_device_memory_mib,
    peak_memory_mib,
)
from mamo_l2l.training.runid import code_identity


def _add_catalogue(run: Run, scenarios, results, references, progress: bool) -> Dict[str, Any]:
    """Catalogue ranking (mamo_l2l/evaluation/catalogue.py) into ``results[s]["catalogue"]`` and
    ``references[name][s]["catalogue"]`` (name: global_mean, item_mean, popularity and the top-N
    references of evaluation/topn_references.py, fitted and chosen on the validation users;
    ``als`` also gets the query metrics). Returns the references' choices (metrics.json
    ``reference_choices``)."""
    splits, data, t = run.bundle.splits, run.bundle.data, run.config.train
    threshold = relevant_threshold(run.config.data.relevant_rating, data.rating_range)
    candidates = candidate_items(data, splits, run.config.data)
    rated, popular = UserItems(data), training_popular(splits, data)
    targets = {s: CatalogueTargets(splits.test[s], candidates[s], threshold, rated) for s in scenarios}
    for s in scenarios:
        results[s]["catalogue"] = catalogue_metrics(run.model, run.algorithm, run.backend, splits.test[s],
                                                    candidates[s], data, run.inner, threshold, t.device,
                                                    ranking=run.ranking, rated=rated, popular=popular,
                                                    targets=targets[s], progress=f"catalogue {s}" if progress else "")
        if progress:
            c = results[s]["catalogue"]
            log.info(f"  catalogue {s}: {c['users']} users, {c['candidates']} candidates, "
                     f"NDCG@10 {c['ndcg@10']:.4f}")
    started = time.perf_counter()
    shared, source = _shared_references(run, scenarios, threshold, candidates, targets, progress)
    for name, per in shared["catalogue"].items():
        for s in scenarios:
            references.setdefault(name, {}).setdefault(s, {})["catalogue"] = dict(per[s])
    for s, m in shared["als"].items():
        references["als"][s].update(m)
    prior = run.ranking.prior if run.ranking is not None else None
    if prior is not None and not np.array_equal(prior, shared["prior"]):   # the run's own choice prior
        own = reference_catalogue(splits, data, candidates, threshold, scenarios,
                                  {"choice-prior": prior_scorer(prior)}, targets)["choice-prior"]
        for s in scenarios:
            references["choice-prior"][s]["catalogue"] = own[s]
    choices = copy.deepcopy(shared["choices"])
    if source != "fitted":   # fitted and scored for another run, or read from the cache: this run's own seconds
        choices["seconds"] = {"fit_and_choose": 0.0, "score": time.perf_counter() - started, source: True}
    return choices


def _shared_references(run: Run, scenarios, threshold: float, candidates, targets,
                       progress: bool) -> Tuple[Dict[str, Any], str]:
    """({"catalogue": {reference: {scenario: metrics}}, "als": ALS query metrics per scenario,
    "choices": the choices, "prior": the choice prior used}, where they came from: "fitted" now,
    "shared" with an earlier run of this process on the same bundle, or "cached" on disk). They
    depend on the data and the split only (the choice prior is ranking.choice_prior of the
    training tasks), so they are fitted and scored once per data bundle (``DataBundle.derived``)
    and kept in the cache for later processes (api/reference_cache.py)."""
    key = ("references", threshold, tuple(scenarios))
    bundle = run.bundle
    if key in bundle.derived:
        if progress:
            log.info("  references: fitted and scored for another run on this data and split")
        return bundle.derived[key], "shared"
    disk_key = reference_key(bundle, threshold, scenarios) if bundle.cache_dir is not None else None
    shared = read_references(bundle.cache_dir, disk_key) if disk_key else None
    source = "cached"
    if shared is None:
        shared, source = _fit_and_score_references(run, scenarios, threshold, candidates, targets, progress), "fitted"
        if disk_key:
            write_references(bundle.cache_dir, disk_key, shared)
    elif progress:
        log.info(f"  references: read from the cache ({disk_key[:12]}...; docs/data.md)")
    bundle.derived[key] = shared
    return shared, source


def _fit_and_score_references(run: Run, scenarios, threshold: float, candidates, targets,
                              progress: bool) -> Dict[str, Any]:
    """Fit the references on the training tasks, choose their settings on the validation users
    and score them on the catalogue (evaluation/topn_references.py)."""
    splits, data, seed = run.bundle.splits, run.bundle.data, run.config.train.seed
    started = time.perf_counter()
    if progress:
        log.info(f"  references: fitting {', '.join(TOPN_REFERENCES)}; choosing on {len(splits.valid)} valid users")
    prior = choice_prior(data, splits.train, seed)
    topn, als, choices = fit_references(splits, data, threshold, seed, prior)
    fitted = time.perf_counter()
    if progress:
        log.info(f"  references fitted and chosen in {fitted - started:.1f}s; ranking the catalogue")
    scorers = {**constant_scorers(splits, data), **topn}
    catalogue = reference_catalogue(splits, data, candidates, threshold, scenarios, scorers, targets, progress)
    choices["seconds"] = {"fit_and_choose": fitted - started, "score": time.perf_counter() - fitted}
    return {"catalogue": catalogue, "als": als_rating_metrics(als, splits, data, scenarios),
            "choices": choices, "prior": prior}


def evaluate(run: Run, scenarios: Sequence[str] = SCENARIOS, progress: bool = False,
             catalogue: bool = True) -> Dict[str, Any]:
    """Score a run on the test scenarios, with the references beside it (the metrics.json content);
    ``catalogue`` adds the catalogue ranking (docs/algorithm.md, Metrics)."""
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        raise MamoError(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    if progress:
        ensure_visible()
    splits, data, t = run.bundle.splits, run.bundle.data, run.config.train
    started = time.perf_counter()
    results = evaluate_scenarios(run.model, run.algorithm, run.backend, splits, data, run.inner,
                                 scenarios, t.device, progress=progress)
    seconds = time.perf_counter() - started
    references = evaluate_references(splits, data, scenarios)
    started = time.perf_counter()
    choices = _add_catalogue(run, scenarios, results, references, progress) if catalogue else None
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
        **({"reference_choices": choices} if choices else {}),
        "counts": splits.counts, "history": run.history, "timing": timing,
        **({"pretrain_history": run.pretrain_history} if run.pretrain_history else {}),
        "config": run.config.to_dict(), "versions": library_versions(),
        "plugins": loaded_plugins(run.model_name), **code_identity(run.model_name),   # mamo_l2l/training/runid.py
    }


