"""Options shared by several commands (mamo_l2l/cli.py, recommend_cli.py)."""
from __future__ import annotations

import click

plugin_option = click.option(
    "--plugin", "plugins", multiple=True, metavar="MODULE",
    help="Import MODULE first: it registers models of your own (repeatable; docs/models.md, \"Plugins\").")


def load_plugins(plugins) -> None:
    from .plugins import load_plugins as load
    load(plugins)
