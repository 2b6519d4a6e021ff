"""The baselines of docs/algorithm.md ("Baselines in the same pipeline") besides MAML: MeLU,
supervised regression (with and without per-user fine-tuning) and the two mean-rating references as models.

How ``fit`` trains an algorithm is its ``trainer`` attribute (absent means ``"meta"``):
- ``"meta"``: meta-training through a backend (MAML, MeLU, MAMO and its ablations);
- ``"supervised"``: plain minibatch regression on the training ratings (mamo_l2l/training/supervised.py);
- ``"none"``: nothing to learn by gradient; ``fit_reference(splits)`` fits it.
Whether evaluation adapts per user is ``adapts``: a non-adapting model is scored with 0 local
steps, i.e. predicts from its global parameters.
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch
from torch import nn

from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.data.types import Splits, Task
from mamo_l2l.models.means import MeanReference


def trainer_of(algorithm) -> str:
    """How ``fit`` trains this algorithm: "meta" (the default), "supervised" or "none"."""
    return getattr(algorithm, "trainer", "meta")


class MeLU(Algorithm):
    """MeLU (Lee et al., KDD 2019): every user starts from the global decision layers, which are
    the whole head (models/melu.py); the field embeddings stay global. MAML-style meta-training;
    ``train.local_steps`` 1 / 5 gives MeLU-1 / MeLU-5."""

    name = "melu"
    trainer = "meta"


class Supervised(Algorithm):
    """The MAML recommender trained by ordinary supervised regression on all training ratings,
    evaluated without adaptation (predictions from the global parameters)."""

    name = "supervised"
    trainer = "supervised"
    adapts = False


class SupervisedFinetune(Algorithm):
    """The supervised model, fine-tuned per test user on the support set at evaluation
    (``train.local_steps`` SGD steps with ``train.local_lr``, from the global parameters)."""

    name = "supervised-finetune"
    trainer = "supervised"
    adapts = True


class MeanModel(nn.Module):
    """The fitted values of a mean reference, as buffers so they live in the checkpoint."""

    def __init__(self, n_items: int):
        super().__init__()
        self.register_buffer("item_mean", torch.zeros(n_items, dtype=torch.float64))
        self.register_buffer("global_mean", torch.zeros((), dtype=torch.float64))


class MeanPrediction(Algorithm):
    """global-mean / item-mean (references.py) as models: no training, no adaptation; predictions
    come straight from the fitted values (``predict_direct``), not through a backend."""

    trainer = "none"
    adapts = False

    def __init__(self, model: MeanModel, per_item: bool):
        super().__init__(model)
        self.per_item = per_item
        self.name = "item-mean" if per_item else "global-mean"

    def fit_reference(self, splits: Splits) -> None:
        ref = MeanReference(splits.train, self.model.item_mean.numel(), per_item=self.per_item)
        with torch.no_grad():
            self.model.item_mean.copy_(torch.from_numpy(ref.item_mean))
            self.model.global_mean.fill_(ref.global_mean)

    def predict_direct(self, tasks: Sequence[Task]) -> List[np.ndarray]:
        """Per task, the (unclipped) predicted query ratings."""
        table = self.model.item_mean.detach().cpu().numpy()
        return [table[t.query_items] for t in tasks]
