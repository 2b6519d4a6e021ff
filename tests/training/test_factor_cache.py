"""The model's start factors kept per data bundle and in the cache (training/factor_cache.py,
docs/data.md "The start factors' cache")."""
import dataclasses
import logging
import types

import numpy as np
import pytest
import synthetic
import torch

import mamo_l2l.models.recommender as recommender
from mamo_l2l.data.identity import add_item_identity
from mamo_l2l.training.factor_cache import FactorMemo
from mamo_l2l.training.run import build_run


def _bundle(cfg, cache_dir=None):
    """The synthetic bundle with an item identity field (the taste factors and the choice head's
    identities live on it)."""
    b = synthetic.bundle(cfg)
    data = add_item_identity(b.data, types.SimpleNamespace(train=b.splits.train))
    return dataclasses.replace(b, data=data, cache_dir=cache_dir)


def _start(bundle, cfg):
    run = build_run(bundle, cfg, "mamo")
    model = run.model
    return run, model.item_embedder.factors.weight.detach().clone(), model.choice.identity_table.weight.detach().clone()


def _refuse(*args, **kwargs):
    raise AssertionError("the start factors were fitted again")


@pytest.fixture
def cfg():
    return synthetic.small_config(epochs=1)


def test_a_later_process_reads_the_start_factors_bit_for_bit(cfg, tmp_path, monkeypatch):
    first, taste, choice = _start(_bundle(cfg, tmp_path), cfg)
    assert first.timing["start_factors_fitted"] == 2 and first.timing["start_factors_kept"] == 0
    assert taste.abs().sum() > 0 and choice.abs().sum() > 0
    assert len(list((tmp_path / "factors").glob("*.npy"))) == 2
    monkeypatch.setattr(recommender, "als_item_factors", _refuse)
    monkeypatch.setattr(recommender, "implicit_item_factors", _refuse)
    later, taste2, choice2 = _start(_bundle(cfg, tmp_path), cfg)
    assert later.timing["start_factors_fitted"] == 0 and later.timing["start_factors_kept"] == 2
    assert torch.equal(taste, taste2) and torch.equal(choice, choice2)


def test_models_of_one_bundle_share_the_fits_without_a_cache_folder(cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("MAMO_L2L_CACHE", str(tmp_path))
    bundle = _bundle(cfg)
    _, taste, _ = _start(bundle, cfg)
    monkeypatch.setattr(recommender, "als_item_factors", _refuse)
    monkeypatch.setattr(recommender, "implicit_item_factors", _refuse)
    second, taste2, _ = _start(bundle, cfg)
    assert second.timing["start_factors_kept"] == 2 and torch.equal(taste, taste2)
    assert not (tmp_path / "factors").exists()


def test_the_key_follows_the_seed_the_data_and_the_settings(cfg):
    bundle = synthetic.bundle(cfg)
    memo = FactorMemo(bundle)
    base = memo.key("als_item_factors", {"k": 4, "seed": 0})
    assert memo.key("als_item_factors", {"k": 4, "seed": 0}) == base
    assert memo.key("als_item_factors", {"k": 8, "seed": 0}) != base
    assert memo.key("implicit_item_factors", {"k": 4, "seed": 0}) != base
    other = dataclasses.replace(bundle, data=dataclasses.replace(bundle.data, fingerprint="another"))
    assert FactorMemo(other).key("als_item_factors", {"k": 4, "seed": 0}) != base


def test_a_damaged_entry_is_reported_and_fitted_again(cfg, tmp_path, caplog):
    _, taste, _ = _start(_bundle(cfg, tmp_path), cfg)
    for path in (tmp_path / "factors").glob("*.npy"):
        path.write_bytes(path.read_bytes()[:40])
    with caplog.at_level(logging.WARNING, logger="mamo_l2l"):
        again, taste2, _ = _start(_bundle(cfg, tmp_path), cfg)
    assert "cannot be read" in caplog.text
    assert again.timing["start_factors_fitted"] == 2 and torch.equal(taste, taste2)
    kept = [np.load(p) for p in (tmp_path / "factors").glob("*.npy")]   # written whole again
    assert len(kept) == 2 and all(k.ndim == 2 for k in kept)
