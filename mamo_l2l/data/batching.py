"""Seeded meta-batches of tasks, and padding + mask so a batch is a few dense tensors."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np
import torch

from mamo_l2l.data.types import EncodedDataset, Task


@dataclass
class PaddedBatch:
    """B tasks padded to equal support/query length. Masks are 1.0 for real ratings, 0.0 for padding.

    user_x [B, S_u] int64; support_x [B, N_s, S_i] int64; support_y/support_mask [B, N_s] float32;
    query_x [B, N_q, S_i]; query_y/query_mask [B, N_q]. Padded item rows are all PAD (index 0).
    """
    user_x: torch.Tensor
    support_x: torch.Tensor
    support_y: torch.Tensor
    support_mask: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    query_mask: torch.Tensor

    def __len__(self) -> int:
        return self.user_x.shape[0]

    def to(self, device) -> "PaddedBatch":
        return PaddedBatch(**{k: v.to(device) for k, v in self.__dict__.items()})

    def task(self, b: int) -> "PaddedBatch":
        """Task b alone, with its padding removed (a batch of one)."""
        ns = int(self.support_mask[b].sum().item())
        nq = int(self.query_mask[b].sum().item())
        return PaddedBatch(
            self.user_x[b:b + 1], self.support_x[b:b + 1, :ns], self.support_y[b:b + 1, :ns],
            self.support_mask[b:b + 1, :ns], self.query_x[b:b + 1, :nq], self.query_y[b:b + 1, :nq],
            self.query_mask[b:b + 1, :nq])


def pad_tasks(tasks: Sequence[Task], data: EncodedDataset) -> PaddedBatch:
    """Stack tasks into one PaddedBatch (padding to the longest support and query set)."""
    b = len(tasks)
    ns = max(len(t.support_items) for t in tasks)
    nq = max(len(t.query_items) for t in tasks)
    s_i = data.item_x.shape[1]
    user_x = data.user_x[[t.user for t in tasks]]
    sx = np.zeros((b, ns, s_i), dtype=np.int64)
    sy = np.zeros((b, ns), dtype=np.float32)
    sm = np.zeros((b, ns), dtype=np.float32)
    qx = np.zeros((b, nq, s_i), dtype=np.int64)
    qy = np.zeros((b, nq), dtype=np.float32)
    qm = np.zeros((b, nq), dtype=np.float32)
    for k, t in enumerate(tasks):
        n = len(t.support_items)
        sx[k, :n] = data.item_x[t.support_items]
        sy[k, :n] = t.support_ratings
        sm[k, :n] = 1.0
        n = len(t.query_items)
        qx[k, :n] = data.item_x[t.query_items]
        qy[k, :n] = t.query_ratings
        qm[k, :n] = 1.0
    t = torch.from_numpy
    return PaddedBatch(t(np.ascontiguousarray(user_x, dtype=np.int64)), t(sx), t(sy), t(sm), t(qx), t(qy), t(qm))


class MetaBatchSampler:
    """Shuffles tasks into meta-batches, one fresh seeded permutation per epoch.

    The permutation for epoch e depends only on (seed, e), so a resumed run sees the same
    batches as an uninterrupted one.
    """

    def __init__(self, tasks: Sequence[Task], batch_size: int, seed: int, drop_last: bool = False,
                 resample_queries: bool = False):
        self.tasks = list(tasks)
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.resample_queries = resample_queries

    def num_batches(self) -> int:
        n = len(self.tasks)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def epoch(self, epoch: int) -> Iterator[List[Task]]:
        rng = np.random.default_rng([self.seed, epoch, 0x5A17])
        order = rng.permutation(len(self.tasks))
        tasks = resplit_tasks(self.tasks, self.seed, epoch) if self.resample_queries else self.tasks
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                break
            yield [tasks[i] for i in idx]


def resplit_tasks(tasks: Sequence[Task], seed: int, epoch: int) -> List[Task]:
    """The training tasks with a fresh seeded support/query split for ``epoch``
    (``train.resample_queries``, docs/algorithm.md "Training"): each task's ratings (support and
    query together) are shuffled and cut again with the same query size, so over the epochs the
    outer loss sees every training rating as a query rating, not only the protocol's fixed
    ``n_query`` per user. The split depends only on (seed, epoch) and the task list, so a resumed
    or distributed run draws the same tasks."""
    rng = np.random.default_rng([seed, epoch, 0x9E5A])
    out: List[Task] = []
    for t in tasks:
        items = np.concatenate([t.support_items, t.query_items])
        ratings = np.concatenate([t.support_ratings, t.query_ratings])
        perm = rng.permutation(len(items))
        q, s = perm[:len(t.query_items)], perm[len(t.query_items):]
        out.append(Task(t.user, items[s], ratings[s], items[q], ratings[q]))
    return out


def task_ratings(tasks: Sequence[Task]):
    """(item indices int64, ratings float64) of every rating in the tasks, support then query,
    task by task."""
    if not tasks:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    items = np.concatenate([np.concatenate([t.support_items, t.query_items]) for t in tasks])
    ratings = np.concatenate([np.concatenate([t.support_ratings, t.query_ratings]) for t in tasks])
    return items.astype(np.int64), ratings.astype(np.float64)


def rating_tasks(tasks: Sequence[Task]) -> np.ndarray:
    """For every rating of ``task_ratings(tasks)``, in the same order, the index of its task
    (int64): e.g. ``np.array([t.user for t in tasks])[rating_tasks(tasks)]`` is each rating's user."""
    sizes = [len(t.support_items) + len(t.query_items) for t in tasks]
    return np.repeat(np.arange(len(tasks), dtype=np.int64), sizes)


def part_ratings(tasks: Sequence[Task], part: str = "support") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(task index int64, item index int64, rating float64) of every rating in one part
    (``support`` or ``query``) of each task, task by task (task indices ascending)."""
    items = [getattr(t, f"{part}_items") for t in tasks]
    rows = np.repeat(np.arange(len(tasks), dtype=np.int64), [len(i) for i in items])
    if not tasks:
        return rows, np.zeros(0, np.int64), np.zeros(0, np.float64)
    ratings = np.concatenate([getattr(t, f"{part}_ratings") for t in tasks])
    return rows, np.concatenate(items).astype(np.int64), ratings.astype(np.float64)


def user_rows(tasks: Sequence[Task], data: EncodedDataset) -> torch.Tensor:
    """Feature rows [n, S_u] of the distinct users of the tasks (in user index order)."""
    users = np.unique(np.asarray([t.user for t in tasks], dtype=np.int64))
    return torch.from_numpy(np.ascontiguousarray(data.user_x[users]))


def chunks(tasks: Sequence[Task], size: int) -> Iterator[List[Task]]:
    """Tasks in their given order, ``size`` at a time (evaluation)."""
    for start in range(0, len(tasks), size):
        yield list(tasks[start:start + size])
