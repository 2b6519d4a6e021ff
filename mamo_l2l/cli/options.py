"""Options shared by several commands (mamo_l2l/cli/): choices come from the registries."""
from __future__ import annotations

import logging

import click

from mamo_l2l.backends import BACKENDS
from mamo_l2l.core.config import load_config
from mamo_l2l.core.plugins import load_plugins as load
from mamo_l2l.data.types import SCENARIOS

plugin_option = click.option(
    "--plugin", "plugins", multiple=True, metavar="MODULE",
    help="Import MODULE first: it registers models of your own (repeatable; docs/models.md, \"Plugins\").")


def load_plugins(plugins) -> None:
    load(plugins)


def backend_option(help: str = "Meta-learner backend (docs/backends.md). [default: func]"):
    """``--backend``: a name in the backend registry (mamo_l2l/backends/__init__.py), listed in the
    help; checked with the config after ``--plugin`` modules ran, so a plugin's backend counts."""
    return click.option("--backend", metavar="|".join(BACKENDS), default=None,
                        help=f"{help} A backend a --plugin registers counts too.")


def scenario_option(help: str):
    """``--scenario`` (repeatable), its choices the four test scenarios."""
    return click.option("--scenario", "scenarios", multiple=True, type=click.Choice(list(SCENARIOS)), help=help)


def quiet_flag(flag: bool) -> bool:
    """A command's own --quiet (or the group's): warnings only from here on."""
    if flag or click.get_current_context().meta.get("mamo_l2l.quiet"):
        logging.getLogger("mamo_l2l").setLevel(logging.WARNING)
        return True
    return False


def quiet_epochs(flag: bool) -> bool:
    """compare's own --quiet: no progress bars, data counts or epoch lines (the ``mamo_l2l.run``
    logger), the per-run lines stay; the group's -q silences everything below warnings."""
    if click.get_current_context().meta.get("mamo_l2l.quiet"):
        return quiet_flag(True)
    if flag:
        logging.getLogger("mamo_l2l.run").setLevel(logging.WARNING)
    return flag


def verbose_flag(flag: bool) -> None:
    if flag:
        logging.getLogger("mamo_l2l").setLevel(logging.DEBUG)


def config_from_options(config_path, dataset, data_dir, fmt, model_name, warm_eval=None, **train_overrides):
    cfg = load_config(config_path)
    cfg = cfg.override("data", dataset=dataset, data_dir=data_dir, format=fmt, warm_eval=warm_eval)
    if model_name is not None:
        cfg = cfg.override("model", name=model_name)
    return cfg.override("train", **train_overrides)


