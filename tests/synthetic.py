"""Small synthetic encoded data sets and tasks for model/backend tests (no files needed)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from click.testing import CliRunner

from mamo_l2l.cli.main import app
from mamo_l2l.data.types import (
    SCENARIOS,
    EncodedDataset,
    Field,
    FieldLayout,
    RawDataset,
    Task,
)

USER_LAYOUT = (FieldLayout("gender", 0, 1, 5, False), FieldLayout("age", 1, 2, 6, False))
ITEM_LAYOUT = (FieldLayout("year", 0, 1, 7, False), FieldLayout("genres", 1, 4, 8, True))


def encoded(n_users: int = 12, n_items: int = 40, seed: int = 0) -> EncodedDataset:
    rng = np.random.default_rng(seed)
    user_x = np.stack([rng.integers(1, 5, n_users), rng.integers(1, 6, n_users)], 1).astype(np.int64)
    genres = rng.integers(0, 8, (n_items, 3))
    genres[:, 0] = np.maximum(genres[:, 0], 1)      # at least one genre (slot 0 never PAD)
    item_x = np.concatenate([rng.integers(1, 7, (n_items, 1)), genres], 1).astype(np.int64)
    empty_i = np.zeros(0, np.int64)
    return EncodedDataset("synthetic", np.arange(n_users).astype(str), np.arange(n_items).astype(str),
                          user_x, item_x, USER_LAYOUT, ITEM_LAYOUT, empty_i, empty_i,
                          np.zeros(0, np.float32), np.zeros(0), np.full(n_items, np.nan), (1.0, 5.0),
                          fingerprint="synthetic")


def tasks(data: EncodedDataset, n: int = 6, seed: int = 1, n_query: int = 5):
    """n tasks of different support sizes (so padding is exercised)."""
    rng = np.random.default_rng(seed)
    n_items = len(data.item_ids)
    out = []
    for k in range(n):
        items = rng.choice(n_items, 6 + 2 * k + n_query, replace=False)
        ratings = rng.integers(1, 6, items.size).astype(np.float32)
        out.append(Task(int(k % len(data.user_ids)), items[n_query:], ratings[n_query:], items[:n_query],
                        ratings[:n_query]))
    return out


def with_identity():
    """(data with an item identity field over the tasks' items, the tasks): for the item bias and
    the taste factors, which live on the identity."""
    import types

    from mamo_l2l.data.identity import add_item_identity
    data = encoded()
    train = tasks(data)
    return add_item_identity(data, types.SimpleNamespace(train=train)), train


def build_with_identity(model_name="mamo", data=None, **model_cfg):
    """(model, algorithm) of ``model_name`` on ``with_identity()`` data (or ``data``), seeded."""
    from mamo_l2l.algorithms import build_model
    from mamo_l2l.core.config import ModelConfig
    data = data if data is not None else with_identity()[0]
    torch.manual_seed(0)
    return build_model(model_name, ModelConfig(**model_cfg), data, 3.0)


def grads(model, loss):
    """d loss / d p for every parameter of ``model``, in ``model.parameters()`` order (zeros where
    the loss does not depend on it, and for a frozen one such as the choice head's fixed identity
    vectors): what the backend-agreement tests compare."""
    params = list(model.parameters())
    free = [p for p in params if p.requires_grad]
    got = dict(zip(map(id, free), torch.autograd.grad(loss, free, allow_unused=True)))
    return [torch.zeros_like(p) if got.get(id(p)) is None else got[id(p)] for p in params]


class _NoEncoders:
    def to_dict(self):
        return {"synthetic": True}


def bundle(config=None, n_train: int = 10, n_valid: int = 4):
    """A DataBundle over synthetic tasks (train, valid and one small set per test scenario)."""
    from mamo_l2l.core.config import Config
    from mamo_l2l.data.types import SCENARIOS, Splits
    from mamo_l2l.training.run import DataBundle
    data = encoded()
    train = tasks(data, n=n_train, seed=11)
    valid = tasks(data, n=n_valid, seed=12)
    test = {s: tasks(data, n=4, seed=20 + k) for k, s in enumerate(SCENARIOS)}
    splits = Splits(train, valid, test, None, {"dataset": "synthetic"})
    return DataBundle(data, splits, _NoEncoders(), config or Config())


def small_config(**train):
    """A Config with a small network and short training; keyword args set train.* keys."""
    from mamo_l2l.core.config import Config
    cfg = Config()
    cfg.train.epochs = 3
    cfg.train.meta_batch_size = 4
    cfg.train.batch_size = 32
    cfg.model.hidden = 16
    cfg.model.embed_dim = 8
    cfg.model.field_dim = 8
    for k, v in train.items():
        setattr(cfg.train, k, v)
    return cfg.validate()


class Scalar(torch.nn.Module):
    """f(p_u, x) = w * x: one parameter, so the meta-gradient can be done on paper."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(float(w)))

    def forward(self, p_u, x):
        return self.w * x


def synthetic_raw(n_users=160, n_items=300, seed=7, name="synth") -> RawDataset:
    """Users rating 3..300 distinct items (so some fall under min_ratings and some over
    max_ratings in a scenario); item years 1985..2000, 10 items without a year."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        k = int(rng.integers(3, 301)) if u % 4 else int(rng.integers(3, 40))
        k = min(k, n_items)
        for it in rng.choice(n_items, size=k, replace=False):
            rows.append((f"{u + 1}", f"m{it}", float(rng.integers(1, 6)), float(rng.integers(0, 10 ** 6))))
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    users = pd.DataFrame({"gender": rng.choice(["F", "M"], n_users)},
                         index=pd.Index([f"{u + 1}" for u in range(n_users)], name="user_id"))
    years = rng.integers(1985, 2001, n_items).astype(float)
    years[:10] = np.nan
    items = pd.DataFrame({"genre": [tuple(rng.choice(["a", "b", "c"], int(rng.integers(1, 3)), replace=False))
                                    for _ in range(n_items)], "year": years},
                         index=pd.Index([f"m{i}" for i in range(n_items)], name="item_id"))
    return RawDataset(name, ratings, users, items, (Field("gender"),), (Field("genre", multi=True),),
                      (1.0, 5.0), {"synthetic.inter": "0" * 64})


# ------------------------------------------------------------------ determinism
def flat(s):
    out = []
    for tasks in [s.train, s.valid] + [s.test[k] for k in SCENARIOS]:
        for t in tasks:
            out += [np.int64(t.user).tobytes(), t.support_items.tobytes(), t.support_ratings.tobytes(),
                    t.query_items.tobytes(), t.query_ratings.tobytes()]
    return out


def write_atomic(raw, folder: Path) -> Path:
    """Write a synthetic RawDataset as RecBole atomic files named ``synth.*``."""
    folder.mkdir(parents=True, exist_ok=True)
    r = raw.ratings
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    lines += [f"{u}\t{i}\t{x:g}\t{t:.0f}" for u, i, x, t in zip(r.user_id, r.item_id, r.rating, r.timestamp)]
    (folder / "synth.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["user_id:token\tgender:token"] + [f"{u}\t{g}" for u, g in raw.users["gender"].items()]
    (folder / "synth.user").write_text("\n".join(lines) + "\n", encoding="utf-8")
    lines = ["item_id:token\tgenre:token_seq\trelease_year:token"]
    lines += [f"{i}\t{' '.join(g)}\t{'' if np.isnan(y) else int(y)}"
              for i, g, y in zip(raw.items.index, raw.items["genre"], raw.items["year"])]
    (folder / "synth.item").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def compare_fixture(tmp_path: Path, data_dir, models: str, *options: str):
    """``mamo-l2l compare`` on the fixture data in ``data_dir``, one seed, into ``tmp_path/out``:
    the CLI result and the results.json content (None when the command failed)."""
    args = ["compare", "--dataset", "fixture", "--data-dir", str(data_dir), "--models", models, "--seeds", "1",
            "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"), *options]
    res = CliRunner().invoke(app, args)
    results_file = tmp_path / "out" / "results.json"
    return res, (json.loads(results_file.read_text()) if res.exit_code == 0 else None)
