"""The `mamo-l2l` command line: a few lines over the library per command."""
from __future__ import annotations

import sys

import click

from . import __version__
from .cli_options import backend_option, load_plugins, plugin_option, scenario_option
from .errors import MamoError


class _Group(click.Group):
    """A click group that prints MamoError as one clear message (no traceback), exit code 1."""

    def make_context(self, info_name, args, parent=None, **extra):
        argv = list(args)   # the command line as given (compare records it in its results)
        ctx = super().make_context(info_name, args, parent=parent, **extra)
        ctx.meta["mamo_l2l.argv"] = argv
        return ctx

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MamoError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mamo-l2l")
@click.option("-q", "--quiet", "quiet_all", is_flag=True, help="Warnings and errors only on stderr.")
@click.option("-v", "--verbose", is_flag=True, help="Also debug lines on stderr.")
@click.pass_context
def app(ctx, quiet_all, verbose) -> None:
    """Cold-start recommendation by meta-learning (MAMO, MAML, MeLU) on four cold-start scenarios.

    The story of a run (data counts, epochs, notes) goes to stderr, results (tables, saved
    paths) to stdout (docs/operations.md)."""
    import logging

    from .progress import console_logging, remove_console_logging
    console_logging(logging.WARNING if quiet_all else logging.DEBUG if verbose else logging.INFO)
    ctx.meta["mamo_l2l.quiet"] = quiet_all
    ctx.call_on_close(remove_console_logging)


def _quiet(flag: bool) -> bool:
    """A command's own --quiet (or the group's): warnings only from here on."""
    import logging
    if flag or click.get_current_context().meta.get("mamo_l2l.quiet"):
        logging.getLogger("mamo_l2l").setLevel(logging.WARNING)
        return True
    return False


def _quiet_epochs(flag: bool) -> bool:
    """compare's own --quiet: no progress bars, data counts or epoch lines (the ``mamo_l2l.run``
    logger), the per-run lines stay; the group's -q silences everything below warnings."""
    import logging
    if click.get_current_context().meta.get("mamo_l2l.quiet"):
        return _quiet(True)
    if flag:
        logging.getLogger("mamo_l2l.run").setLevel(logging.WARNING)
    return flag


def _verbose(flag: bool) -> None:
    import logging
    if flag:
        logging.getLogger("mamo_l2l").setLevel(logging.DEBUG)


def _register() -> None:
    from .data.cli import data as data_group
    app.add_command(data_group)
    from .recommend_cli import COMMANDS as recommend_commands
    for command in recommend_commands:
        app.add_command(command)


_register()


def main() -> None:
    app(prog_name="mamo-l2l")


# ---------------------------------------------------------------------------- train / evaluate
def _resume_config(out_dir, config_path, data_opts, model_name, train_opts):
    """The config of the run in ``out_dir`` (its last.pt, else config.yaml) with the flags given
    applied; MamoError when a flag (or --config) would change a result-affecting key
    (mamo_l2l/runid.py): a resumed run continues the run it resumes."""
    from pathlib import Path

    from .checkpoint import load_checkpoint
    from .config import Config, load_config
    from .plugins import import_recorded
    from .runid import RESUME_MAY_CHANGE, config_differences, describe
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


def _config_from_options(config_path, dataset, data_dir, fmt, model_name, warm_eval=None, **train_overrides):
    from .config import load_config
    cfg = load_config(config_path)
    cfg = cfg.override("data", dataset=dataset, data_dir=data_dir, format=fmt, warm_eval=warm_eval)
    if model_name is not None:
        cfg = cfg.override("model", name=model_name)
    return cfg.override("train", **train_overrides)


@app.command()
@click.option("--dataset", default=None, help="ml-100k | ml-1m | book-crossing, or a name for --data-dir data. [default: config's, ml-100k]")
@click.option("--data-dir", type=click.Path(), default=None, help="Folder with the data set's files in a supported format (skips fetching).")
@click.option("--format", "fmt", default=None, help="Force a reader: a data format name (docs/data-formats.md). [default: detected]")
@click.option("--config", "config_path", default=None,
              help="YAML config (docs/config.md), or a packaged one by name: melu-paper, melu-5. Flags override it.")
@click.option("--model", "model_name", default=None,
              help="Model to train (docs/models.md): mamo, maml, melu, mamo-no-feature-memory, mamo-no-task-memory, "
                   "supervised, supervised-finetune, item-mean, global-mean. [default: mamo]")
@backend_option()
@click.option("--seed", type=int, default=None, help="Fixes the user split, query sampling and init. [default: 0]")
@click.option("--out", "out_dir", type=click.Path(), default=None, help="Run folder. [default: runs/<model>-<dataset>-seed<seed>]")
@click.option("--epochs", type=int, default=None)
@click.option("--meta-batch-size", type=int, default=None)
@click.option("--local-steps", type=int, default=None)
@click.option("--local-lr", type=float, default=None)
@click.option("--outer-lr", type=float, default=None)
@click.option("--first-order/--second-order", default=None, help="Meta-gradient order. [default: second]")
@click.option("--device", default=None, help="cpu | cuda | cuda:N. [default: cpu]")
@click.option("--cache-dir", type=click.Path(), default=None, help="Data cache. [default: $MAMO_L2L_CACHE or ~/.cache/mamo_l2l]")
@click.option("--warm-eval", type=click.Choice(["heldout", "seen"]), default=None,
              help="Warm test: held-out ratings of training users, or the training tasks' own query sets (MeLU's). [default: heldout]")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out from its last.pt, with the run's own config (flags that would "
                   "change its result are refused; --epochs/--patience may extend it).")
@click.option("--patience", type=int, default=None, help="Epochs without validation improvement before stopping. [default: 5]")
@click.option("--threads", type=int, default=None, help="CPU threads (0 = auto). [default: 0]")
@plugin_option
@click.option("--quiet", is_flag=True, help="No progress, no epoch lines (warnings and results only).")
@click.option("--verbose", is_flag=True, help="Also debug lines.")
def train(dataset, data_dir, fmt, config_path, model_name, backend, seed, out_dir, epochs, meta_batch_size,
          local_steps, local_lr, outer_lr, first_order, device, cache_dir, warm_eval, resume, patience, threads,
          plugins, quiet, verbose):
    """Train a model (meta-learning or a baseline), early-stop on validation users, evaluate all four scenarios.

    SIGINT/SIGTERM finish the current epoch, write last.pt and exit 130/143; continue with
    `--out RUN --resume` (docs/operations.md)."""
    from pathlib import Path

    from . import distributed
    from .config import Config
    from .faults import TrainingInterrupted, graceful_stop
    from .pipeline import run as run_pipeline
    from .progress import log
    from .scoring import results_table
    world = distributed.init_from_env()   # under torchrun: join the other ranks (docs/distributed.md)
    quiet = _quiet(quiet or not world.is_main)
    _verbose(verbose)
    load_plugins(plugins)
    data_opts = dict(dataset=dataset, data_dir=data_dir, format=fmt, warm_eval=warm_eval)
    train_opts = dict(backend=backend, seed=seed, epochs=epochs, meta_batch_size=meta_batch_size,
                      local_steps=local_steps, local_lr=local_lr, outer_lr=outer_lr, first_order=first_order,
                      device=device, patience=patience, threads=threads)
    cfg = None
    if world.is_main:   # rank 0 reads the run folder (--resume) and sends the config to the others
        if resume:
            cfg = _resume_config(out_dir, config_path, data_opts, model_name, train_opts)
        else:
            cfg = _config_from_options(config_path, dataset, data_dir, fmt, model_name, warm_eval, **train_opts)
    if world.active:
        cfg = Config.from_dict(world.broadcast(cfg.to_dict() if world.is_main else None), source="rank 0")
        cfg = cfg.override("train", device=distributed.rank_device(cfg.train.device, world))
    out = Path(out_dir or f"runs/{cfg.model.name}-{cfg.data.dataset}-seed{cfg.train.seed}")

    def notice(signum):
        import signal
        log.warning(f"{signal.Signals(signum).name}: finishing epoch, then writing {out / 'last.pt'} "
                    "(send it again to stop at once)")

    try:
        with graceful_stop(notice):
            result = run_pipeline(cfg, out, resume=resume, cache_dir=cache_dir, progress=not quiet)
    except TrainingInterrupted as e:
        import signal
        if world.is_main:
            click.echo(f"{signal.Signals(e.signum).name}: stopped after epoch {e.epoch}; {out / 'last.pt'} is "
                       f"saved. Continue with:\n  mamo-l2l train --out {out} --resume", err=True)
        distributed.shutdown()
        sys.exit(e.exit_code)
    # Every rank leaves the process group together, after rank 0's evaluation: a rank that tore
    # its group down while rank 0 was still working sometimes aborted at exit ("terminate called
    # without an active exception", seen in tests/test_distributed.py).
    world.barrier()
    distributed.shutdown()
    if not world.is_main:   # rank 0 evaluates and prints
        return
    metrics = result.metrics
    click.echo("")
    click.echo(results_table(metrics))
    tm = metrics["timing"]
    peak = tm.get("peak_memory_mib")
    click.echo(f"\nbest epoch {metrics['best_epoch']}; train {tm['train_seconds']:.1f}s "
               f"({tm['train_tasks_per_s']:.0f} tasks/s), evaluation {tm['eval_seconds']:.1f}s "
               f"({tm['eval_tasks_per_s']:.0f} tasks/s), catalogue ranking {tm.get('catalogue_seconds', 0.0):.1f}s, "
               f"peak memory {'unknown' if peak is None else f'{peak:.0f} MiB'}")
    click.echo(f"saved {out / 'best.pt'}, {out / 'metrics.json'}, {out / 'results.txt'}")


@app.command()
@click.option("--checkpoint", type=click.Path(), required=True, help="A run's best.pt.")
@scenario_option("Scenario(s) to score (repeatable). [default: all four]")
@click.option("--data-dir", type=click.Path(), default=None, help="Where the data lies now (checked by fingerprint).")
@click.option("--cache-dir", type=click.Path(), default=None)
@backend_option("Backend to adapt with (docs/backends.md). [default: the run's]")
@click.option("--device", default=None)
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the metrics here.")
@plugin_option
def evaluate(checkpoint, scenarios, data_dir, cache_dir, backend, device, json_path, plugins):
    """Score a saved model on the test scenarios (parameters and memories are not changed)."""
    import json

    from . import api
    from .data.types import SCENARIOS
    from .runfiles import write_text_atomic
    from .scoring import results_table
    load_plugins(plugins)
    run = api.load_run(checkpoint, data_dir=data_dir, cache_dir=cache_dir, device=device, backend=backend)
    metrics = api.evaluate(run, scenarios=scenarios or SCENARIOS)
    click.echo(results_table(metrics))
    if json_path:
        write_text_atomic(json_path, json.dumps(metrics, indent=2) + "\n")
        click.echo(f"saved {json_path}")


@app.command()
@click.option("--dataset", default=None, help="ml-100k | ml-1m | book-crossing, or a name for --data-dir data. [default: config's, ml-100k]")
@click.option("--data-dir", type=click.Path(), default=None, help="Folder with the data set's files in a supported format (skips fetching).")
@click.option("--format", "fmt", default=None, help="Force a reader: a data format name (docs/data-formats.md). [default: detected]")
@click.option("--models", default="mamo,melu,maml", show_default=True,
              help="Comma-separated models (docs/models.md).")
@click.option("--seeds", type=int, default=3, show_default=True, help="Seeds 0..N-1 per model.")
@click.option("--epochs", type=int, default=None, help="Upper bound on epochs. [default: config's, 30]")
@click.option("--config", "config_path", default=None, help="YAML config or packaged name, shared by every run.")
@backend_option()
@click.option("--device", default=None, help="cpu | cuda | cuda:N. [default: cpu]")
@click.option("--warm-eval", type=click.Choice(["heldout", "seen"]), default=None, help="Warm test (see train --help). [default: heldout]")
@click.option("--out", "out_dir", type=click.Path(), default=None, help="Output folder. [default: results/<dataset>]")
@click.option("--cache-dir", type=click.Path(), default=None, help="Data cache. [default: $MAMO_L2L_CACHE or ~/.cache/mamo_l2l]")
@click.option("--local-steps", type=int, default=None, help="Local steps for every model (training and evaluation).")
@click.option("--catalogue/--no-catalogue", default=True, show_default=True,
              help="Also rank the whole catalogue per test user (slow on large catalogues such as Book-Crossing's).")
@click.option("--paired-with", default=None,
              help="Model compared seed by seed with each other model in results.md. [default: the first of --models]")
@click.option("--quiet", is_flag=True, help="No progress bars or epoch lines (the per-run lines stay).")
@plugin_option
def compare(dataset, data_dir, fmt, models, seeds, epochs, config_path, backend, device, warm_eval, out_dir,
            cache_dir, local_steps, catalogue, paired_with, quiet, plugins):
    """Train (or reuse) every model x seed and write results.md/.csv/.json (+ mae.png) with mean and std."""
    import shlex

    from . import compare as comparison
    from .distributed import launched
    from .runtime import check_device
    if launched():
        raise MamoError("compare runs as one process; under torchrun use `train` (docs/distributed.md)")
    quiet = _quiet_epochs(quiet)   # epoch lines off; the per-run lines stay
    load_plugins(plugins)
    cfg = _config_from_options(config_path, dataset, data_dir, fmt, None, warm_eval, backend=backend,
                               epochs=epochs, device=device, local_steps=local_steps)
    names = [m.strip() for m in models.split(",") if m.strip()]
    check_device(cfg.train.device)
    out = out_dir or f"results/{cfg.data.dataset}"
    command = "mamo-l2l " + shlex.join(click.get_current_context().meta.get("mamo_l2l.argv", sys.argv[1:]))
    from .faults import TrainingInterrupted, graceful_stop
    click.echo(f"comparing {', '.join(names)} on {cfg.data.dataset} over seeds 0..{seeds - 1} into {out}", err=True)
    try:
        with graceful_stop():
            comparison.compare(cfg, names, seeds, out, cache_dir=cache_dir, command=command, progress=not quiet,
                               paired_with=paired_with, catalogue=catalogue)
    except TrainingInterrupted as e:   # the run in progress saved its last.pt (docs/operations.md)
        import signal
        click.echo(f"{signal.Signals(e.signum).name}: stopped after epoch {e.epoch} of the run in {e.out_dir}; "
                   "the same compare command continues (finished runs are reused, this one resumes)", err=True)
        sys.exit(e.exit_code)
    click.echo(f"see {out}/results.md")


@app.command()
@click.option("--checkpoint", type=click.Path(), required=True, help="A run's best.pt (mamo or an ablation).")
@click.option("--data-dir", type=click.Path(), default=None, help="Where the data lies now (checked by fingerprint).")
@click.option("--cache-dir", type=click.Path(), default=None)
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the report here (JSON).")
@plugin_option
def inspect(checkpoint, data_dir, cache_dir, json_path, plugins):
    """Show whether a trained model's memories personalise: slot norms and distances, attention
    entropy, top-slot counts and the spread of the personalised start over training and test users."""
    import json
    from pathlib import Path

    from . import api
    from .diagnostics import format_report, inspect_run
    load_plugins(plugins)
    run = api.load_run(checkpoint, data_dir=data_dir, cache_dir=cache_dir)
    report = inspect_run(run)
    click.echo(format_report(report))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"saved {json_path}")
