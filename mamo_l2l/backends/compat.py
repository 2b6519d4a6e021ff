"""Import guard for learn2learn.

learn2learn 0.2.0's package ``__init__`` imports its vision/gym/text/data sub-packages, which
pull in torchvision, gym, requests, PIL and scipy. mamo_l2l only uses ``learn2learn.algorithms``
(MAML) and ``learn2learn.utils`` (clone_module, update_module), which need torch alone. On a
CPU-only torch, PyPI's torchvision cannot even be loaded, so the plain import fails.

``import_learn2learn()`` first tries the normal ``import learn2learn``. Only when that raises an
ImportError (a missing or broken optional dependency) does it fall back: it registers the package
module without running its ``__init__`` and imports the torch-only sub-packages into it
(``algorithms``, ``utils``, ``nn``, ``optim``). After that, ``import learn2learn`` anywhere in the
process returns the same module, and ``learn2learn.algorithms.MAML`` works. The guard never
hides a missing learn2learn: if the package is not installed at all, it raises MamoError with
the install command.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys
from types import ModuleType

from mamo_l2l.core.errors import MamoError

#: sub-packages loaded by the fallback; all of them import only torch/numpy.
TORCH_ONLY_SUBPACKAGES = ("_version", "utils", "algorithms", "nn", "optim")

#: set to True when the fallback was used (for tests and `mamo-l2l --version`).
GUARD_ACTIVE = False


#: the message for a missing learn2learn (also the l2l backend's, mamo_l2l/backends/__init__.py)
LEARN2LEARN_MISSING = (
    "learn2learn is not installed. On Python 3.11 and later pip cannot install it as a dependency: run "
    "`pip install cython`, then `pip install --no-deps learn2learn==0.2.0 "
    "--config-settings=--build-option=build_ext` (or `bash scripts/install.sh`, which does both). On Python "
    "3.9/3.10 `pip install 'mamo_l2l[l2l]'` also works (docs/install.md).")


def import_learn2learn() -> ModuleType:
    """Return the learn2learn module, loading only its torch-only parts if the full import fails."""
    global GUARD_ACTIVE
    mod = sys.modules.get("learn2learn")
    if mod is not None and hasattr(mod, "algorithms"):
        return mod
    spec = importlib.util.find_spec("learn2learn")
    if spec is None or spec.submodule_search_locations is None:
        raise MamoError(LEARN2LEARN_MISSING)
    try:
        return importlib.import_module("learn2learn")
    except ImportError:
        # Drop whatever the failed import left half-registered, then load the skeleton.
        for name in [n for n in sys.modules if n == "learn2learn" or n.startswith("learn2learn.")]:
            del sys.modules[name]
    mod = importlib.util.module_from_spec(spec)
    sys.modules["learn2learn"] = mod  # registered before the sub-imports: they import learn2learn
    for sub in TORCH_ONLY_SUBPACKAGES:
        setattr(mod, sub, importlib.import_module(f"learn2learn.{sub}"))
    mod.__version__ = mod._version.__version__
    for name in ("clone_module", "update_module", "detach_module", "clone_parameters"):
        setattr(mod, name, getattr(mod.utils, name))
    GUARD_ACTIVE = True
    return mod
