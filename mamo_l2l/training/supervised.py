"""Supervised training: plain minibatch MSE regression on every rating of the training tasks
(support and query sets), no inner loop, no memory. The ``supervised`` and
``supervised-finetune`` models use it (algorithms/baselines.py); ``train.fit`` drives the
epochs, validation, early stopping, checkpoints and ``--resume`` exactly as for the meta-learners.

Each epoch visits the training ratings in a fresh seeded order (it depends only on the seed and
the epoch, so a resumed run sees the same minibatches), ``train.batch_size`` ratings per Adam
(or SGD) step with learning rate ``train.outer_lr``.
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch

from mamo_l2l.data.batching import rating_tasks, task_ratings
from mamo_l2l.training.faults import check_finite


def predict_pairs(model, user_x: torch.Tensor, item_x: torch.Tensor) -> torch.Tensor:
    """Predicted ratings of R (user, item) pairs: user_x [R, S_u], item_x [R, S_i] -> [R].

    The head's signature is one user's (p_u [P_u], p_i [n, P_i]) -> [n]; ``torch.vmap`` maps it
    over the pairs, each pair being a user with one item.
    """
    p_u, p_i = model.profiles(user_x, item_x)
    return torch.vmap(model.head)(p_u, p_i.unsqueeze(1)).squeeze(1)


class SupervisedEpochs:
    """One epoch = one pass over the training ratings in minibatches (what ``fit`` calls per epoch)."""

    unit = "rating"

    def __init__(self, run, optimizer: torch.optim.Optimizer):
        self.run, self.optimizer = run, optimizer
        tasks = run.bundle.splits.train
        self.items, ratings = task_ratings(tasks)
        self.ratings = ratings.astype(np.float32)
        self.users = np.array([t.user for t in tasks], dtype=np.int64)[rating_tasks(tasks)]
        self.total = int(self.ratings.size)

    def run_epoch(self, epoch: int, bar=None) -> List[float]:
        run, t = self.run, self.run.config.train
        data, model = run.bundle.data, run.model
        order = np.random.default_rng([t.seed, epoch, 0x5E9B]).permutation(self.total)
        losses: List[float] = []
        params = [p for p in model.parameters() if p.requires_grad]
        for number, start in enumerate(range(0, self.total, t.batch_size), start=1):
            idx = order[start:start + t.batch_size]
            user_x = torch.from_numpy(data.user_x[self.users[idx]]).to(t.device)
            item_x = torch.from_numpy(data.item_x[self.items[idx]]).to(t.device)
            target = torch.from_numpy(self.ratings[idx]).to(t.device)
            loss = ((predict_pairs(model, user_x, item_x) - target) ** 2).mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            check_finite(loss, params, epoch, number, run.config, unit="minibatch")   # mamo_l2l/training/faults.py
            self.optimizer.step()
            losses.append(float(loss.detach()))
            if bar is not None:
                bar.update(len(idx))
                bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        return losses
