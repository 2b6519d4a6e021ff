"""The `mamo-l2l` command line: the group, its -q/-v options and its commands, one module per
command group (train.py, evaluate.py: evaluate and inspect, compare.py, recommend.py: recommend and
serve, data.py: the data group), each a few lines over the library."""
from __future__ import annotations

import logging
import sys

import click

from mamo_l2l.cli.compare import compare
from mamo_l2l.cli.data import data as data_group
from mamo_l2l.cli.evaluate import evaluate, inspect
from mamo_l2l.cli.recommend import COMMANDS as recommend_commands
from mamo_l2l.cli.train import train
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.progress import console_logging, remove_console_logging
from mamo_l2l.core.version import __version__


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

    console_logging(logging.WARNING if quiet_all else logging.DEBUG if verbose else logging.INFO)
    ctx.meta["mamo_l2l.quiet"] = quiet_all
    ctx.call_on_close(remove_console_logging)








for _command in (train, evaluate, compare, inspect, data_group, *recommend_commands):
    app.add_command(_command)


def main() -> None:
    app(prog_name="mamo-l2l")












