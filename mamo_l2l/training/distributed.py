"""Distributed meta-training on ``torch.distributed`` (docs/distributed.md).

Launched by ``torchrun`` (``torchrun --standalone --nproc-per-node N -m mamo_l2l train ...``),
which sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in every
worker; ``init_from_env`` joins the process group they name (gloo for CPU tensors, plus nccl for
CUDA tensors when CUDA is there). What a training step does with N processes:

* every rank draws the same global meta-batch (the sampler depends only on the seed and the
  epoch) and takes its contiguous share of the tasks (``World.shard``: rank r gets tasks
  ``[r*B//N, (r+1)*B//N)``, so concatenating the shards in rank order is the global order);
* each rank's loss is the *sum* of its tasks' query losses divided by the global batch size B,
  so after ``backward`` the all-reduced (summed) gradients are exactly the gradient of the mean
  over the global meta-batch, however unevenly the tasks are shared (``World.reduce_gradients``);
* the memory writes of every rank are gathered and applied on every rank in the global task
  order (``World.gather_writes``), so the memories stay identical;
* only rank 0 reads and writes the run folder, validates, evaluates and prints; it broadcasts
  the initial (or resumed) model, optimiser and trainer state and the validation scores; a stop
  request (a signal to any rank) is agreed on by all ranks at the end of each epoch.

A single process is ``World(1, 0)``: every method is then the identity, so ``train.fit`` has one
code path.
"""
from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence

import torch
import torch.distributed as dist
import torch.utils._pytree as pytree

from mamo_l2l.core.errors import MamoError

ENV_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    """This process's place among ``size`` training processes (``rank`` 0 is the main one)."""
    size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---------------------------------------------------------------- sharding
    def shard_bounds(self, n: int) -> tuple:
        """[start, stop) of this rank's contiguous share of n tasks (shares differ by at most one)."""
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    def shard(self, tasks: Sequence) -> list:
        start, stop = self.shard_bounds(len(tasks))
        return list(tasks[start:stop])

    # ---------------------------------------------------------------- collectives
    def reduce_gradients(self, params: Sequence[torch.nn.Parameter], loss_sum: torch.Tensor) -> torch.Tensor:
        """Sum the gradients of ``params`` and ``loss_sum`` over the ranks (one all-reduce).

        A parameter whose gradient is None on every rank stays None (as in one process, where the
        optimiser then skips it); one that has a gradient on some rank gets the sum, with zeros
        from the ranks where it had none (e.g. a rank with no task in this meta-batch). Returns the
        summed loss."""
        if not self.active:
            return loss_sum.detach()
        device, dtype = loss_sum.device, loss_sum.dtype
        sizes = [p.numel() for p in params]
        parts = [p.grad.reshape(-1).to(dtype) if p.grad is not None else torch.zeros(n, device=device, dtype=dtype)
                 for p, n in zip(params, sizes)]
        flags = torch.tensor([0.0 if p.grad is None else 1.0 for p in params], device=device, dtype=dtype)
        flat = torch.cat(parts + [flags, loss_sum.detach().reshape(1)])
        dist.all_reduce(flat)
        total = sum(sizes)
        offset = 0
        for p, n, flag in zip(params, sizes, flat[total:total + len(params)].tolist()):
            p.grad = flat[offset:offset + n].view_as(p).to(p.dtype).clone() if flag > 0 else None
            offset += n
        return flat[-1]

    def gather_writes(self, writes: List[Any]) -> List[Any]:
        """Every rank's memory writes, concatenated in rank order (= the global task order).

        A write is a pytree of tensors (or None). Each rank sends its writes' leaves stacked into
        compact CPU tensors (one per leaf; never views, which would pickle the whole batch's
        storage once per task) with the tree structure; they come back on the writes' device."""
        if not self.active:
            return writes
        device = _first_device(writes)
        present = [w is not None for w in writes]
        flat = [pytree.tree_flatten(w) for w in writes if w is not None]
        if flat:
            stacked = [torch.stack([leaves[j].detach() for leaves, _ in flat]).cpu().contiguous()
                       for j in range(len(flat[0][0]))]
            # the tree structure travels as a write with 0 for every leaf (a TreeSpec itself does
            # not pickle cleanly); the receiver flattens it again
            payload = (present, pytree.tree_unflatten([0] * len(stacked), flat[0][1]), stacked)
        else:
            payload = (present, None, [])
        gathered: List[Optional[tuple]] = [None] * self.size
        dist.all_gather_object(gathered, payload)
        out: List[Any] = []
        for mask, template, leaves in gathered:
            spec = pytree.tree_flatten(template)[1] if leaves else None
            if device is not None:
                leaves = [t.to(device) for t in leaves]
            k = 0
            for here in mask:
                if here:
                    out.append(pytree.tree_unflatten([t[k] for t in leaves], spec))
                    k += 1
                else:
                    out.append(None)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (any picklable object; tensors travel on the CPU)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=torch.device("cpu"))
        return box[0]

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers in ``module`` on every rank."""
        if not self.active:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def max_int(self, value: int) -> int:
        """The largest ``value`` over the ranks, on every rank (e.g. the signal that asked to stop)."""
        if not self.active:
            return int(value)
        t = torch.tensor([int(value)], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def _first_device(writes) -> Optional[torch.device]:
    for w in writes:
        if w is not None:
            leaves = [t for t in pytree.tree_leaves(w) if isinstance(t, torch.Tensor)]
            if leaves:
                return leaves[0].device
    return None


SINGLE = World()


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor in it (dicts, lists, tuples) moved to the CPU."""
    return pytree.tree_map(lambda t: t.detach().cpu() if isinstance(t, torch.Tensor) else t, obj)


def current() -> World:
    """The training processes this one belongs to: the initialised default process group
    (``init_from_env``, or one the caller initialised), else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    local = int(os.environ.get("LOCAL_RANK", 0))
    return World(dist.get_world_size(), dist.get_rank(), local)


def launched() -> bool:
    """Whether this process was started by torchrun (or by hand the same way) with WORLD_SIZE > 1."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def init_from_env() -> World:
    """Join the process group that torchrun's environment names (env:// rendezvous), once.

    Backend: ``gloo`` for CPU tensors; with CUDA available ``cpu:gloo,cuda:nccl`` (gradients of a
    CUDA model go through nccl, the small object messages through gloo). A single process
    (no WORLD_SIZE or WORLD_SIZE=1) returns ``SINGLE`` without any process group."""
    if not launched():
        return SINGLE
    if not dist.is_available():
        raise MamoError("WORLD_SIZE > 1 asks for distributed training, but this torch build has no "
                        "torch.distributed")
    missing = [v for v in ENV_VARS if v not in os.environ and v != "LOCAL_RANK"]
    if missing:
        raise MamoError(f"WORLD_SIZE > 1 but {', '.join(missing)} not set: launch with torchrun "
                        "(docs/distributed.md)")
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
    world = current()
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
    return world


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def leave(code: int = 0) -> None:
    """End a rank of a distributed run now, after ``shutdown``: flush the logs and streams and
    ``os._exit(code)``, skipping the interpreter's finalization. The run's files are written and
    closed by then; finalizing with gloo's worker threads still alive sometimes aborted a rank at
    exit (SIGABRT, "terminate called without an active exception"; docs/distributed.md)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def rank_device(device: str, world: World) -> str:
    """The device of this rank: ``cuda`` (without an index) becomes ``cuda:LOCAL_RANK`` with
    several processes, one GPU each; other devices are kept."""
    if world.active and device == "cuda":
        return f"cuda:{world.local_rank}"
    return device
