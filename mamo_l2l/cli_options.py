"""Options shared by several commands (mamo_l2l/cli.py, recommend_cli.py); choices come from the registries."""
from __future__ import annotations

import click

plugin_option = click.option(
    "--plugin", "plugins", multiple=True, metavar="MODULE",
    help="Import MODULE first: it registers models of your own (repeatable; docs/models.md, \"Plugins\").")


def load_plugins(plugins) -> None:
    from .plugins import load_plugins as load
    load(plugins)


def backend_option(help: str = "Meta-learner backend (docs/backends.md). [default: func]"):
    """``--backend``, its choices from the backend registry (mamo_l2l/backends/__init__.py)."""
    from .backends import BACKENDS
    return click.option("--backend", type=click.Choice(list(BACKENDS)), default=None, help=help)


def scenario_option(help: str):
    """``--scenario`` (repeatable), its choices the four test scenarios."""
    from .data.types import SCENARIOS
    return click.option("--scenario", "scenarios", multiple=True, type=click.Choice(list(SCENARIOS)), help=help)
