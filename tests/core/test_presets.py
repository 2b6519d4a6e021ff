"""The packaged configs (mamo_l2l/configs/; docs/models.md, "Models and presets"): each loads by
name and trains one epoch on the fixture data; mamo-paper has every later addition off, in the
config and in the trained model; fomelu is first-order MeLU with a plain outer step; compare
takes a preset's name as an entry."""
import json

import pytest
import synthetic
import yaml

import mamo_l2l as ml
from mamo_l2l.api.comparison import PRESET_KEEPS, entry_config, require_entries
from mamo_l2l.core.config import Config, load_config, packaged_configs
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.identity import FIELD

PRESETS = sorted(packaged_configs())


def test_the_presets_are_shipped():
    assert {"default", "mamo-paper", "fomelu", "melu-5", "melu-paper"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_loads_and_trains_one_epoch_on_the_fixtures(name, tmp_path, ml100k_raw_dir):
    cfg = load_config(name).override("data", dataset="fixture", data_dir=str(ml100k_raw_dir))
    cfg = cfg.override("train", epochs=1, threads=1)
    result = ml.run(cfg, tmp_path / "run", cache_dir=tmp_path / "cache")
    assert result.run.model_name == cfg.model.name and len(result.run.history) == 1
    assert all(m["users"] > 0 for m in result.metrics["scenarios"].values())


def test_mamo_paper_has_every_later_addition_off():
    paper, default = load_config("mamo-paper"), Config()
    m, t = paper.model, paper.train
    assert m.name == "mamo"
    off = {"item_bias": False, "taste_dim": 0, "identity_dropout": 0.0, "choice_prior": False, "choice_dim": 0,
           "memory_update": "paper", "memory_init": "random", "temperature": 1.0}
    assert {k: getattr(m, k) for k in off} == off
    assert paper.data.item_id_feature is False
    assert (t.pair_loss, t.resample_queries, t.pretrain_epochs, t.select_metric) == (0.0, False, 0, "mae")
    # the paper's sizes and rates (docs/algorithm.md)
    assert (m.memory_slots, m.alpha, m.beta, m.gamma, m.tau) == (3, 0.5, 0.05, 0.1, 0.01)
    assert (m.field_dim, m.embed_dim, m.hidden) == (32, 32, 64)
    assert (t.local_steps, t.local_lr, t.outer_lr, t.meta_batch_size) == (1, 0.01, 1e-3, 32)
    # each of them is on in the default (so the preset really switches it off)
    assert all(getattr(default.model, k) != v for k, v in off.items()) and default.data.item_id_feature


def test_mamo_paper_trains_without_the_additions(tmp_path, ml100k_raw_dir):
    cfg = load_config("mamo-paper").override("data", dataset="fixture", data_dir=str(ml100k_raw_dir))
    cfg = cfg.override("train", epochs=2, threads=1)
    run = ml.fit(ml.load_data(cfg, cache_dir=tmp_path), cfg, model_name="mamo")
    emb = run.model.item_embedder
    assert emb.bias is None and emb.factors is None and emb.dropped is None     # no bias, taste, dropout
    assert FIELD not in [f.name for f in run.bundle.data.item_layout]          # no item identity field
    assert not hasattr(run.model.head, "taste") and run.ranking is None        # no taste vector, no prior
    mem = run.model.memory
    assert (mem.update, mem.key_init, mem.temperature) == ("paper", "random", 1.0)
    assert all(r["memory"]["reseeded_slots"] == 0 for r in run.history)        # no competitive re-seeding


def test_fomelu_is_first_order_melu_with_a_plain_outer_step():
    f = load_config("fomelu")
    assert f.model.name == "melu"
    assert (f.train.first_order, f.train.local_steps, f.train.outer_optimizer) == (True, 1, "sgd")
    assert (f.train.local_lr, f.train.outer_lr) == (5e-6, 0.01)
    assert (f.model.identity_dropout, f.model.choice_prior) == (0.0, False)


def test_a_preset_entry_keeps_the_shared_budget_and_machine():
    shared = Config().override("train", epochs=2, threads=1, seed=4)
    paper = entry_config(shared, "melu-paper")           # melu-paper sets epochs: 30
    assert (paper.model.name, paper.train.local_steps, paper.train.outer_lr) == ("melu", 5, 5e-5)
    assert (paper.train.epochs, paper.train.threads, paper.train.seed) == (2, 1, 4)
    assert "train.epochs" in PRESET_KEEPS
    assert entry_config(shared, "tanp").model.name == "tanp"
    with pytest.raises(MamoError, match="packaged config: .*mamo-paper"):
        require_entries(["mamo-papr"])


def test_compare_takes_presets_as_entries(tmp_path, ml100k_raw_dir):
    res, results = synthetic.compare_fixture(tmp_path, ml100k_raw_dir, "mamo,mamo-paper,fomelu", "--epochs", "1",
                                             "--quiet", "--no-catalogue")
    assert res.exit_code == 0, res.output
    assert set(results["results"]) == {"mamo", "mamo-paper", "fomelu"}
    assert set(results["paired"]["models"]) == {"mamo-paper", "fomelu"} and results["paired"]["reference"] == "mamo"
    recorded = yaml.safe_load((tmp_path / "out" / "runs" / "mamo-paper-seed0" / "config.yaml").read_text())
    assert recorded["model"]["memory_update"] == "paper" and recorded["data"]["item_id_feature"] is False
    assert recorded["train"]["epochs"] == 1
    fomelu = yaml.safe_load((tmp_path / "out" / "runs" / "fomelu-seed0" / "config.yaml").read_text())
    assert fomelu["model"]["name"] == "melu" and fomelu["train"]["first_order"] is True
    # the paired users are the same whatever the data config: mamo-paper's runs have no identity field
    a = json.loads((tmp_path / "out" / "runs" / "mamo-seed0" / "metrics.json").read_text())
    b = json.loads((tmp_path / "out" / "runs" / "mamo-paper-seed0" / "metrics.json").read_text())
    assert all(a["scenarios"][s]["users"] == b["scenarios"][s]["users"] for s in a["scenarios"])
