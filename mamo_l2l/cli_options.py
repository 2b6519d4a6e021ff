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
    """``--backend``: a name in the backend registry (mamo_l2l/backends/__init__.py), listed in the
    help; checked with the config after ``--plugin`` modules ran, so a plugin's backend counts."""
    from .backends import BACKENDS
    return click.option("--backend", metavar="|".join(BACKENDS), default=None,
                        help=f"{help} A backend a --plugin registers counts too.")


def scenario_option(help: str):
    """``--scenario`` (repeatable), its choices the four test scenarios."""
    from .data.types import SCENARIOS
    return click.option("--scenario", "scenarios", multiple=True, type=click.Choice(list(SCENARIOS)), help=help)
