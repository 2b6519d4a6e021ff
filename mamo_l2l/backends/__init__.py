"""Backend registry: a name -> how to load a meta-learner backend (docs/backends.md).

The CLI's ``--backend`` choices and the config's ``train.backend`` check are built from
``BACKENDS``; a backend of your own is one ``register_backend`` call (docs/extending.md)::

    register_backend("mine", "my_package.my_module:MyBackend", summary="...")

``requires``/``extra`` name an optional dependency: when it is missing, ``get_backend`` raises
a MamoError naming the pip extra and the install command instead of an ImportError.
"""
from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Dict, Optional, Union

from mamo_l2l.backends.compat import LEARN2LEARN_MISSING
from mamo_l2l.core.config import register_choices
from mamo_l2l.core.errors import MamoError


@dataclass(frozen=True)
class BackendInfo:
    """How to load one backend. ``target`` is a Backend subclass or ``"module:Class"`` (imported
    when first used);
    ``batched``: it runs a whole meta-batch per call (auto threads use all cores, backends'
    ``threads_for``); ``requires``: the import name of an optional dependency, installed by
    the pip extra ``extra``."""
    name: str
    target: Union[str, type]
    summary: str = ""
    batched: bool = False
    requires: Optional[str] = None
    extra: Optional[str] = None
    install_hint: Optional[str] = None

    def missing_dependency(self) -> Optional[str]:
        """A MamoError message when the optional dependency is not installed, else None:
        ``install_hint`` when the backend has one (learn2learn: no plain pip extra on Python 3.11+),
        else the pip extra."""
        if self.requires is None or importlib.util.find_spec(self.requires) is not None:
            return None
        if self.install_hint:
            return (f"backend {self.name!r}: {self.install_hint} Or choose another backend: "
                    f"--backend {default_backend()}")
        return (f"backend {self.name!r} needs {self.requires}, which is not installed; install the extra: "
                f"pip install 'mamo_l2l[{self.extra}]' (or `bash scripts/install.sh`, which installs every "
                f"backend; docs/install.md), or choose another backend: --backend {default_backend()}")


BACKENDS: Dict[str, BackendInfo] = {}
register_choices("train.backend", BACKENDS)   # the config checks train.backend against it


def register_backend(name: str, target: Union[str, type], summary: str = "", batched: bool = False,
                     requires: Optional[str] = None, extra: Optional[str] = None,
                     install_hint: Optional[str] = None) -> BackendInfo:
    """Register (or replace) the backend ``name``: ``target`` is the Backend subclass, or
    "module:Class" to import when the backend is first used."""
    info = BackendInfo(name, target, summary, batched, requires, extra, install_hint)
    BACKENDS[name] = info
    return info


register_backend("l2l", "mamo_l2l.backends.l2l:L2LBackend", requires="learn2learn", extra="l2l",
                 install_hint=LEARN2LEARN_MISSING,
                 summary="learn2learn's MAML: clone per user (the reference)")
register_backend("higher", "mamo_l2l.backends.higher_backend:HigherBackend", requires="higher", extra="higher",
                 summary="higher's monkeypatched head and differentiable SGD, per user")
register_backend("func", "mamo_l2l.backends.func:FuncBackend", batched=True,
                 summary="torch.func + vmap over the whole meta-batch (the default)")


def default_backend() -> str:
    return "func"


def backend_info(name: str) -> BackendInfo:
    """The registry entry of ``name``; MamoError naming the known backends when there is none."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise MamoError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}") from None


def require_backend(name: str) -> BackendInfo:
    """The registry entry of ``name``; MamoError when it is unknown or its extra is not installed."""
    info = backend_info(name)
    missing = info.missing_dependency()
    if missing is not None:
        raise MamoError(missing)
    return info


def get_backend(name: str):
    """A fresh instance of the backend called ``name``."""
    info = require_backend(name)
    if not isinstance(info.target, str):
        return info.target()
    module, _, cls = info.target.partition(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = [
    "BACKENDS",
    "BackendInfo",
    "backend_info",
    "default_backend",
    "get_backend",
    "register_backend",
    "require_backend",
]
