"""`mamo-l2l train`: one run from flags or a config (or `--resume` of an interrupted one), then its table."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from mamo_l2l.algorithms import import_recorded
from mamo_l2l.api.pipeline import run as run_pipeline
from mamo_l2l.cli.options import (
    backend_option,
    config_from_options,
    load_plugins,
    plugin_option,
    quiet_flag,
    verbose_flag,
)
from mamo_l2l.core.config import Config, load_config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.progress import log
from mamo_l2l.evaluation.scoring import results_table
from mamo_l2l.training import distributed
from mamo_l2l.training.checkpoint import load_checkpoint
from mamo_l2l.training.faults import TrainingInterrupted, graceful_stop
from mamo_l2l.training.runid import RESUME_MAY_CHANGE, check_not_another_run, config_differences, describe


# ---------------------------------------------------------------------------- train / evaluate
def _resume_config(out_dir, config_path, data_opts, model_name, train_opts):
    """The config of the run in ``out_dir`` (its last.pt, else config.yaml) with the flags given
    applied; MamoError when a flag (or --config) would change a result-affecting key
    (mamo_l2l/training/runid.py): a resumed run continues the run it resumes."""

    if out_dir is None:
        raise MamoError("--resume needs --out RUN: the folder of the run to continue")
    out = Path(out_dir)
    last, saved = out / "last.pt", out / "config.yaml"
    if last.is_file():
        ckpt = load_checkpoint(last)
        import_recorded(ckpt, last)
        base, source = Config.from_recorded(ckpt["config"], source=str(last)), str(last)
    elif saved.is_file():
        base, source = load_config(saved, recorded=True), str(saved)
    else:
        raise MamoError("--resume: there is no run to continue here (no last.pt or config.yaml); "
                        "drop --resume to start one", path=str(out))
    cfg = base.override("data", **data_opts)
    if model_name is not None:
        cfg = cfg.override("model", name=model_name)
    cfg = cfg.override("train", **train_opts)
    diffs = []
    if config_path is not None:
        diffs += config_differences(load_config(config_path).to_dict(), base.to_dict(), RESUME_MAY_CHANGE)
    diffs += [d for d in config_differences(cfg.to_dict(), base.to_dict(), RESUME_MAY_CHANGE) if d not in diffs]
    if diffs:
        raise MamoError("--resume continues the run with its own config (" + source + "); the options given "
                        "would change " + describe(diffs, "in the run", "given") + ". Drop those options, "
                        "or start a new run with another --out")
    return cfg


@click.command()
@click.option(
    "--dataset",
    default=None,
    help="ml-100k | ml-1m | book-crossing, or a name for --data-dir data. [default: config's, ml-100k]",
)
@click.option(
    "--data-dir",
    type=click.Path(),
    default=None,
    help="Folder with the data set's files in a supported format (skips fetching).",
)
@click.option(
    "--format",
    "fmt",
    default=None,
    help="Force a reader: a data format name (docs/data-formats.md). [default: detected]",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    help="YAML config (docs/config.md), or a packaged one by name: melu-paper, melu-5. Flags override it.",
)
@click.option(
    "--model",
    "model_name",
    default=None,
    help="Model to train (docs/models.md): mamo, maml, melu, mamo-no-feature-memory, mamo-no-task-memory, "
    "supervised, supervised-finetune, item-mean, global-mean. [default: mamo]",
)
@backend_option()
@click.option("--seed", type=int, default=None, help="Fixes the user split, query sampling and init. [default: 0]")
@click.option(
    "--out", "out_dir", type=click.Path(), default=None, help="Run folder. [default: runs/<model>-<dataset>-seed<seed>]"
)
@click.option("--epochs", type=int, default=None)
@click.option("--meta-batch-size", type=int, default=None)
@click.option("--local-steps", type=int, default=None)
@click.option("--local-lr", type=float, default=None)
@click.option("--outer-lr", type=float, default=None)
@click.option("--first-order/--second-order", default=None, help="Meta-gradient order. [default: second]")
@click.option("--device", default=None, help="cpu | cuda | cuda:N. [default: cpu]")
@click.option(
    "--cache-dir", type=click.Path(), default=None, help="Data cache. [default: $MAMO_L2L_CACHE or ~/.cache/mamo_l2l]"
)
@click.option(
    "--warm-eval",
    type=click.Choice(["heldout", "seen"]),
    default=None,
    help="Warm test: held-out ratings of training users, or the training tasks' own query sets (MeLU's). "
    "[default: heldout]",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --out from its last.pt, with the run's own config (flags that would "
    "change its result are refused; --epochs/--patience may extend it).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Train into --out even when it holds another run (replacing it); without it that is refused.",
)
@click.option(
    "--patience", type=int, default=None, help="Epochs without validation improvement before stopping. [default: 5]"
)
@click.option("--threads", type=int, default=None, help="CPU threads (0 = auto). [default: 0]")
@click.option("--tensorboard", "log_dir", type=click.Path(), default=None,
              help="Also write TensorBoard event files (train loss, validation metrics, memory diagnostics per "
              "epoch) into DIR; needs the tensorboard package. history.csv in --out is always written. "
              "[default: config's train.log_dir]")
@plugin_option
@click.option("-q", "--quiet", is_flag=True, help="No progress, no epoch lines (warnings and results only).")
@click.option("-v", "--verbose", is_flag=True, help="Also debug lines.")
def train(dataset, data_dir, fmt, config_path, model_name, backend, seed, out_dir, epochs, meta_batch_size,
          local_steps, local_lr, outer_lr, first_order, device, cache_dir, warm_eval, resume, force, patience,
          threads, log_dir, plugins, quiet, verbose):
    """Train a model (meta-learning or a baseline), early-stop on validation users, evaluate all four scenarios.

    SIGINT/SIGTERM finish the current epoch, write last.pt and exit 130/143; continue with
    `--out RUN --resume` (docs/operations.md)."""
    world = distributed.init_from_env()  # under torchrun: join the other ranks (docs/distributed.md)
    quiet = quiet_flag(quiet or not world.is_main)
    verbose_flag(verbose)
    load_plugins(plugins)
    data_opts = dict(dataset=dataset, data_dir=data_dir, format=fmt, warm_eval=warm_eval)
    train_opts = dict(backend=backend, seed=seed, epochs=epochs, meta_batch_size=meta_batch_size,
                      local_steps=local_steps, local_lr=local_lr, outer_lr=outer_lr, first_order=first_order,
                      device=device, patience=patience, threads=threads, log_dir=log_dir)
    cfg = None
    if world.is_main:  # rank 0 reads the run folder (--resume) and sends the config to the others
        if resume:
            cfg = _resume_config(out_dir, config_path, data_opts, model_name, train_opts)
        else:
            cfg = config_from_options(config_path, dataset, data_dir, fmt, model_name, warm_eval, **train_opts)
    if world.active:
        cfg = Config.from_dict(world.broadcast(cfg.to_dict() if world.is_main else None), source="rank 0")
        cfg = cfg.override("train", device=distributed.rank_device(cfg.train.device, world))
    out = Path(out_dir or f"runs/{cfg.model.name}-{cfg.data.dataset}-seed{cfg.train.seed}")
    if world.is_main and not (resume or force):
        check_not_another_run(out, cfg.to_dict())
    result = _run_until_done_or_stopped(world, cfg, out, resume, cache_dir, quiet)
    # Every rank leaves the process group together, after rank 0's evaluation: a rank that tore
    # its group down while rank 0 was still working sometimes aborted at exit ("terminate called
    # without an active exception", seen in tests/training/test_distributed.py).
    world.barrier()
    distributed.shutdown()
    if world.is_main:  # rank 0 evaluates and prints
        _print_summary(result.metrics, out)
    if world.active:   # and still, finalizing beside gloo's threads sometimes aborted: leave at once
        distributed.leave(0)


def _run_until_done_or_stopped(world, cfg, out: Path, resume: bool, cache_dir, quiet: bool):
    """The run pipeline under ``graceful_stop``: a first SIGINT/SIGTERM ends it after the epoch's
    checkpoint, with the command that continues it."""
    def notice(signum):
        log.warning(f"{signal.Signals(signum).name}: finishing epoch, then writing {out / 'last.pt'} "
                    "(send it again to stop at once)")

    try:
        with graceful_stop(notice):
            return run_pipeline(cfg, out, resume=resume, cache_dir=cache_dir, progress=not quiet)
    except TrainingInterrupted as e:
        if world.is_main:
            click.echo(f"{signal.Signals(e.signum).name}: stopped after epoch {e.epoch}; {out / 'last.pt'} is "
                       f"saved. Continue with:\n  mamo-l2l train --out {out} --resume", err=True)
        world.barrier()  # as after a finished run: leave the group together, or a rank may abort at exit
        distributed.shutdown()
        if world.active:
            distributed.leave(e.exit_code)
        sys.exit(e.exit_code)


def _print_summary(metrics, out: Path) -> None:
    click.echo("")
    click.echo(results_table(metrics))
    tm = metrics["timing"]
    peak = tm.get("peak_memory_mib")
    click.echo(f"\nbest epoch {metrics['best_epoch']}; train {tm['train_seconds']:.1f}s "
               f"({tm['train_tasks_per_s']:.0f} tasks/s), evaluation {tm['eval_seconds']:.1f}s "
               f"({tm['eval_tasks_per_s']:.0f} tasks/s), catalogue ranking {tm.get('catalogue_seconds', 0.0):.1f}s, "
               f"peak memory {'unknown' if peak is None else f'{peak:.0f} MiB'}")
    click.echo(f"saved {out / 'best.pt'}, {out / 'metrics.json'}, {out / 'results.txt'}")
