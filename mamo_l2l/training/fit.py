"""The trainer: meta-training (or supervised / no training) with early stopping on the
validation users, a checkpoint after every epoch and an exact resume. The run pipeline around
it (files, data, evaluation) is mamo_l2l/api/pipeline.py; the run types and data loading are run.py."""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
import torch

from mamo_l2l.algorithms.baselines import trainer_of
from mamo_l2l.core.config import SELECT_METRICS, Config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.progress import bar as progress_bar
from mamo_l2l.core.progress import ensure_visible, log, run_log
from mamo_l2l.data.batching import MetaBatchSampler, pad_tasks
from mamo_l2l.evaluation.scoring import validation_metrics
from mamo_l2l.training import distributed
from mamo_l2l.training.checkpoint import restore_resume, save_model, save_resume
from mamo_l2l.training.faults import TrainingInterrupted, check_finite, stop_requested
from mamo_l2l.training.ranking_weight import choose_ranking
from mamo_l2l.training.run import (
    DataBundle,
    Run,
    build_run,
    check_device,
    training_user_rows,
)
from mamo_l2l.training.runfiles import BEST, LAST, RunLock
from mamo_l2l.training.supervised import SupervisedEpochs
from mamo_l2l.training.tracking import TensorBoardLog, open_tensorboard, write_history


def make_optimizer(model: torch.nn.Module, config: Config) -> torch.optim.Optimizer:
    t = config.train
    params = [p for p in model.parameters() if p.requires_grad]
    if t.outer_optimizer == "adam":
        return torch.optim.Adam(params, lr=t.outer_lr)
    return torch.optim.SGD(params, lr=t.outer_lr)


def choice_loss(model, batch) -> torch.Tensor:
    """The choice head's outer loss per task [B] (models/choice.py), 0 without a choice head: it is
    added to each task's query loss, outside the backend (the head's local update is its closed-form
    fold-in, the same on every backend)."""
    choice = getattr(model, "choice", None)
    if choice is None:
        return torch.zeros((), device=batch.user_x.device)
    return choice.loss(batch.support_x, batch.support_mask, batch.query_x, batch.query_mask)


class MetaEpochs:
    """One epoch of meta-training: seeded meta-batches of training tasks through the backend,
    an outer step per batch, then the batch's memory writes (what ``fit`` calls per epoch).

    With several processes (docs/distributed.md) each rank runs its share of every global
    meta-batch; the summed gradients and the gathered writes make the step the one process's."""

    unit = "task"

    def __init__(self, run: Run, optimizer: torch.optim.Optimizer):
        self.run, self.optimizer = run, optimizer
        t = run.config.train
        self.sampler = MetaBatchSampler(run.bundle.splits.train, t.meta_batch_size, t.seed,
                                        resample_queries=t.resample_queries)
        self.total = len(run.bundle.splits.train)

    def run_epoch(self, epoch: int, bar=None) -> List[float]:
        run, t = self.run, self.run.config.train
        losses: List[float] = []
        params = [p for p in run.model.parameters() if p.requires_grad]
        world = distributed.current()
        for number, group in enumerate(self.sampler.epoch(epoch), start=1):
            self.optimizer.zero_grad(set_to_none=True)
            if world.active:
                loss, writes = self._shard_step(world, group, params)
            else:
                batch = pad_tasks(group, run.bundle.data).to(t.device)
                out = run.backend.run_batch(run.model, run.algorithm, batch, run.inner, training=True)
                loss, writes = (out.query_loss + choice_loss(run.model, batch)).mean(), out.writes
                loss.backward()
            check_finite(loss, params, epoch, number, run.config)   # before the step: nothing bad is kept
            self.optimizer.step()
            run.algorithm.apply_writes(writes)
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(len(group))
                bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        return losses

    def _shard_step(self, world, group, params):
        """This rank's share of the global meta-batch ``group``: backward of (sum of its query
        losses) / len(group), gradients summed over the ranks (= the gradient of the global mean),
        writes gathered in global task order. Returns (global mean loss, all writes)."""
        run, t = self.run, self.run.config.train
        shard = world.shard(group)
        if shard:
            batch = pad_tasks(shard, run.bundle.data).to(t.device)
            out = run.backend.run_batch(run.model, run.algorithm, batch, run.inner, training=True)
            loss_sum, writes = (out.query_loss + choice_loss(run.model, batch)).sum(), out.writes
            (loss_sum / len(group)).backward()
        else:   # fewer tasks than ranks (a last, short meta-batch): nothing to add
            loss_sum, writes = torch.zeros((), device=t.device), []
        total = world.reduce_gradients(params, loss_sum)
        return total / len(group), world.gather_writes(writes)


def _epochs(run: Run, optimizer):
    kind = trainer_of(run.algorithm)
    if kind == "meta":
        return MetaEpochs(run, optimizer)
    if kind == "supervised":
        return SupervisedEpochs(run, optimizer)
    raise MamoError(f"model {run.model_name!r} has an unknown trainer {kind!r} (expected meta, supervised or none)")


def fit(bundle: DataBundle, config: Optional[Config] = None, model_name: str = "mamo", out_dir=None,
        resume: bool = False, progress: bool = False, stop_after_epoch: Optional[int] = None) -> Run:
    """Train ``model_name`` on the bundle's training tasks, early-stopping on validation.

    How depends on the model's algorithm (``trainer``, algorithms/baselines.py): meta-training
    through the backend (MAMO, MAML, MeLU), supervised minibatch regression (mamo_l2l/training/supervised.py),
    or fitting without gradient steps (the mean references). Each epoch ends with a checkpoint
    ``out_dir/last.pt`` (everything needed to resume); the best model by validation
    ``select_metric`` is kept and written to ``out_dir/best.pt``. With ``resume=True`` a run
    continues from ``last.pt`` and ends exactly where an uninterrupted run with the same seed
    would. ``stop_after_epoch`` ends the call after that epoch (as if killed; used by tests).

    ``out_dir`` is locked for the call (mamo_l2l/training/runfiles.py). Under ``faults.graceful_stop`` a
    SIGINT/SIGTERM ends the call after the current epoch's checkpoint with ``TrainingInterrupted``;
    a NaN/inf loss or gradient raises MamoError (mamo_l2l/training/faults.py, docs/operations.md).
    ``progress=True`` shows progress and the epoch lines (logger "mamo_l2l", mamo_l2l/core/progress.py).
    """
    if progress:
        ensure_visible()
    if out_dir is None or not distributed.current().is_main:   # only rank 0 touches the run folder
        return _fit(bundle, config, model_name, None, resume, progress, stop_after_epoch)
    with RunLock(out_dir):
        return _fit(bundle, config, model_name, out_dir, resume, progress, stop_after_epoch)


def _fit(bundle, config, model_name, out_dir, resume, progress, stop_after_epoch) -> Run:
    config = (config or bundle.config).validate()
    check_device(config.train.device)
    t = config.train
    run = build_run(bundle, config, model_name)
    run.out_dir = Path(out_dir) if out_dir is not None else None
    world = distributed.current()
    if world.active and trainer_of(run.algorithm) != "meta":
        raise MamoError(f"distributed training (WORLD_SIZE={world.size}) is for the meta-trained models; "
                        f"{run.model_name!r} trains with trainer {trainer_of(run.algorithm)!r}: run it as one "
                        "process (docs/distributed.md)")
    if trainer_of(run.algorithm) == "none":
        return _fit_without_training(run)
    model, algorithm = run.model, run.algorithm
    train_users = training_user_rows(bundle)
    pretrain = _pretrain(run, progress) if _fresh_start(run, resume) and world.is_main else []
    algorithm.begin_training(train_users, t.seed)   # e.g. MAMO's memory keys (a resume overwrites them)
    optimizer = make_optimizer(model, config)
    epochs = _epochs(run, optimizer)
    state = {"epoch": 0, "best_score": float("inf"), "best_epoch": 0, "bad_epochs": 0, "stopped": False,
             "best_state": copy.deepcopy(model.state_dict()), "history": [], "train_seconds": 0.0,
             "train_tasks": 0, "pretrain": pretrain}
    if resume and world.is_main:
        state = _restore(run, optimizer, state)
    if world.active:   # rank 0's start (fresh or resumed) on every rank
        state = _share_start(world, run, optimizer, state)
    tensorboard = open_tensorboard(t.log_dir) if world.is_main else None   # train.log_dir: event files
    for epoch in range(state["epoch"] + 1, t.epochs + 1):
        if state["stopped"]:
            break
        record = _train_epoch(run, epochs, epoch, train_users, state, progress)
        _select(run, epoch, record, state)
        _record_epoch(run, epoch, record, state, optimizer, tensorboard)
        signum = world.max_int(stop_requested() or 0)   # a signal to any rank stops every rank here
        if signum:
            raise TrainingInterrupted(signum, epoch, run.out_dir)
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            break
    if tensorboard is not None:
        tensorboard.close()
    model.load_state_dict(state["best_state"])
    if hasattr(model, "end_training"):
        model.end_training()                                 # e.g. no identity dropout from here on
    # the catalogue's ranking score (docs/algorithm.md), chosen by rank 0 on the validation users
    run.ranking, run.ranking_notes = world.broadcast(choose_ranking(run) if world.is_main else None)
    run.best_epoch = state["best_epoch"]
    run.history = state["history"]
    run.pretrain_history = state.get("pretrain", [])
    run.timing = {**run.timing, "train_seconds": state["train_seconds"],
                  "seconds_per_epoch": state["train_seconds"] / max(len(state["history"]), 1),
                  "train_tasks_per_s": state["train_tasks"] / max(state["train_seconds"], 1e-9)}
    if state.get("pretrain"):
        run.timing["pretrain_seconds"] = sum(r["seconds"] for r in state["pretrain"])
    if world.active:
        run.timing["world_size"] = world.size
    if run.out_dir is not None:
        save_model(run, run.out_dir / BEST)
    return run


PRETRAIN_DRAWS = 1_000_000


def _fresh_start(run: Run, resume: bool) -> bool:
    """True unless this call continues a run from its last.pt."""
    return not (resume and run.out_dir is not None and (run.out_dir / LAST).exists())


def _pretrain(run: Run, progress: bool) -> List[Dict[str, Any]]:
    """``train.pretrain_epochs`` supervised epochs before meta-training (docs/algorithm.md,
    "Training"): minibatch regression on every training rating (mamo_l2l/training/supervised.py) with its
    own Adam, the epoch's identity dropout as in meta-training, no validation. Then the
    algorithm's ``after_pretraining`` (MAMO starts every preference-memory slot at the pretrained
    preference layer). Only on a fresh start: a resumed run restores the pretrained model from
    last.pt. Returns one record per pretraining epoch (loss, seconds)."""
    n = run.config.train.pretrain_epochs
    if n == 0:
        return []
    # a model without local steps (TaNP) predicts only from its per-user start: no plain regression fits it
    if (trainer_of(run.algorithm) != "meta" or not hasattr(run.model, "head") or not hasattr(run.model, "profiles")
            or not getattr(run.algorithm, "takes_local_steps", True)):
        raise MamoError(f"train.pretrain_epochs is for the meta-trained models built on the recommender "
                        f"(mamo, maml, melu and the ablations); {run.model_name!r} cannot be pretrained")
    epochs = SupervisedEpochs(run, make_optimizer(run.model, run.config))
    records = []
    run.model.train()
    for e in range(1, n + 1):
        started = time.perf_counter()
        draw = PRETRAIN_DRAWS + e   # seeds the epoch's dropout and order apart from the meta-training epochs'
        run.model.begin_epoch(run.config.model.identity_dropout, run.config.train.seed, draw)
        bar = progress_bar(epochs.total, f"pretrain {e}/{n}", progress, epochs.unit)
        losses = epochs.run_epoch(draw, bar)
        if bar is not None:
            bar.close()
        record = {"pretrain_epoch": e, "train_loss": float(np.mean(losses)), "seconds": time.perf_counter() - started}
        run_log.info(f"pretrain {e:>3}  train loss {record['train_loss']:.4f}  {record['seconds']:.1f}s")
        records.append(record)
    after = getattr(run.algorithm, "after_pretraining", None)
    if after is not None:
        after()
    return records


def _share_start(world, run: Run, optimizer, state: Dict[str, Any]) -> Dict[str, Any]:
    """Rank 0's model (parameters and memories), optimiser state and trainer state on every rank
    (sent as CPU tensors): every rank starts from the same point, fresh or resumed."""
    payload = world.broadcast(distributed.to_cpu((run.model.state_dict(), optimizer.state_dict(), state))
                              if world.is_main else None)
    if not world.is_main:
        run.model.load_state_dict(payload[0])
        optimizer.load_state_dict(payload[1])
        state = payload[2]
    return state


def _train_epoch(run: Run, epochs, epoch: int, train_users, state: Dict[str, Any], progress: bool) -> Dict[str, Any]:
    """One training epoch and the algorithm's end of epoch; the epoch's history record."""
    n_tasks = len(run.bundle.splits.train)
    started = time.perf_counter()
    run.model.train()
    begin_epoch = getattr(run.model, "begin_epoch", None)
    if begin_epoch is not None:   # e.g. the epoch's identity dropout (models/recommender.py)
        begin_epoch(run.config.model.identity_dropout, run.config.train.seed, epoch)
    bar = progress_bar(epochs.total, f"epoch {epoch}/{run.config.train.epochs}", progress, epochs.unit)
    losses = epochs.run_epoch(epoch, bar)
    if bar is not None:
        bar.close()
    seconds = time.perf_counter() - started
    epoch_notes = run.algorithm.end_epoch(train_users)   # e.g. MAMO's slot re-seeding and diagnostics
    state["train_seconds"] += seconds
    state["train_tasks"] += n_tasks
    return {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "seconds": seconds, "tasks_per_s": n_tasks / max(seconds, 1e-9), **epoch_notes}


def _select(run: Run, epoch: int, record: Dict[str, Any], state: Dict[str, Any]) -> None:
    """Validation and early stopping: score the validation users every ``eval_every`` epochs, keep
    the best state by ``select_metric``, stop after ``patience`` epochs without improvement."""
    t, valid_tasks = run.config.train, run.bundle.splits.valid
    if valid_tasks and epoch % t.eval_every == 0:
        world = distributed.current()   # rank 0 validates; every rank takes the same decision
        v = world.broadcast(validation_metrics(run.model, run.algorithm, run.backend, valid_tasks, run.bundle.data,
                                               run.inner, t.device) if world.is_main else None)
        record.update({f"valid_{k}": v[k] for k in ("mae", "rmse", "ndcg@3", "masked_mae", "masked_ndcg@3") if k in v})
        # the selection score is always "lower is better": higher-is-better metrics are negated
        score = v[t.select_metric] if SELECT_METRICS[t.select_metric] else -v[t.select_metric]
        if score < state["best_score"]:
            state.update(best_score=score, best_epoch=epoch, bad_epochs=0,
                         best_state=copy.deepcopy(run.model.state_dict()))
        else:
            state["bad_epochs"] += 1
            if state["bad_epochs"] >= t.patience:
                state["stopped"] = True
    elif not valid_tasks:  # nothing to select on: the last epoch is the model
        state.update(best_epoch=epoch, best_state=copy.deepcopy(run.model.state_dict()))


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
        write_history(run.history, run.out_dir)     # no epochs: the header only
        save_model(run, run.out_dir / BEST)
    return run


def _record_epoch(run: Run, epoch: int, record: Dict[str, Any], state: Dict[str, Any], optimizer,
                  tensorboard: Optional[TensorBoardLog]) -> None:
    """The epoch into the history, the log, history.csv, the TensorBoard files and last.pt."""
    state["history"].append(record)
    state["epoch"] = epoch
    _log_epoch(record, state)
    if tensorboard is not None:
        tensorboard.add(record)
    if run.out_dir is not None:
        write_history(state["history"], run.out_dir)
        save_resume(run, run.out_dir / LAST, optimizer, state)


def _log_epoch(record: Dict[str, float], state: Dict[str, Any]) -> None:
    msg = (f"epoch {record['epoch']:>3}  train loss {record['train_loss']:.4f}  "
           f"{record['seconds']:.1f}s ({record['tasks_per_s']:.0f} tasks/s)")
    if "valid_mae" in record:
        msg += (f"  valid MAE {record['valid_mae']:.4f} RMSE {record['valid_rmse']:.4f} "
                f"nDCG@3 {record['valid_ndcg@3']:.4f}  (best epoch {state['best_epoch']})")
    run_log.info(msg)


def _restore(run: Run, optimizer, state: Dict[str, Any]) -> Dict[str, Any]:
    if run.out_dir is None:
        raise MamoError("--resume needs the run's output folder (--out)")
    restored = restore_resume(run, run.out_dir / LAST, optimizer)
    if restored is None:
        log.info("[resume] no %s: starting from scratch", run.out_dir / LAST)
        return state
    log.info("[resume] continuing after epoch %d from %s", restored["epoch"], run.out_dir / LAST)
    return restored
