"""The algorithm side of the algorithm x backend seam (docs/backends.md).

An algorithm says where a user's adaptation starts, and what happens after a training task
(MAMO's memory writes). It knows nothing about learn2learn, higher or torch.func: a backend
asks it for the start, runs the local steps, and hands it the adapted parameters.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch

from mamo_l2l.models.recommender import Recommender

#: one task's (item profiles [N, P_i], ratings [N], padding mask [N])
RatingSet = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class Algorithm:
    """MAML's behaviour: every user starts from the global head parameters; nothing is written."""

    name = "maml"
    #: whether the model adapts per user at all (non-meta references set this False)
    adapts = True
    #: whether ``train.local_steps`` apply: False for a model whose per-user start is its whole
    #: adaptation (TaNP): it takes 0 local steps on every backend, whatever the config says
    takes_local_steps = True

    def __init__(self, model: Recommender):
        self.model = model

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "memory_write" in cls.__dict__:   # the autograd twin that existed before: never silently unused
            raise TypeError(f"{cls.__name__} defines memory_write, which is no longer called: state the write "
                            "once as functional_write(p_u, context, adapted, query_loss) with torch.func "
                            "(docs/backends.md, docs/extending.md)")

    def start(self, p_u: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], Any]:
        """Return (overrides, context).

        overrides: head parameter name -> this user's starting value (differentiable w.r.t. the
        global parameters and p_u); names not in it start from the global value.
        context: whatever ``functional_write`` needs later (e.g. the attention).
        """
        return {}, None

    def task_start(self, p_u: torch.Tensor, support: RatingSet,
                   query: Optional[RatingSet] = None) -> Tuple[Dict[str, torch.Tensor], Any]:
        """``start`` for one task that may read the task's ratings (what every backend calls).

        ``support`` = (p_s [N_s, P_i], sy [N_s], sm [N_s]): the support item profiles, ratings
        and padding mask; ``query`` the same for the query set in training only (None at
        evaluation, catalogue scoring and ``recommend``). Called once per task, under
        ``torch.func.vmap`` by func, so the same rules as ``functional_write`` hold (random draws
        are allowed: func maps with ``randomness="different"``). Default: ``start(p_u)``."""
        return self.start(p_u)

    def task_loss(self, context: Any) -> Optional[torch.Tensor]:
        """A term (a scalar) added to this training task's query loss, from the context that
        ``task_start`` returned; None (the default): nothing added. Training only."""
        return None

    def functional_write(self, p_u: torch.Tensor, context: Any, adapted: Dict[str, torch.Tensor],
                         query_loss: Callable[[Dict[str, torch.Tensor]], torch.Tensor]):
        """What this training task writes to memory (None: nothing), stated once for every backend.

        Called by ``backends.base.task_step`` for one task: unbatched by the per-task backends
        (l2l, higher) and under ``torch.func.vmap`` by func, so it must use ``torch.func`` only
        (no ``torch.autograd.grad``, no Python branching on tensor values). The arguments are one
        task's view: ``p_u`` [P_u], ``context`` as returned by ``start``, ``adapted`` head
        parameter name -> adapted tensor (with its graph under the loop backends; detach what you
        keep), and ``query_loss`` a function of a full head parameter dict that returns this
        task's query loss (a scalar) at those parameters, e.g.
        ``torch.func.grad(lambda prm: query_loss(prm))(adapted)`` for gradients at the adapted
        point. Return the write as a pytree of detached tensors (tensors in dicts, lists, tuples,
        or a class registered with ``torch.utils._pytree``), or None for no write.
        """
        return None

    def apply_writes(self, writes: Sequence[Optional[Any]]) -> None:
        """Apply a meta-batch's writes, in batch order, after the outer step."""
        return None

    def begin_training(self, user_x: torch.Tensor, seed: int) -> None:
        """Called once by ``fit`` before the first epoch of a fresh run, with the feature rows of
        the training users (e.g. MAMO initialises its memory keys from them). Seeded."""
        return None

    def end_epoch(self, user_x: torch.Tensor) -> Dict[str, Any]:
        """Called by ``fit`` after each training epoch (before validation) with the training
        users' feature rows; returns what to record in the run history (e.g. memory diagnostics)."""
        return {}
