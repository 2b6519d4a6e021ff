"""The recommender f (docs/algorithm.md, "The recommender"): user/item embedding networks and the rating network.

The model is split in two, because that split is exactly "what adapts per user":
- ``user_embedder`` / ``item_embedder`` (field embeddings): global, learned in the outer loop only.
- ``head`` (the *learner*): everything that a user's local update changes. Backends clone or
  functionalise ``head`` only; profiles p_u, p_i are computed with the global embedders, so the
  outer gradient reaches the embeddings through them.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from torch import nn

from mamo_l2l.data.batching import rating_tasks, task_ratings
from mamo_l2l.data.types import FIRST_VALUE, FieldLayout
from mamo_l2l.models.choice import ChoiceHead
from mamo_l2l.models.embedding import FieldEmbedder, profile_dim
from mamo_l2l.models.factors import als_item_factors, implicit_item_factors

#: ``memo(name, settings, compute) -> factors``: the item factors that ``compute()`` gives for the
#: training tasks the caller knows and these settings, computed once and kept (training/run.py
#: keeps them per data bundle and in the cache; docs/data.md, "The start factors' cache")
FactorMemoFn = Callable[[str, dict, Callable[[], np.ndarray]], np.ndarray]


def _memoised(memo: Optional[FactorMemoFn], name: str, settings: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
    return compute() if memo is None else memo(name, settings, compute)


def mlp(sizes: Sequence[int], act_last: bool) -> nn.Sequential:
    """Linear layers with LeakyReLU between them (and after the last one if ``act_last``)."""
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2 or act_last:
            layers.append(nn.LeakyReLU())
    return nn.Sequential(*layers)


class RatingHead(nn.Module):
    """theta_u, theta_i, W_pref and theta_r.

    forward(p_u [P_u], p_i [n, P_i]) -> predicted ratings [n].
    e_u = user_net(p_u) [d]; e_i = item_net(p_i) [n, d]; x = [e_u ; e_i] [n, 2d];
    z = pref(x) (the preference layer, 2d x 2d, no bias, no activation); rating = rating_net(z).
    With ``item_bias`` the last column of p_i is the item's bias b_i (FieldEmbedder's bias
    column): item_net reads the other columns and rating = rating_net(z) + b_i.
    With ``taste_dim`` = k > 0 (needs ``item_bias``) the k columns before the bias are the item's
    taste factors q_i, and the head has a taste vector t [k] (a fast weight like every head
    parameter: the local update fits it to the user's support set): rating += t . q_i.
    """

    def __init__(self, user_dim: int, item_dim: int, embed_dim: int, hidden: int, rating_mean: float,
                 item_bias: bool = False, taste_dim: int = 0):
        super().__init__()
        if taste_dim and not item_bias:
            raise ValueError("taste factors need the item bias column")
        self.item_bias = item_bias
        self.taste_dim = taste_dim
        self.extra = (1 if item_bias else 0) + taste_dim   # columns of p_i that item_net does not read
        self.user_net = mlp([user_dim, hidden, embed_dim], act_last=True)
        self.item_net = mlp([item_dim - self.extra, hidden, embed_dim], act_last=True)
        self.pref = nn.Linear(2 * embed_dim, 2 * embed_dim, bias=False)
        self.rating_net = mlp([2 * embed_dim, hidden, 1], act_last=False)
        with torch.no_grad():  # start predictions at the training mean rating (faster, no leakage)
            self.rating_net[-1].bias.fill_(rating_mean)
        if taste_dim:
            self.taste = nn.Parameter(torch.zeros(taste_dim))

    def forward(self, p_u: torch.Tensor, p_i: torch.Tensor) -> torch.Tensor:
        e_u = self.user_net(p_u)
        e_i = self.item_net(p_i[..., :p_i.shape[-1] - self.extra] if self.extra else p_i)
        x = torch.cat([e_u.unsqueeze(-2).expand(*e_i.shape[:-1], e_u.shape[-1]), e_i], dim=-1)
        out = self.rating_net(self.pref(x)).squeeze(-1)
        if self.taste_dim:
            out = out + p_i[..., -1 - self.taste_dim:-1] @ self.taste
        return out + p_i[..., -1] if self.item_bias else out

    def catalogue(self, params: Dict[str, torch.Tensor], p_u: torch.Tensor, p_i: torch.Tensor) -> torch.Tensor:
        """``forward`` of B users at once over the same items, for the catalogue: ``params`` the
        users' own head parameters ({name: [B, *shape]}, e.g. after their local steps), p_u [B, P_u],
        p_i [n, P_i] -> [B, n]. Two rewrites make it cheaper per (user, item) pair, with the same
        ratings up to float rounding (tested):
        - the preference layer and the rating network's first layer are both linear, so
          W_1 (W_pref [e_u ; e_i]) + b_1 = (W_1 W_pref)_u e_u + b_1 + (W_1 W_pref)_i e_i: the user's
          half once per user, each item's a d x hidden product;
        - every layer is one batched product with its bias fused (``torch.baddbmm``), no vmap.
        docs/performance.md."""
        b = p_u.shape[0]
        e_u = _batched_mlp(self.user_net, "user_net", params, p_u.unsqueeze(1)).squeeze(1)         # [B, d]
        x = p_i[:, :p_i.shape[-1] - self.extra] if self.extra else p_i
        e_i = _batched_mlp(self.item_net, "item_net", params, x.expand(b, *x.shape))             # [B, n, d]
        _, act, *rest = self.rating_net                    # its first Linear is folded in below
        a = params["rating_net.0.weight"] @ params["pref.weight"]                                 # [B, hidden, 2d]
        d = e_u.shape[-1]
        c = (a[:, :, :d] @ e_u.unsqueeze(-1)).squeeze(-1) + params["rating_net.0.bias"]           # [B, hidden]
        h = act(torch.baddbmm(c.unsqueeze(1), e_i, a[:, :, d:].transpose(1, 2)))
        out = _batched_mlp(nn.Sequential(*rest), "rating_net", params, h, offset=2).squeeze(-1)   # [B, n]
        if self.taste_dim:
            out = out + params["taste"] @ p_i[:, -1 - self.taste_dim:-1].T
        return out + p_i[:, -1] if self.item_bias else out


def _batched_mlp(net: nn.Sequential, prefix: str, params: Dict[str, torch.Tensor], h: torch.Tensor,
                 offset: int = 0) -> torch.Tensor:
    """``net`` (Linear layers and activations) on h [B, n, in] with each user's own Linear weights
    params[f"{prefix}.{offset + j}.weight"] [B, out, in] (and bias): one baddbmm per layer."""
    for j, layer in enumerate(net):
        if isinstance(layer, nn.Linear):
            name = f"{prefix}.{offset + j}"
            h = torch.baddbmm(params[f"{name}.bias"].unsqueeze(1), h, params[f"{name}.weight"].transpose(1, 2))
        else:
            h = layer(h)
    return h


class Recommender(nn.Module):
    """Field embedders + an adaptable head. Subclasses may add memories (buffers).

    ``predict(learner, user_x [S_u], item_x [n, S_i]) -> [n]`` is the one prediction function that
    every backend and the evaluation use: ``learner`` is the head itself, a clone of it, a patched
    functional copy, or any callable (p_u, p_i) -> ratings.
    """

    def __init__(self, user_layout: Sequence[FieldLayout], item_layout: Sequence[FieldLayout],
                 field_dim: int, head: nn.Module, item_bias_field: Optional[str] = None, taste_dim: int = 0,
                 choice: Optional[ChoiceHead] = None):
        super().__init__()
        self.user_embedder = FieldEmbedder(user_layout, field_dim)
        self.item_embedder = FieldEmbedder(item_layout, field_dim, bias_field=item_bias_field, factors=taste_dim)
        self.head = head
        self.choice = choice   # the choice head (models/choice.py), or None

    def begin_epoch(self, identity_dropout: float, seed: int, epoch: int) -> None:
        """Called by ``train.fit`` before each training epoch: draws the epoch's identity dropout
        (``model.identity_dropout``; FieldEmbedder.drop_identities)."""
        self.item_embedder.drop_identities(identity_dropout, seed, epoch)
        if self.choice is not None:   # the same draw (a function of the seed, the epoch and the vocabulary)
            self.choice.embedder.drop_identities(identity_dropout, seed, epoch)

    def end_training(self) -> None:
        """Called by ``train.fit`` after training: clears the last epoch's identity dropout, so the
        trained model reads every identity even in training mode (e.g. a recommender's cached item
        profiles)."""
        self.item_embedder.drop_identities(0.0, 0, 0)
        if self.choice is not None:
            self.choice.embedder.drop_identities(0.0, 0, 0)

    def init_item_bias(self, items: np.ndarray, ratings: np.ndarray, item_x: np.ndarray, shrinkage: float) -> None:
        """Start the item bias at each training item's mean rating shrunk toward the global mean,
        as a deviation from it (docs/algorithm.md, "The recommender"):
        b_i = (sum_i + k * mu) / (n_i + k) - mu = (sum_i - n_i * mu) / (n_i + k), k = ``shrinkage``,
        mu the mean of ``ratings``; ``items``/``ratings`` are the training tasks' ratings and
        ``item_x`` the item feature rows (the bias row of item j is its identity value). Items
        without a training rating keep 0 (they have the UNKNOWN identity). No-op without a bias."""
        emb = self.item_embedder
        if emb.bias is None or len(ratings) == 0:
            return
        n_items = item_x.shape[0]
        counts = np.bincount(items, minlength=n_items).astype(np.float64)
        sums = np.bincount(items, weights=ratings, minlength=n_items)
        rows, seen = identity_rows(counts, item_x, emb.bias_column)   # UNKNOWN (no identity) stays 0
        dev = (sums[seen] - counts[seen] * float(np.mean(ratings))) / (counts[seen] + shrinkage)
        emb.set_bias(torch.from_numpy(rows[seen]), torch.from_numpy(dev))

    def init_item_factors(self, tasks, item_x: np.ndarray, scale: float, seed: int,
                          memo: Optional[FactorMemoFn] = None) -> None:
        """Start the item taste factors at ``scale`` times the item factors of ALS with biases on
        the training tasks' ratings (models/factors.py; docs/algorithm.md, "The recommender").
        Items without a training rating keep 0, as UNKNOWN does. No-op without taste factors.
        ``memo``: see ``FactorMemoFn`` (the factors of the same tasks and settings, kept)."""
        emb = self.item_embedder
        if emb.factors is None or not tasks:
            return
        items, ratings = task_ratings(tasks)
        n_items = item_x.shape[0]
        k = emb.factors.embedding_dim
        q = _memoised(memo, "als_item_factors", {"k": k, "seed": seed, "n_items": n_items},
                      lambda: als_item_factors(rating_tasks(tasks), items, ratings, len(tasks), n_items, k, seed))
        rows, seen = identity_rows(np.bincount(items, minlength=n_items), item_x, emb.bias_column)
        emb.set_factors(torch.from_numpy(rows[seen]), torch.from_numpy(scale * q[seen]))

    def init_choice(self, tasks, item_x: np.ndarray, seed: int, factors: bool = True,
                    memo: Optional[FactorMemoFn] = None) -> None:
        """Start the choice head (models/choice.py): its catalogue (the training items' rows) and,
        with ``factors``, its identity vectors at the item factors of implicit ALS on who rated
        what in the training tasks (models/factors.py). No-op without a choice head. ``memo``:
        see ``FactorMemoFn``."""
        if self.choice is None or not tasks:
            return
        items, _ = task_ratings(tasks)
        n_items = item_x.shape[0]
        counts = np.bincount(items, minlength=n_items)
        self.choice.set_catalogue(np.asarray(item_x)[counts > 0])
        if not factors:
            return
        c = self.choice
        q = _memoised(memo, "implicit_item_factors",
                      {"k": c.dim, "alpha": c.alpha, "penalty": c.penalty, "seed": seed, "n_items": n_items},
                      lambda: implicit_item_factors(rating_tasks(tasks), items, len(tasks), n_items, c.dim,
                                                    c.alpha, c.penalty, seed))
        rows, seen = identity_rows(counts, item_x, self.choice.identity.start)
        self.choice.set_identity_factors(torch.from_numpy(rows[seen]), torch.from_numpy(q[seen]))

    def profiles(self, user_x: torch.Tensor, item_x: torch.Tensor):
        return self.user_embedder(user_x), self.item_embedder(item_x)

    def predict(self, learner: Callable, user_x: torch.Tensor, item_x: torch.Tensor) -> torch.Tensor:
        p_u, p_i = self.profiles(user_x, item_x)
        return learner(p_u, p_i)

    def forward(self, user_x: torch.Tensor, item_x: torch.Tensor) -> torch.Tensor:
        return self.predict(self.head, user_x, item_x)


def identity_rows(counts: np.ndarray, item_x: np.ndarray, column: int):
    """(every item's identity value in ``column``, the items with a training rating (``counts``
    per item > 0) and a real identity, i.e. not UNKNOWN): the rows an item-level start fills."""
    rows = np.asarray(item_x)[:, column].astype(np.int64)
    return rows, np.flatnonzero((counts > 0) & (rows >= FIRST_VALUE))


def build_recommender(user_layout, item_layout, field_dim: int, embed_dim: int, hidden: int,
                      rating_mean: float, item_bias_field: Optional[str] = None, taste_dim: int = 0,
                      choice: Optional[ChoiceHead] = None) -> Recommender:
    """The recommender; ``item_bias_field`` (the item identity field's name, or None) adds the item
    bias b_i, and with it ``taste_dim`` > 0 the item taste factors and the head's taste vector
    (docs/algorithm.md); ``choice`` the choice head."""
    taste_dim = taste_dim if item_bias_field else 0
    user_dim = profile_dim(user_layout, field_dim)
    item_dim = profile_dim(item_layout, field_dim) + (1 if item_bias_field else 0) + taste_dim
    head = RatingHead(user_dim, item_dim, embed_dim, hidden, rating_mean, item_bias=bool(item_bias_field),
                      taste_dim=taste_dim)
    return Recommender(user_layout, item_layout, field_dim, head, item_bias_field=item_bias_field,
                       taste_dim=taste_dim, choice=choice)
