"""`mamo-l2l evaluate` (score a saved model on the test scenarios) and `mamo-l2l inspect` (its memory report)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from mamo_l2l import api
from mamo_l2l.api.inspect import format_report, inspect_run
from mamo_l2l.cli.options import (
    backend_option,
    load_plugins,
    plugin_option,
    scenario_option,
)
from mamo_l2l.data.types import SCENARIOS
from mamo_l2l.evaluation.scoring import results_table
from mamo_l2l.training.runfiles import write_text_atomic


@click.command()
@click.option("--checkpoint", type=click.Path(), required=True, help="A run's best.pt, or its folder.")
@scenario_option("Scenario(s) to score (repeatable). [default: all four]")
@click.option("--data-dir", type=click.Path(), default=None, help="Where the data lies now (checked by fingerprint).")
@click.option("--cache-dir", type=click.Path(), default=None)
@backend_option("Backend to adapt with (docs/backends.md). [default: the run's]")
@click.option("--device", default=None)
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the metrics here.")
@plugin_option
def evaluate(checkpoint, scenarios, data_dir, cache_dir, backend, device, json_path, plugins):
    """Score a saved model on the test scenarios (parameters and memories are not changed)."""

    load_plugins(plugins)
    run = api.load_run(checkpoint, data_dir=data_dir, cache_dir=cache_dir, device=device, backend=backend)
    metrics = api.evaluate(run, scenarios=scenarios or SCENARIOS, progress=True)
    click.echo(results_table(metrics))
    if json_path:
        write_text_atomic(json_path, json.dumps(metrics, indent=2) + "\n")
        click.echo(f"saved {json_path}")


@click.command()
@click.option("--checkpoint", type=click.Path(), required=True,
              help="A run's best.pt or its folder (mamo or an ablation).")
@click.option("--data-dir", type=click.Path(), default=None, help="Where the data lies now (checked by fingerprint).")
@click.option("--cache-dir", type=click.Path(), default=None)
@click.option("--json", "json_path", type=click.Path(), default=None, help="Also write the report here (JSON).")
@plugin_option
def inspect(checkpoint, data_dir, cache_dir, json_path, plugins):
    """Show whether a trained model's memories personalise: slot norms and distances, attention
    entropy, top-slot counts and the spread of the personalised start over training and test users."""

    load_plugins(plugins)
    run = api.load_run(checkpoint, data_dir=data_dir, cache_dir=cache_dir)
    report = inspect_run(run)
    click.echo(format_report(report))
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        click.echo(f"saved {json_path}")


