"""MAMO (docs/algorithm.md: the memories, local and global update): memory-personalised start,
memory writes after each training task."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.algorithms.memory_stats import memory_summary
from mamo_l2l.models.memory import MAMOMemory, MemoryRead, MemoryWrite, split_flat
from mamo_l2l.models.recommender import Recommender

USER_NET = "user_net."
PREF = "pref.weight"


class MAMORecommender(Recommender):
    """The recommender plus MAMO's memories (buffers, saved in the state dict)."""

    def __init__(self, base: Recommender, memory: MAMOMemory):
        super().__init__(base.user_embedder.layout, base.item_embedder.layout, base.user_embedder.dim, base.head)
        self.user_embedder, self.item_embedder, self.choice = base.user_embedder, base.item_embedder, base.choice
        self.memory = memory


class MAMO(Algorithm):
    """theta_u^0 = phi_u - tau * b_u (feature-specific memory), W_pref^0 = sum_k a_u[k] M_UI[k]
    (task-specific memory). ``feature_memory=False`` is the tau = 0 ablation; ``task_memory=False``
    keeps W_pref a global parameter (its ablation)."""

    name = "mamo"

    def __init__(self, model: MAMORecommender, tau: float, feature_memory: bool = True, task_memory: bool = True):
        super().__init__(model)
        self.tau = tau if feature_memory else 0.0
        self.feature_memory = feature_memory and tau != 0.0
        self.task_memory = task_memory
        head = model.head
        self.user_names: List[str] = [n for n, _ in head.named_parameters() if n.startswith(USER_NET)]
        self.user_shapes = [p.shape for n, p in head.named_parameters() if n.startswith(USER_NET)]

    @property
    def memory(self) -> MAMOMemory:
        return self.model.memory

    def _overrides(self, read: MemoryRead, params: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = {}
        if self.feature_memory:
            for name, b in zip(self.user_names, split_flat(read.bias, self.user_shapes)):
                out[name] = params[name] - self.tau * b
        if self.task_memory:
            out[PREF] = read.pref
        return out

    def start(self, p_u: torch.Tensor) -> Tuple[Dict[str, torch.Tensor], Any]:
        read = self.memory.read(p_u)
        params = dict(self.model.head.named_parameters())
        return self._overrides(read, params), read

    def functional_write(self, p_u, context, adapted, query_loss) -> MemoryWrite:
        # g_u: the gradient of the query loss w.r.t. theta_u at the adapted parameters
        # (docs/algorithm.md, "The memory write rule"), by torch.func.grad of the query loss as a
        # function of theta_u alone (the other adapted parameters held fixed). Under no_grad no
        # outer graph is built for it (torch.func.grad still differentiates its own input); the
        # write is detached anyway.
        fixed = {n: t.detach() for n, t in adapted.items()}
        with torch.no_grad():
            grads = torch.func.grad(lambda user: query_loss({**fixed, **user}))({n: fixed[n] for n in self.user_names})
        flat = torch.cat([grads[n].reshape(-1) for n in self.user_names])
        return MemoryWrite(context.attention.detach(), p_u.detach(), flat, fixed[PREF], context.pref.detach())

    def apply_writes(self, writes: Sequence[Optional[MemoryWrite]]) -> None:
        # Without task memory M_UI is never read, so it is not written either.
        self.memory.write([w for w in writes if w is not None], preference=self.task_memory)

    @torch.no_grad()
    def profiles(self, user_x: torch.Tensor) -> torch.Tensor:
        """p_u of the given users' feature rows, with the current field embeddings."""
        return self.model.user_embedder(user_x.to(self.memory.profile.device))

    def begin_training(self, user_x: torch.Tensor, seed: int) -> None:
        self.memory.init_keys(self.profiles(user_x), seed)

    @torch.no_grad()
    def after_pretraining(self) -> None:
        """After supervised pretraining (``train.pretrain_epochs``): every preference-memory slot
        starts at the pretrained preference layer, which the rest of the head was fitted with
        (with task memory, W_pref^0 is read from M_UI and the global W_pref is never used)."""
        if self.task_memory:
            self.memory.preference.copy_(self.model.head.pref.weight.detach().expand_as(self.memory.preference))

    def end_epoch(self, user_x: torch.Tensor) -> Dict[str, Any]:
        profiles = self.profiles(user_x)
        reseeded = self.memory.reseed(profiles)
        return {"memory": dict(memory_summary(self, profiles), reseeded_slots=reseeded)}
