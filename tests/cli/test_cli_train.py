"""`mamo-l2l train` / `evaluate` end to end on a tiny fixture, through click."""
import json

import pytest
import yaml
from click.testing import CliRunner

from mamo_l2l.cli.main import app

SCEN = ("warm", "user_cold", "item_cold", "user_item_cold")
METRIC_KEYS = {"mae", "rmse", "ndcg@1", "ndcg@3", "ndcg@5", "users", "ratings"}


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump({"model": {"field_dim": 8, "embed_dim": 8, "hidden": 16},
                                    "train": {"meta_batch_size": 8}}))
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ml100k_raw_dir, small_config):
    out = tmp_path_factory.mktemp("run") / "r"
    cache = tmp_path_factory.mktemp("cache")
    res = CliRunner().invoke(app, ["train", "--dataset", "fixture", "--data-dir", str(ml100k_raw_dir),
                                   "--config", small_config, "--epochs", "2", "--local-steps", "2",
                                   "--seed", "3", "--out", str(out), "--cache-dir", str(cache), "--quiet"])
    assert res.exit_code == 0, res.output
    return out, cache, res.output


def test_train_writes_metrics_table_and_checkpoints(trained):
    out, _, output = trained
    for name in ("best.pt", "last.pt", "metrics.json", "results.txt", "config.yaml"):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert (m["model"], m["dataset"], m["backend"], m["seed"]) == ("mamo", "fixture", "func", 3)
    assert set(m["scenarios"]) == set(SCEN)
    for scen in SCEN:
        assert set(m["scenarios"][scen]) >= METRIC_KEYS
        for ref in ("global_mean", "item_mean"):
            assert set(m["references"][ref][scen]) >= METRIC_KEYS
        assert m["scenarios"][scen]["users"] == m["counts"]["scenarios"][scen]["users"]
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["local_steps"] == 2 and cfg["model"]["hidden"] == 16
    assert "user_item_cold" in output and "item_mean" in output and "best epoch" in output


def test_evaluate_reproduces_the_training_metrics(trained, tmp_path):
    out, cache, _ = trained
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(out / "best.pt"), "--cache-dir", str(cache),
                                   "--scenario", "user_cold", "--json", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.output
    again = json.loads((tmp_path / "m.json").read_text())
    first = json.loads((out / "metrics.json").read_text())
    assert list(again["scenarios"]) == ["user_cold"]
    assert again["scenarios"]["user_cold"] == first["scenarios"]["user_cold"]
    # progress on stderr: the catalogue of the model, the references' fit and each reference's ranking
    assert "catalogue user_cold:" in res.output and "references fitted and chosen in" in res.output
    assert "catalogue ease:" in res.output


def test_evaluate_on_other_data_is_a_clear_error(trained, ml1m_raw_dir):
    out, cache, _ = trained
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(out / "best.pt"), "--cache-dir", str(cache),
                                   "--data-dir", str(ml1m_raw_dir)])
    assert res.exit_code == 1
    assert "other data" in res.output and "Traceback" not in res.output


def test_evaluate_refuses_the_resume_checkpoint(trained):
    out, cache, _ = trained
    res = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(out / "last.pt"), "--cache-dir", str(cache)])
    assert res.exit_code == 1 and "best.pt" in res.output


def test_bad_config_key_is_a_clear_error(tmp_path, ml100k_raw_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 2\n  learning_rate: 0.1\n")
    res = CliRunner().invoke(app, ["train", "--data-dir", str(ml100k_raw_dir), "--config", str(bad),
                                   "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "train.learning_rate" in res.output and "Traceback" not in res.output


def test_unknown_model_is_a_clear_error(tmp_path, ml100k_raw_dir, small_config):
    res = CliRunner().invoke(app, ["train", "--data-dir", str(ml100k_raw_dir), "--model", "nope",
                                   "--config", small_config, "--out", str(tmp_path / "o"),
                                   "--cache-dir", str(tmp_path / "c"), "--quiet"])
    assert res.exit_code == 1 and "unknown model 'nope'" in res.output


def test_train_into_another_runs_folder_is_refused_unless_force(trained, tmp_path, ml100k_raw_dir):
    out, cache, _ = trained
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "config.yaml").write_text((out / "config.yaml").read_text())   # a mamo run, seed 3
    before = (folder / "config.yaml").read_text()
    args = ["train", "--dataset", "fixture", "--data-dir", str(ml100k_raw_dir), "--model", "item-mean",
            "--seed", "3", "--out", str(folder), "--cache-dir", str(cache), "--quiet"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 1
    assert "holds another run (mamo on fixture, seed 3)" in res.output
    assert "asked for (item-mean on fixture, seed 3)" in res.output and "--force" in res.output
    assert "model.name='mamo' there, 'item-mean' asked for" in res.output
    assert (folder / "config.yaml").read_text() == before and not (folder / "metrics.json").exists()
    res = CliRunner().invoke(app, args + ["--force"])
    assert res.exit_code == 0, res.output
    assert json.loads((folder / "metrics.json").read_text())["model"] == "item-mean"
    again = CliRunner().invoke(app, args)          # the same run again: allowed (it is this run)
    assert again.exit_code == 0, again.output


def test_tensorboard_flag_without_the_package_fails_before_any_work(tmp_path, ml100k_raw_dir, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)     # as if tensorboard were not installed
    res = CliRunner().invoke(app, ["train", "--dataset", "fixture", "--data-dir", str(ml100k_raw_dir), "--model",
                                   "item-mean", "--out", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c"),
                                   "--tensorboard", str(tmp_path / "tb")])
    assert res.exit_code == 1 and "needs the tensorboard package: pip install tensorboard" in res.output
    assert not (tmp_path / "r").exists() and not (tmp_path / "c").exists()
