"""The run pipeline: one run, from a config to its folder, the same for every command.

``run(config, out_dir)`` locks the folder, writes ``config.yaml``, loads the data (or takes a
bundle already loaded), logs the counts, trains (``train.fit``: early stopping, ``last.pt`` after
every epoch, ``best.pt``), evaluates the four scenarios with the references and writes
``metrics.json`` and ``results.txt`` (runfiles.py). `mamo-l2l train` is this one call;
`mamo-l2l compare` calls it once per model and seed with ``reuse=True, resume="auto"``.

The library logs what happens (logger ``"mamo_l2l"``, docs/operations.md); the CLI decides what
is shown.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Union

from mamo_l2l.algorithms import require_models
from mamo_l2l.api.evaluating import evaluate
from mamo_l2l.api.load import load_run
from mamo_l2l.backends import require_backend
from mamo_l2l.core.config import Config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.progress import log, run_log
from mamo_l2l.data.protocol import format_counts
from mamo_l2l.training import distributed
from mamo_l2l.training.checkpoint import load_checkpoint
from mamo_l2l.training.faults import TrainingInterrupted, stop_requested
from mamo_l2l.training.fit import fit
from mamo_l2l.training.run import DataBundle, Run, check_device, load_data
from mamo_l2l.training.runfiles import (
    BEST,
    LAST,
    RunLock,
    read_metrics,
    write_config,
    write_metrics,
)
from mamo_l2l.training.runid import RESUME_MAY_CHANGE, why_differs
from mamo_l2l.training.tracking import require_tensorboard


@dataclass
class RunResult:
    """What ``run`` did: the metrics.json content, the trained run (None when reused), whether
    the folder's finished run was reused and whether training continued from its last.pt."""
    metrics: Dict[str, Any]
    run: Optional[Run]
    out_dir: Path
    reused: bool = False
    resumed: bool = False


def run(config: Config, out_dir, resume: Union[bool, str] = False, reuse: bool = False,
        bundle: Optional[DataBundle] = None, cache_dir=None, progress: bool = False,
        catalogue: bool = True, reevaluate: bool = False) -> RunResult:
    """Train and evaluate ``config.model.name`` under ``config`` into ``out_dir``.

    ``resume``: False starts afresh; True continues from ``out_dir/last.pt`` (afresh when there is
    none; MamoError when it is another run); ``"auto"`` continues only when last.pt is this very
    run (runid.py), else starts afresh. ``reuse=True`` returns the folder's metrics.json without
    training when it records this very run. ``bundle``: the data already loaded for this data
    config and seed (compare loads it once per seed). A SIGINT/SIGTERM under
    ``faults.graceful_stop`` ends the call with ``TrainingInterrupted`` after the epoch's
    checkpoint (docs/operations.md). ``catalogue=False`` skips the catalogue ranking in the
    evaluation (slow on large catalogues: docs/performance.md has Book-Crossing's figures).
    ``reevaluate=True`` (with ``reuse``): a folder whose best.pt is this run (config and data, made
    by any code) is evaluated again by this code instead of being reused or retrained
    (``reevaluated``).
    """
    config = config.validate()
    require_models(config.model.name)     # fail before any data is read or file written
    require_backend(config.train.backend)
    check_device(config.train.device)
    if config.train.log_dir:
        require_tensorboard()             # train.log_dir / --tensorboard: fail before the data is read
    out = Path(out_dir)
    world = distributed.current()
    if not world.is_main:
        return _follow(config, out, bool(resume), bundle, cache_dir, world)
    with RunLock(out):
        if not reuse:
            write_config(out, config)
        if bundle is None:
            bundle = load_data(config, cache_dir=cache_dir, progress=progress)
            log_counts(bundle.splits.counts)
        world.barrier()   # the other ranks read the data now (from the processed cache)
        if reuse and reevaluate:
            metrics = reevaluated(out, config, bundle, progress, catalogue)
            if metrics is not None:
                return RunResult(metrics, None, out, reused=True)
        if reuse:
            metrics = reusable_metrics(out, config, bundle.data.fingerprint)
            if metrics is not None:
                log.info(f"  reusing {out} (its metrics.json has the same config and data)")
                return RunResult(metrics, None, out, reused=True)
            write_config(out, config)
        if resume == "auto":
            resume = resumable(out, config, bundle.data.fingerprint)
            if resume:
                log.info(f"  continuing the interrupted run in {out} from its {LAST}")
        return _train_and_evaluate(bundle, config, out, bool(resume), progress, catalogue)


def _train_and_evaluate(bundle: DataBundle, config: Config, out: Path, resume: bool, progress: bool,
                        catalogue: bool = True) -> RunResult:
    log.info(f"training {config.model.name} with backend {config.train.backend} for up to {config.train.epochs} "
             f"epochs ({len(bundle.splits.train)} training users, {len(bundle.splits.valid)} validation users)")
    trained = fit(bundle, config, model_name=config.model.name, out_dir=out, resume=resume, progress=progress)
    if stop_requested() is not None:   # the signal came after the last epoch: stop before evaluating
        raise TrainingInterrupted(stop_requested(), len(trained.history), out)
    metrics = evaluate(trained, progress=progress, catalogue=catalogue)
    write_metrics(metrics, out)
    return RunResult(metrics, trained, out, resumed=resume)


def _follow(config: Config, out: Path, resume: bool, bundle: Optional[DataBundle], cache_dir, world) -> RunResult:
    """A rank other than 0 of a distributed run (docs/distributed.md): wait until rank 0 has the
    data (so it is read from the processed cache), train its share of every meta-batch, and
    leave the run folder, the validation, the evaluation and the output to rank 0."""
    world.barrier()
    if bundle is None:
        bundle = load_data(config, cache_dir=cache_dir, progress=False)
    trained = fit(bundle, config, model_name=config.model.name, out_dir=None, resume=resume, progress=False)
    return RunResult({}, trained, out, resumed=resume)


def reusable_metrics(folder: Path, config: Config, fingerprint: str) -> Optional[Dict[str, Any]]:
    """The folder's metrics.json if it was made with this config on this data by this code,
    else None (logging why, when there was one)."""
    metrics = read_metrics(folder)
    if metrics is None:
        return None
    why = why_differs(metrics, config.to_dict(), config.model.name, fingerprint)
    if why is not None:
        log.info(f"  not reusing {Path(folder) / 'metrics.json'}: {why}; training afresh")
        return None
    return metrics


EVALUATION_TIMING = ("eval_seconds", "eval_tasks_per_s", "catalogue_seconds", "peak_memory_mib",
                     "peak_device_memory_mib")


def reevaluated(folder: Path, config: Config, bundle: DataBundle, progress: bool,
                catalogue: bool) -> Optional[Dict[str, Any]]:
    """The metrics of ``folder/best.pt`` evaluated again by this code, written to its metrics.json,
    when that checkpoint is this run (config and data; the code may differ), else None (logging
    why). The new metrics.json records the training code as ``trained_by`` and keeps the
    training's timing from the old one."""
    path = Path(folder) / BEST
    if not path.is_file():
        return None
    try:
        ckpt = load_checkpoint(path)
    except MamoError as e:
        log.info(f"  not re-evaluating {path}: {e}")
        return None
    why = why_differs(ckpt, config.to_dict(), config.model.name, bundle.data.fingerprint, code=False)
    if why is not None:
        log.info(f"  not re-evaluating {path}: {why}")
        return None
    log.info(f"  evaluating {path} again with this code")
    metrics = evaluate(load_run(path, bundle=bundle), progress=progress, catalogue=catalogue)
    old = (read_metrics(folder) or {}).get("timing", {})
    metrics["timing"] = {**{k: v for k, v in old.items() if k not in EVALUATION_TIMING}, **metrics["timing"],
                         **{k: old[k] for k in ("start_seconds", "ranking_seconds") if k in old}}
    metrics["trained_by"] = {k: ckpt.get(k) for k in ("mamo_l2l_version", "code_fingerprint")}
    write_metrics(metrics, folder)
    return metrics


def resumable(folder: Path, config: Config, fingerprint: str) -> bool:
    """Whether ``folder/last.pt`` is an interrupted run of exactly this run."""
    path = Path(folder) / LAST
    if not path.is_file():
        return False
    try:
        ckpt = load_checkpoint(path)
    except MamoError:   # an unreadable last.pt just means: start afresh
        return False
    return why_differs(ckpt, config.to_dict(), config.model.name, fingerprint, RESUME_MAY_CHANGE) is None


def log_counts(counts: Dict[str, Any]) -> None:
    """The data counts, through the logger (the story of a run)."""
    for line in format_counts(counts).splitlines():
        run_log.info(line)
