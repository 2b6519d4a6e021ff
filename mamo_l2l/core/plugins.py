"""Models from outside mamo_l2l in the stock CLI (docs/models.md, "Plugins").

A plugin is a Python module that calls ``register_model`` when imported. The CLI imports it with
``--plugin MODULE`` (repeatable); an installed package can instead declare an entry point in the
group ``mamo_l2l.models`` (read the first time a model name is not found). A run records the
module that registered its model in its checkpoints ("plugins"; mamo_l2l/algorithms:
``loaded_plugins``), so ``evaluate``, ``recommend``, ``serve``, ``inspect`` and ``--resume`` import it
again without the flag.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Iterable, List

from mamo_l2l.core.errors import MamoError

ENTRY_POINT_GROUP = "mamo_l2l.models"
log = logging.getLogger("mamo_l2l")
entry_points_loaded = False


def load_plugins(modules: Iterable[str]) -> List[str]:
    """Import each module (it registers its models); MamoError naming the module on failure."""
    done = []
    for name in modules:
        name = name.strip()
        if not name:
            continue
        try:
            importlib.import_module(name)
        except Exception as e:  # noqa: BLE001 -- any import failure is the user's module
            raise MamoError(
                f"cannot import plugin module {name!r} ({type(e).__name__}: {e}); it must be "
                "importable (on PYTHONPATH or installed) and register its models with "
                "mamo_l2l.register_model"
            ) from None
        done.append(name)
    return done


def load_entry_points() -> None:
    """Import the modules named by the ``mamo_l2l.models`` entry points (once per process)."""
    global entry_points_loaded
    if entry_points_loaded:
        return
    entry_points_loaded = True
    try:
        eps = entry_points(group=ENTRY_POINT_GROUP)
    except TypeError:  # Python < 3.10
        eps = entry_points().get(ENTRY_POINT_GROUP, [])
    for ep in eps:
        try:
            ep.load()
        except Exception as e:  # noqa: BLE001
            raise MamoError(
                f"cannot load the model plugin entry point {ep.name!r} = {ep.value!r} ({type(e).__name__}: {e})"
            ) from None
