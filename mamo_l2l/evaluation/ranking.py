"""The ranking score of catalogue ranking and ``recommend`` (docs/algorithm.md, "Ranking score").

A rating regressor ranks a catalogue by predicted rating, so niche items with a high predicted
rating come first, while the items a user finds relevant are, first of all, items that user
chooses to rate. The ranking score adds an item-level *choice prior*:

    score(u, i) = r_hat(u, i) + w * c_i + v * s_ui

- r_hat(u, i): the model's predicted rating, unclipped, after the user's local steps (exactly
  evaluation's prediction, catalogue.py);
- c_i, the choice prior, from the training tasks only: log(1 + n_i) for an item with n_i training
  ratings (the maximum-likelihood item-only choice model, P(i) proportional to n_i, add-one
  smoothed); for any other item (new items, existing items only held-out users rated) a linear
  model on the item's feature values (one scalar per value of each non-identity field, plus an
  intercept) fitted by ridge-penalised least squares to log(1 + n_i) over the training items;
- s_ui, the user's choice score of the item from the choice head (models/choice.py;
  ``choice_scores``), only when the model has one (``model.choice_dim`` > 0), else v = 0;
- w (and v): chosen after training from ``WEIGHTS`` (and ``CHOICE_WEIGHTS``), the pair with the
  best catalogue Recall@10 of the validation users (candidates: the training items; smallest
  weights on ties; training/ranking_weight.py). w = v = 0 ranks by predicted rating alone; a large
  w is popularity with the predicted rating breaking its ties, a large v the choice head's order.

``model.choice_prior: false`` (or a run made before it existed) ranks by predicted rating alone.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import numpy as np
import torch

from mamo_l2l.data.batching import pad_tasks, task_ratings
from mamo_l2l.models.embedding import FieldEmbedder

#: ridge penalty and full-batch Adam steps of the feature model of c_i
RIDGE, STEPS, LR = 1e-3, 300, 0.05


@dataclass
class Ranking:
    """w, the choice prior c [n_items] (item index order) and v, the weight of the choice head's
    scores (0: not used)."""
    weight: float
    prior: np.ndarray
    choice_weight: float = 0.0

    def scores(self, predicted: np.ndarray, items: np.ndarray, choice: Optional[np.ndarray] = None) -> np.ndarray:
        """Ranking scores of ``items`` from their unclipped predicted ratings (same shape, last
        axis) and, when v != 0, the choice head's scores ``choice`` (same shape)."""
        out = predicted + self.weight * self.prior[np.asarray(items, dtype=np.int64)]
        if self.choice_weight:
            if choice is None:
                raise ValueError("this ranking weighs the choice head's scores: pass them (choice_scores)")
            out = out + self.choice_weight * choice
        return out

    def to_payload(self) -> Dict[str, Any]:
        return {"weight": float(self.weight), "prior": torch.from_numpy(np.asarray(self.prior, np.float64).copy()),
                "choice_weight": float(self.choice_weight)}

    @classmethod
    def from_payload(cls, d: Optional[Dict[str, Any]]) -> Optional["Ranking"]:
        if d is None:
            return None
        return cls(float(d["weight"]), d["prior"].numpy().astype(np.float64), float(d.get("choice_weight", 0.0)))


def rank_scores(ranking: Optional[Ranking], predicted: np.ndarray, items: np.ndarray,
                choice: Optional[np.ndarray] = None) -> np.ndarray:
    """What catalogue ranking and ``recommend`` order by: the predicted ratings (unclipped) plus
    w * c_i (+ v * s_ui), or the predicted ratings alone without a ranking."""
    return predicted if ranking is None else ranking.scores(predicted, items, choice)


def uses_choice(ranking: Optional[Ranking]) -> bool:
    """Whether ``ranking`` needs the choice head's scores (v != 0)."""
    return ranking is not None and bool(ranking.choice_weight)


@torch.no_grad()
def choice_scores(model, tasks, candidates: np.ndarray, data, device: str = "cpu") -> Optional[np.ndarray]:
    """The choice head's s_ui, float64 [len(tasks), len(candidates)], each user's c_u folded in
    from the task's support items (models/choice.py); None when the model has no choice head."""
    head = getattr(model, "choice", None)
    if head is None or not len(tasks):
        return None
    batch = pad_tasks(list(tasks), data).to(device)
    c = head.user_vectors(batch.support_x, batch.support_mask)
    item_x = torch.from_numpy(np.ascontiguousarray(data.item_x[candidates], dtype=np.int64)).to(device)
    return head.scores(c, item_x).double().cpu().numpy()


def choice_prior(data, train_tasks, seed: int = 0) -> np.ndarray:
    """c_i for every item (module doc): log(1 + n_i) for training items, the feature model elsewhere."""
    n_items = len(data.item_ids)
    counts = np.bincount(task_ratings(train_tasks)[0], minlength=n_items)
    target = np.log1p(counts.astype(np.float64))
    trained = counts > 0
    layout = [f for f in data.item_layout if not f.identity]
    prior = np.zeros(n_items)
    if trained.any():
        prior[:] = target[trained].mean()
        if layout:
            prior = _feature_model(data.item_x, layout, trained, target, seed)
        prior[trained] = target[trained]
    return prior


def _feature_model(item_x, layout, trained, target, seed) -> np.ndarray:
    """Ridge least squares of ``target`` on one scalar per feature value (multi-valued fields: the
    mean over the item's values, as the field embeddings), full-batch Adam from zero."""
    with torch.random.fork_rng(), torch.enable_grad():   # seeded here, the caller's RNG untouched
        torch.manual_seed(seed)
        emb = FieldEmbedder(layout, 1)
        for table in emb.tables:
            torch.nn.init.zeros_(table.weight)
        y = torch.from_numpy(target[trained])
        intercept = torch.nn.Parameter(y.mean().clone())
        x_all = torch.from_numpy(np.asarray(item_x, dtype=np.int64))
        x = x_all[torch.from_numpy(trained)]
        opt = torch.optim.Adam(list(emb.parameters()) + [intercept], lr=LR)
        for _ in range(STEPS):
            opt.zero_grad()
            pred = emb(x).double().sum(-1) + intercept
            loss = ((pred - y) ** 2).mean() + RIDGE * sum((t.weight.double() ** 2).sum() for t in emb.tables)
            loss.backward()
            opt.step()
        with torch.no_grad():
            return (emb(x_all).double().sum(-1) + intercept).numpy().copy()




