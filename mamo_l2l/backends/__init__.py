"""Meta-learner backends: learn2learn (reference), higher, torch.func (batched)."""
from __future__ import annotations

from ..errors import MamoError
from .base import Backend, BatchOutcome

BACKENDS = ("l2l", "higher", "func")


def get_backend(name: str) -> Backend:
    """The backend called ``name`` (l2l | higher | func)."""
    if name == "l2l":
        from .l2l import L2LBackend
        return L2LBackend()
    if name == "higher":
        from .higher_backend import HigherBackend
        return HigherBackend()
    if name == "func":
        from .func import FuncBackend
        return FuncBackend()
    raise MamoError(f"unknown backend {name!r}; known backends: {', '.join(BACKENDS)}")
