"""Meta-training with early stopping on the validation users, checkpoints and resume."""
from __future__ import annotations

import copy
import json
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from .algorithms import build_model
from .algorithms.base import Algorithm
from .algorithms.baselines import trainer_of
from .backends import get_backend
from .backends.base import Backend, InnerLoop
from .checkpoint import load_checkpoint, save_checkpoint
from .config import SELECT_METRICS, Config
from .data.batching import MetaBatchSampler, pad_tasks, task_ratings
from .data.types import EncodedDataset, Splits
from .errors import MamoError
from .faults import TrainingInterrupted, check_finite, stop_requested
from .progress import bar as progress_bar, ensure_visible, log
from .runfiles import RunLock
from .runid import RESUME_MAY_CHANGE, code_identity
from .scoring import score_tasks

LAST = "last.pt"
BEST = "best.pt"


@dataclass
class DataBundle:
    """Everything the data side produces for one (data config, seed)."""
    data: EncodedDataset
    splits: Splits
    encoders: Any
    config: Config


@dataclass
class Run:
    """A trained (or loaded) model with what is needed to evaluate it."""
    model: torch.nn.Module
    algorithm: Algorithm
    backend: Backend
    config: Config
    model_name: str
    bundle: DataBundle
    best_epoch: int = 0
    history: List[Dict[str, float]] = field(default_factory=list)
    timing: Dict[str, float] = field(default_factory=dict)
    out_dir: Optional[Path] = None
    _recommender: Any = field(default=None, repr=False, compare=False)

    def recommender(self):
        """This run as an ``ItemRecommender`` (mamo_l2l/recommend.py, docs/serving.md), built once."""
        if self._recommender is None:
            from .recommend import ItemRecommender
            self._recommender = ItemRecommender.from_run(self)
        return self._recommender

    def recommend(self, ratings=(), user=None, k: int = 10, exclude_rated: bool = True, candidates=None):
        """Top-k items for a new user who gave ``ratings`` (see ``ItemRecommender.recommend``)."""
        return self.recommender().recommend(ratings, user=user, k=k, exclude_rated=exclude_rated,
                                            candidates=candidates)

    def recommend_batch(self, frame, k: int = 10, exclude_rated: bool = True, users=None):
        """Top-k for every user of a user_id, item_id, rating frame (``ItemRecommender.recommend_batch``)."""
        return self.recommender().recommend_batch(frame, k=k, exclude_rated=exclude_rated, users=users)

    @property
    def inner(self) -> InnerLoop:
        """The local steps: ``train.local_steps``, or 0 for a model that does not adapt per user
        (it then predicts from its global parameters)."""
        t = self.config.train
        steps = t.local_steps if getattr(self.algorithm, "adapts", True) else 0
        return InnerLoop(steps, t.local_lr, t.first_order)


def load_data(config: Config, cache_dir=None, progress: bool = False) -> DataBundle:
    """Read, encode and split the configured data set (cached; see docs/data.md)."""
    from .data.pipeline import prepare
    data, splits, encoders = prepare(config.data, config.train.seed, cache_dir=cache_dir, progress=progress)
    if not splits.train:
        raise MamoError(f"data set {config.data.dataset!r} gives no training tasks under this protocol "
                        f"(min_ratings={config.data.min_ratings}); check the data or the data config")
    return DataBundle(data, splits, encoders, config)


def training_user_rows(bundle: DataBundle) -> torch.Tensor:
    """Feature rows [n, S_u] of the distinct users of the training tasks (in user index order)."""
    users = np.unique(np.asarray([t.user for t in bundle.splits.train], dtype=np.int64))
    return torch.from_numpy(np.ascontiguousarray(bundle.data.user_x[users]))


def rating_mean(splits: Splits) -> float:
    return float(task_ratings(splits.train)[1].mean())


_TORCH_DEFAULT_THREADS = torch.get_num_threads()


def threads_for(config: Config) -> int:
    """CPU intra-op threads for a run: ``train.threads``, or with 0 (auto) one thread for the
    per-task backends (many small ops: more threads do not help them, and two processes each
    spinning two OpenMP threads on two cores slowed training ~100x, measured) and torch's default
    for the batched func backend (large batched ops, which do use the cores)."""
    if config.train.threads > 0:
        return config.train.threads
    return _TORCH_DEFAULT_THREADS if config.train.backend == "func" else 1


def build_run(bundle: DataBundle, config: Config, model_name: str) -> Run:
    """A freshly initialised model (seeded by config.train.seed) and its backend."""
    torch.set_num_threads(threads_for(config))
    torch.manual_seed(config.train.seed)
    model, algorithm = build_model(model_name, config.model, bundle.data, rating_mean(bundle.splits))
    model.to(config.train.device)
    return Run(model, algorithm, get_backend(config.train.backend), config, model_name, bundle)


def _optimizer(model: torch.nn.Module, config: Config) -> torch.optim.Optimizer:
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.outer_optimizer == "adam":
        return torch.optim.Adam(params, lr=t.outer_lr)
    return torch.optim.SGD(params, lr=t.outer_lr)


def check_device(device: str) -> None:
    """MamoError unless ``device`` names a device torch can use here (checked before any work)."""
    if device == "cpu":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise MamoError(f"config key train.device: {device!r} is not a device; expected cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MamoError(f"--device {device} was asked for, but torch sees no CUDA device here "
                            "(use --device cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MamoError(f"--device {device}: torch sees only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise MamoError(f"--device {device} was asked for, but torch sees no MPS device here")
    else:
        raise MamoError(f"config key train.device: {device!r} is not supported; expected cpu, cuda or cuda:N")


_check_device = check_device


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class MetaEpochs:
    """One epoch of meta-training: seeded meta-batches of training tasks through the backend,
    an outer step per batch, then the batch's memory writes (what ``fit`` calls per epoch)."""

    unit = "task"

    def __init__(self, run: Run, optimizer: torch.optim.Optimizer):
        self.run, self.optimizer = run, optimizer
        t = run.config.train
        self.sampler = MetaBatchSampler(run.bundle.splits.train, t.meta_batch_size, t.seed)
        self.total = len(run.bundle.splits.train)

    def run_epoch(self, epoch: int, bar=None) -> List[float]:
        run, t = self.run, self.run.config.train
        losses: List[float] = []
        params = [p for p in run.model.parameters() if p.requires_grad]
        for number, group in enumerate(self.sampler.epoch(epoch), start=1):
            batch = pad_tasks(group, run.bundle.data).to(t.device)
            out = run.backend.run_batch(run.model, run.algorithm, batch, run.inner, training=True)
            loss = out.query_loss.mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            check_finite(loss, params, epoch, number, run.config)   # before the step: nothing bad is kept
            self.optimizer.step()
            run.algorithm.apply_writes(out.writes)
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(len(group))
                bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        return losses


def _epochs(run: Run, optimizer):
    kind = trainer_of(run.algorithm)
    if kind == "meta":
        return MetaEpochs(run, optimizer)
    if kind == "supervised":
        from .supervised import SupervisedEpochs
        return SupervisedEpochs(run, optimizer)
    raise MamoError(f"model {run.model_name!r} has an unknown trainer {kind!r} (expected meta, supervised or none)")


def fit(bundle: DataBundle, config: Optional[Config] = None, model_name: str = "mamo", out_dir=None,
        resume: bool = False, progress: bool = False, stop_after_epoch: Optional[int] = None) -> Run:
    """Train ``model_name`` on the bundle's training tasks, early-stopping on validation.

    How depends on the model's algorithm (``trainer``, algorithms/baselines.py): meta-training
    through the backend (MAMO, MAML, MeLU), supervised minibatch regression (mamo_l2l/supervised.py),
    or fitting without gradient steps (the mean references). Each epoch ends with a checkpoint
    ``out_dir/last.pt`` (everything needed to resume); the best model by validation
    ``select_metric`` is kept and written to ``out_dir/best.pt``. With ``resume=True`` a run
    continues from ``last.pt`` and ends exactly where an uninterrupted run with the same seed
    would. ``stop_after_epoch`` ends the call after that epoch (as if killed; used by tests).

    ``out_dir`` is locked for the call (mamo_l2l/runfiles.py). Under ``faults.graceful_stop`` a
    SIGINT/SIGTERM ends the call after the current epoch's checkpoint with ``TrainingInterrupted``;
    a NaN/inf loss or gradient raises MamoError (mamo_l2l/faults.py, docs/operations.md).
    ``progress=True`` shows progress and the epoch lines (logger "mamo_l2l", mamo_l2l/progress.py).
    """
    if progress:
        ensure_visible()
    if out_dir is None:
        return _fit(bundle, config, model_name, None, resume, progress, stop_after_epoch)
    with RunLock(out_dir):
        return _fit(bundle, config, model_name, out_dir, resume, progress, stop_after_epoch)


def _fit(bundle, config, model_name, out_dir, resume, progress, stop_after_epoch) -> Run:
    config = (config or bundle.config).validate()
    _check_device(config.train.device)
    t = config.train
    run = build_run(bundle, config, model_name)
    run.out_dir = Path(out_dir) if out_dir is not None else None
    if trainer_of(run.algorithm) == "none":
        return _fit_without_training(run)
    model, algorithm, backend = run.model, run.algorithm, run.backend
    train_users = training_user_rows(bundle)
    algorithm.begin_training(train_users, t.seed)   # e.g. MAMO's memory keys (a resume overwrites them)
    optimizer = _optimizer(model, config)
    epochs = _epochs(run, optimizer)
    state = {"epoch": 0, "best_score": float("inf"), "best_epoch": 0, "bad_epochs": 0, "stopped": False,
             "best_state": copy.deepcopy(model.state_dict()), "history": [], "train_seconds": 0.0,
             "train_tasks": 0}
    if resume:
        state = _restore(run, optimizer, state)
    train_tasks = bundle.splits.train
    valid_tasks = bundle.splits.valid
    for epoch in range(state["epoch"] + 1, t.epochs + 1):
        if state["stopped"]:
            break
        started = time.perf_counter()
        model.train()
        bar = progress_bar(epochs.total, f"epoch {epoch}/{t.epochs}", progress, epochs.unit)
        losses = epochs.run_epoch(epoch, bar)
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - started
        epoch_notes = algorithm.end_epoch(train_users)   # e.g. MAMO's slot re-seeding and diagnostics
        state["train_seconds"] += seconds
        state["train_tasks"] += len(train_tasks)
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                  "seconds": seconds, "tasks_per_s": len(train_tasks) / max(seconds, 1e-9), **epoch_notes}
        if valid_tasks and epoch % t.eval_every == 0:
            v = score_tasks(model, algorithm, backend, valid_tasks, bundle.data, run.inner, t.device)
            record.update({f"valid_{k}": v[k] for k in ("mae", "rmse", "ndcg@3")})
            # the selection score is always "lower is better": higher-is-better metrics are negated
            score = v[t.select_metric] if SELECT_METRICS[t.select_metric] else -v[t.select_metric]
            if score < state["best_score"]:
                state.update(best_score=score, best_epoch=epoch, bad_epochs=0,
                             best_state=copy.deepcopy(model.state_dict()))
            else:
                state["bad_epochs"] += 1
                if state["bad_epochs"] >= t.patience:
                    state["stopped"] = True
        elif not valid_tasks:  # nothing to select on: the last epoch is the model
            state.update(best_epoch=epoch, best_state=copy.deepcopy(model.state_dict()))
        state["history"].append(record)
        state["epoch"] = epoch
        _log_epoch(record, state)
        if run.out_dir is not None:
            _save_last(run, optimizer, state)
        if stop_requested() is not None:
            raise TrainingInterrupted(stop_requested(), epoch, run.out_dir)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    model.load_state_dict(state["best_state"])
    run.best_epoch = state["best_epoch"]
    run.history = state["history"]
    run.timing = {"train_seconds": state["train_seconds"],
                  "seconds_per_epoch": state["train_seconds"] / max(len(state["history"]), 1),
                  "train_tasks_per_s": state["train_tasks"] / max(state["train_seconds"], 1e-9)}
    if run.out_dir is not None:
        save_model(run, run.out_dir / BEST)
    return run


def _fit_without_training(run: Run) -> Run:
    """Models with nothing to learn by gradient (trainer "none", e.g. item-mean): fit on the
    training tasks, no epochs; best.pt holds the fitted values."""
    started = time.perf_counter()
    run.algorithm.fit_reference(run.bundle.splits)
    seconds = time.perf_counter() - started
    run.best_epoch, run.history = 0, []
    run.timing = {"train_seconds": seconds, "seconds_per_epoch": 0.0,
                  "train_tasks_per_s": len(run.bundle.splits.train) / max(seconds, 1e-9)}
    if run.out_dir is not None:
        save_model(run, run.out_dir / BEST)
    return run


def _log_epoch(record: Dict[str, float], state: Dict[str, Any]) -> None:
    msg = (f"epoch {record['epoch']:>3}  train loss {record['train_loss']:.4f}  "
           f"{record['seconds']:.1f}s ({record['tasks_per_s']:.0f} tasks/s)")
    if "valid_mae" in record:
        msg += (f"  valid MAE {record['valid_mae']:.4f} RMSE {record['valid_rmse']:.4f} "
                f"nDCG@3 {record['valid_ndcg@3']:.4f}  (best epoch {state['best_epoch']})")
    log.info(msg)


def _run_identity(run: Run) -> Dict[str, Any]:
    from .plugins import loaded_plugins
    return {"model_name": run.model_name, "config": run.config.to_dict(),
            "data_fingerprint": run.bundle.data.fingerprint, "plugins": loaded_plugins(run.model_name),
            **code_identity(run.model_name)}


def save_model(run: Run, path) -> Path:
    """The final checkpoint (what `mamo-l2l evaluate` reads), with the item catalogue that
    `mamo-l2l recommend` / `serve` need without the data set (docs/serving.md)."""
    from .recommend import catalog_payload
    return save_checkpoint(path, dict(_run_identity(run), kind="model", state_dict=run.model.state_dict(),
                                      encoders=run.bundle.encoders.to_dict(), best_epoch=run.best_epoch,
                                      history=run.history, rating_range=list(run.bundle.data.rating_range),
                                      catalog=catalog_payload(run.bundle)))


def _save_last(run: Run, optimizer, state: Dict[str, Any]) -> None:
    save_checkpoint(run.out_dir / LAST, dict(_run_identity(run), kind="resume",
                                             state_dict=run.model.state_dict(),
                                             optimizer=optimizer.state_dict(), state=state))


def _restore(run: Run, optimizer, state: Dict[str, Any]) -> Dict[str, Any]:
    if run.out_dir is None:
        raise MamoError("--resume needs the run's output folder (--out)")
    path = run.out_dir / LAST
    if not path.is_file():
        log.info("[resume] no %s: starting from scratch", path)
        return state
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, run, path, allow=RESUME_MAY_CHANGE)
    from .runid import code_differs
    why = code_differs(ckpt, run.model_name)
    if why is not None:   # the rest of the run would not be what an uninterrupted run gives
        raise MamoError(f"cannot resume: {why}; start the run afresh in a new --out (or delete {path})",
                        path=str(path))
    run.model.load_state_dict(ckpt["state_dict"])
    optimizer.load_state_dict(ckpt["optimizer"])
    restored = dict(ckpt["state"])
    log.info("[resume] continuing after epoch %d from %s", restored["epoch"], path)
    return restored


def check_compatible(ckpt: Dict[str, Any], run: Run, path, allow=()) -> None:
    """Raise MamoError unless the checkpoint was made for this model, data and result-affecting
    config (mamo_l2l/runid.py: one definition for resume, evaluate and compare); ``allow`` names
    keys ("train.epochs") the caller may change on purpose."""
    from .runid import config_differences, describe
    if ckpt.get("model_name") != run.model_name:
        raise MamoError(f"checkpoint is for model {ckpt.get('model_name')!r}, not {run.model_name!r}", path=str(path))
    if ckpt.get("data_fingerprint") != run.bundle.data.fingerprint:
        raise MamoError("checkpoint was trained on other data (data fingerprint differs: another data set, "
                        "other files or another data/protocol config)", path=str(path))
    diffs = config_differences(run.config.to_dict(), ckpt.get("config", {}), allow)
    if diffs:
        raise MamoError("checkpoint was made with another config (" + describe(diffs, "there", "here") + ")",
                        path=str(path))
