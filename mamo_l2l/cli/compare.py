"""`mamo-l2l compare`: every model x seed trained or reused, then the tables (mamo_l2l/api/comparison.py)."""
from __future__ import annotations

import shlex
import signal
import sys

import click

from mamo_l2l.api import comparison as comparison
from mamo_l2l.api.report import summary_text
from mamo_l2l.cli.options import (
    backend_option,
    config_from_options,
    load_plugins,
    plugin_option,
    quiet_epochs,
    verbose_flag,
)
from mamo_l2l.core.errors import MamoError
from mamo_l2l.training.distributed import launched
from mamo_l2l.training.faults import TrainingInterrupted, graceful_stop
from mamo_l2l.training.run import check_device


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
    "--models",
    default="mamo,melu,maml",
    show_default=True,
    help="Comma-separated models or packaged configs (mamo-paper, fomelu, melu-5, ...; docs/models.md).",
)
@click.option("--seeds", default="3", show_default=True,
              help="N: seeds 0..N-1 per model; or a comma-separated list of seeds, e.g. 5,6,7.")
@click.option("--epochs", type=int, default=None, help="Upper bound on epochs. [default: config's, 30]")
@click.option("--config", "config_path", default=None, help="YAML config or packaged name, shared by every run.")
@backend_option()
@click.option("--device", default=None, help="cpu | cuda | cuda:N. [default: cpu]")
@click.option(
    "--warm-eval",
    type=click.Choice(["heldout", "seen"]),
    default=None,
    help="Warm test (see train --help). [default: heldout]",
)
@click.option("--out", "out_dir", type=click.Path(), default=None, help="Output folder. [default: results/<dataset>]")
@click.option(
    "--cache-dir", type=click.Path(), default=None, help="Data cache. [default: $MAMO_L2L_CACHE or ~/.cache/mamo_l2l]"
)
@click.option("--local-steps", type=int, default=None, help="Local steps for every model (training and evaluation).")
@click.option(
    "--catalogue/--no-catalogue",
    default=True,
    show_default=True,
    help="Also rank the whole catalogue per test user (slow on large catalogues such as Book-Crossing's).",
)
@click.option(
    "--reevaluate",
    is_flag=True,
    help="Evaluate every finished run of this config and data again with this code (a run made by other code "
    "included) instead of reusing or retraining it; metrics.json records the training code as trained_by.",
)
@click.option(
    "--paired-with",
    default=None,
    help="Model compared seed by seed with each other model in results.md. [default: the first of --models]",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or epoch lines (the per-run lines stay).")
@click.option("-v", "--verbose", is_flag=True, help="Also debug lines.")
@plugin_option
def compare(dataset, data_dir, fmt, models, seeds, epochs, config_path, backend, device, warm_eval, out_dir,
            cache_dir, local_steps, catalogue, reevaluate, paired_with, quiet, verbose, plugins):
    """Train (or reuse) every model x seed and write results.md/.csv/.json (+ mae.png) with mean and std."""
    if launched():
        raise MamoError("compare runs as one process; under torchrun use `train` (docs/distributed.md)")
    quiet = quiet_epochs(quiet)  # epoch lines off; the per-run lines stay
    verbose_flag(verbose)
    load_plugins(plugins)
    cfg = config_from_options(config_path, dataset, data_dir, fmt, None, warm_eval, backend=backend,
                              epochs=epochs, device=device, local_steps=local_steps)
    names = [m.strip() for m in models.split(",") if m.strip()]
    seeds = parse_seeds(seeds)
    check_device(cfg.train.device)
    out = out_dir or f"results/{cfg.data.dataset}"
    command = "mamo-l2l " + shlex.join(click.get_current_context().meta.get("mamo_l2l.argv", sys.argv[1:]))
    click.echo(f"comparing {', '.join(names)} on {cfg.data.dataset} over seeds {_shown(seeds)} into {out}", err=True)
    try:
        with graceful_stop():
            results = comparison.compare(cfg, names, seeds, out, cache_dir=cache_dir, command=command,
                                         progress=not quiet, paired_with=paired_with, catalogue=catalogue,
                                         reevaluate=reevaluate)
    except TrainingInterrupted as e:  # the run in progress saved its last.pt (docs/operations.md)
        click.echo(f"{signal.Signals(e.signum).name}: stopped after epoch {e.epoch} of the run in {e.out_dir}; "
                   "the same compare command continues (finished runs are reused, this one resumes)", err=True)
        sys.exit(e.exit_code)
    click.echo(summary_text(results))
    click.echo(f"full tables: {out}/results.md")


def parse_seeds(text: str):
    """``--seeds``: "N" -> N (seeds 0..N-1), "5,6,7" -> [5, 6, 7]."""
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise MamoError(f"--seeds {text!r}: give a number N (seeds 0..N-1) or a list such as 5,6,7") from None
    if not values:
        raise MamoError("--seeds is empty")
    return values if "," in str(text) else values[0]


def _shown(seeds) -> str:
    return f"0..{seeds - 1}" if isinstance(seeds, int) else ", ".join(str(s) for s in seeds)
