"""Reliability and everyday friction (docs/operations.md): resume from the run's own config, one
definition of "the same run", signals, the run-folder lock, atomic writes, NaN stops, bad input
caught before work starts, quiet library output, plugins in the stock CLI, `python -m mamo_l2l`."""
from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import synthetic
import torch
import yaml
from click.testing import CliRunner

import mamo_l2l as ml
from mamo_l2l.cli.main import app
from mamo_l2l.core.config import Config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.training.checkpoint import load_checkpoint
from mamo_l2l.training.fit import fit

REPO = Path(__file__).resolve().parents[2]


def _env(extra_path=None):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    paths = [str(REPO)] + ([str(extra_path)] if extra_path else [])
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return env


def _states_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def small_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump({"model": {"field_dim": 8, "embed_dim": 8, "hidden": 16},
                                    "train": {"meta_batch_size": 8, "threads": 1}}))
    return str(path)


def _train_args(data_dir, config, out, cache, *extra, quiet=True):
    return ["train", "--dataset", "fixture", "--data-dir", str(data_dir), "--config", config, "--out", str(out),
            "--cache-dir", str(cache), *(["--quiet"] if quiet else []), *extra]


# ------------------------------------------------------------------ 1. resume, one identity
def test_resume_continues_with_the_runs_own_config(tmp_path, ml100k_raw_dir, small_yaml):
    out, cache = tmp_path / "run", tmp_path / "cache"
    res = CliRunner().invoke(app, _train_args(ml100k_raw_dir, small_yaml, out, cache, "--seed", "3", "--epochs", "1"))
    assert res.exit_code == 0, res.output
    # as README shows it: only --out and --resume (and an epoch extension, allowed and documented)
    res = CliRunner().invoke(app, ["train", "--out", str(out), "--resume", "--epochs", "2", "--cache-dir", str(cache),
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["seed"] == 3 and [h["epoch"] for h in m["history"]] == [1, 2]
    assert m["code_fingerprint"] and m["mamo_l2l_version"]


def test_resume_refuses_flags_that_change_the_result(tmp_path, ml100k_raw_dir, small_yaml):
    out, cache = tmp_path / "run", tmp_path / "cache"
    res = CliRunner().invoke(app, _train_args(ml100k_raw_dir, small_yaml, out, cache, "--epochs", "1"))
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["train", "--out", str(out), "--resume", "--seed", "4", "--local-lr", "0.5",
                                   "--cache-dir", str(cache)])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "train.seed=0 in the run, 4 given" in res.output and "train.local_lr" in res.output
    # flags that do not change the result are fine
    res = CliRunner().invoke(app, ["train", "--out", str(out), "--resume", "--device", "cpu", "--threads", "1",
                                   "--cache-dir", str(cache), "--quiet"])
    assert res.exit_code == 0, res.output


def test_one_definition_of_the_same_run():
    from mamo_l2l.training.runid import RESULT_NEUTRAL, config_differences
    a = Config().to_dict()
    b = Config().override("train", device="cuda", threads=3).override("data", data_dir="/elsewhere").to_dict()
    assert config_differences(a, b) == [] and "train.device" in RESULT_NEUTRAL
    c = Config().override("train", seed=2).to_dict()
    assert config_differences(c, a) == [("train.seed", 0, 2)]


def test_compare_retrains_when_the_model_code_changed(tmp_path, ml100k_raw_dir, caplog):
    from mamo_l2l.api.comparison import compare
    cfg = Config().override("data", dataset="fixture", data_dir=str(ml100k_raw_dir))
    cfg = cfg.override("model", field_dim=8, embed_dim=8, hidden=16).override("train", epochs=1, meta_batch_size=16)
    caplog.set_level(logging.INFO, logger="mamo_l2l")
    first = compare(cfg, ["maml"], 1, tmp_path / "res", cache_dir=tmp_path / "c", progress=False)
    assert first["runs"]["maml"]["0"]["reused"] is False
    again = compare(cfg, ["maml"], 1, tmp_path / "res", cache_dir=tmp_path / "c", progress=False)
    assert again["runs"]["maml"]["0"]["reused"] is True
    path = tmp_path / "res" / "runs" / "maml-seed0" / "metrics.json"
    m = json.loads(path.read_text())
    m["code_fingerprint"] = "0" * 16          # as if made by other model code
    path.write_text(json.dumps(m))
    caplog.clear()
    third = compare(cfg, ["maml"], 1, tmp_path / "res", cache_dir=tmp_path / "c", progress=False)
    assert third["runs"]["maml"]["0"]["reused"] is False
    assert any("model code changed" in r.getMessage() for r in caplog.records), caplog.text


# ------------------------------------------------------------------ 2. signals
def _last_epoch(path: Path) -> int:
    return int(load_checkpoint(path)["state"]["epoch"])


def test_sigterm_finishes_the_epoch_and_resume_is_bit_identical(tmp_path, ml100k_raw_dir, small_yaml):
    cache = tmp_path / "cache"
    killed = tmp_path / "killed"
    CliRunner().invoke(app, ["data", "info", "--dataset", "fixture", "--data-dir", str(ml100k_raw_dir),
                             "--cache-dir", str(cache), "--quiet"])           # warm the data cache
    log_path = tmp_path / "stderr.txt"
    with open(log_path, "wb") as err:
        child = subprocess.Popen([sys.executable, str(REPO / "cli.py"), *_train_args(
            ml100k_raw_dir, small_yaml, killed, cache, "--epochs", "200", "--patience", "1000", quiet=False)],
            cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 120
        while b"epoch   1 " not in log_path.read_bytes():
            assert child.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "no epoch line"
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        rc = child.wait(timeout=120)
    text = log_path.read_text()
    assert rc == 143, text
    assert "--resume" in text and "\r" not in text      # the resume hint; no progress-bar frames in a file
    stopped = _last_epoch(killed / "last.pt")
    assert 1 <= stopped < 200 and not (killed / "metrics.json").exists()
    target = stopped + 2
    res = CliRunner().invoke(app, ["train", "--out", str(killed), "--resume", "--epochs", str(target),
                                   "--cache-dir", str(cache), "--quiet"])
    assert res.exit_code == 0, res.output
    full = tmp_path / "full"
    res = CliRunner().invoke(app, _train_args(ml100k_raw_dir, small_yaml, full, cache, "--epochs", str(target),
                                              "--patience", "1000"))
    assert res.exit_code == 0, res.output
    _states_equal(load_checkpoint(full / "best.pt")["state_dict"], load_checkpoint(killed / "best.pt")["state_dict"])


# ------------------------------------------------------------------ 3. one writer, whole files
def test_a_second_process_on_the_same_out_is_refused(tmp_path, ml100k_raw_dir, small_yaml):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from mamo_l2l.training.runfiles import RunLock
        RunLock({str(out)!r}).acquire()
        print("locked", flush=True)
        sys.stdin.read()
        """)], cwd=REPO, env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == b"locked"
        res = CliRunner().invoke(app, _train_args(ml100k_raw_dir, small_yaml, out, tmp_path / "c", "--epochs", "1"))
        assert res.exit_code == 1 and "Traceback" not in res.output
        assert f"pid {holder.pid}" in res.output and "another mamo-l2l process" in res.output
        assert not (out / "config.yaml").exists()
    finally:
        holder.communicate(b"", timeout=30)
    res = CliRunner().invoke(app, _train_args(ml100k_raw_dir, small_yaml, out, tmp_path / "c", "--epochs", "1"))
    assert res.exit_code == 0, res.output          # released when the holder exited


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_a_clear_error_and_leaves_no_partial_file(tmp_path, monkeypatch):
    from mamo_l2l.training import checkpoint, runfiles
    monkeypatch.setattr(runfiles.os, "fsync", _full_disk)
    metrics = {"model": "m", "dataset": "d", "seed": 0, "backend": "func", "warm_eval": "heldout",
               "scenarios": {}, "references": {}}
    with pytest.raises(MamoError, match="no space left"):
        ml.write_metrics(metrics, tmp_path)
    with pytest.raises(MamoError, match="no space left") as e:
        checkpoint.save_checkpoint(tmp_path / "best.pt", {"x": 1})
    assert e.value.path == str(tmp_path / "best.pt")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ 4. NaN
def test_a_nan_loss_stops_with_the_epoch_and_batch_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    from mamo_l2l.training import fit as train
    cfg = synthetic.small_config(epochs=3, meta_batch_size=2)
    calls = {"n": 0}
    real = train.pad_tasks

    def poisoned(group, data):
        batch = real(group, data)
        calls["n"] += 1
        if calls["n"] == 5 + 2:        # epoch 2 (5 meta-batches of 2 of the 10 tasks), its 2nd meta-batch
            batch.query_y = torch.full_like(batch.query_y, float("nan"))
        return batch

    monkeypatch.setattr(train, "pad_tasks", poisoned)
    with pytest.raises(MamoError) as e:
        fit(synthetic.bundle(cfg), cfg, model_name="maml", out_dir=tmp_path)
    assert "epoch 2, meta-batch 2" in str(e.value) and "train.outer_lr" in str(e.value)
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["state"]["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


# ------------------------------------------------------------------ 5. bad input before work
@pytest.mark.parametrize("yaml_text, key", [
    ("data:\n  item_year_cutoff: nineteen\n", "data.item_year_cutoff"),
    ("data:\n  format: 3\n", "data.format"),
    ("train:\n  epochs: true\n", "train.epochs"),
    ("train:\n  outer_lr: .nan\n", "train.outer_lr"),
])
def test_config_types_are_checked_for_every_field(tmp_path, yaml_text, key):
    from mamo_l2l.core.config import load_config
    p = tmp_path / "c.yaml"
    p.write_text(yaml_text)
    with pytest.raises(MamoError, match=key.replace(".", r"\.")):
        load_config(p)


def test_override_is_checked_like_yaml():
    with pytest.raises(MamoError, match=r"train\.epochs must be int, got '3'"):
        Config().override("train", epochs="3")
    with pytest.raises(MamoError, match=r"data\.item_year_cutoff must be float"):
        Config().override("data", item_year_cutoff="nineteen")
    assert Config().override("data", item_year_cutoff=1990).data.item_year_cutoff == 1990.0


def test_the_device_is_checked_before_any_file_is_written(tmp_path, ml100k_raw_dir, small_yaml, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, _train_args(ml100k_raw_dir, small_yaml, out, tmp_path / "c", "--device", "cuda"))
    assert res.exit_code == 1 and "no CUDA device" in res.output and "Traceback" not in res.output
    assert not out.exists() and not (tmp_path / "c").exists()


# ------------------------------------------------------------------ 6. output
def test_the_library_is_quiet_when_called_from_python(tmp_path):
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, "tests")
        import synthetic
        from mamo_l2l import fit
        cfg = synthetic.small_config(epochs=2)
        fit(synthetic.bundle(cfg), cfg, model_name="maml")
        print("done")
        """)
    res = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=_env(), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "done\n" and res.stderr == ""


def test_the_cli_story_goes_to_stderr_and_results_to_stdout(tmp_path, ml100k_raw_dir, small_yaml):
    res = subprocess.run([sys.executable, "-m", "mamo_l2l", *_train_args(
        ml100k_raw_dir, small_yaml, tmp_path / "run", tmp_path / "c", "--epochs", "1", "--model", "maml",
        quiet=False)],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "epoch   1" in res.stderr and "training maml" not in res.stdout and "users" in res.stderr
    assert "epoch   1" not in res.stdout and "user_item_cold" in res.stdout and "saved" in res.stdout
    assert "\r" not in res.stderr


# ------------------------------------------------------------------ 7/8. plugins, python -m
PLUGIN = '''
from mamo_l2l.algorithms import Algorithm, register_model
from mamo_l2l.algorithms import _recommender


@register_model("tiny-plugin-model")
def build(cfg, data, rating_mean):
    model = _recommender(cfg, data, rating_mean)
    return model, Algorithm(model)
'''


def test_a_plugin_model_trains_and_evaluates_from_the_stock_cli(tmp_path, ml100k_raw_dir, small_yaml):
    (tmp_path / "my_models.py").write_text(PLUGIN)
    out = tmp_path / "run"
    train = subprocess.run([sys.executable, "-m", "mamo_l2l", *_train_args(
        ml100k_raw_dir, small_yaml, out, tmp_path / "c", "--epochs", "1", "--model", "tiny-plugin-model",
        "--plugin", "my_models")], cwd=REPO, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr
    assert load_checkpoint(out / "best.pt")["plugins"] == ["my_models"]
    # evaluate without --plugin: the run recorded it
    ev = subprocess.run([sys.executable, "-m", "mamo_l2l", "evaluate", "--checkpoint", str(out / "best.pt"),
                         "--cache-dir", str(tmp_path / "c"), "--scenario", "warm"], cwd=REPO, env=_env(tmp_path),
                        capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr
    assert "tiny-plugin-model" in ev.stdout


def test_an_unimportable_plugin_is_a_clear_error(tmp_path):
    res = CliRunner().invoke(app, ["train", "--plugin", "no_such_module_here", "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "cannot import plugin module 'no_such_module_here'" in res.output
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ 5. every reader, every file: field counts
FILES = [("ml-100k-raw", n, "\t" if n == "u.data" else "|") for n in ("u.data", "u.user", "u.item")] + \
        [("ml-1m-raw", n, "::") for n in ("ratings.dat", "users.dat", "movies.dat")] + \
        [("atomic", n, "\t") for n in ("tiny.inter", "tiny.user", "tiny.item")] + \
        [("book-crossing", n, ";") for n in ("BX-Book-Ratings.csv", "BX-Users.csv", "BX-Books.csv")]


@pytest.mark.parametrize("fmt, name, sep", FILES)
@pytest.mark.parametrize("change", ["short", "long"])
def test_every_reader_rejects_a_line_with_too_few_or_too_many_fields(tmp_path, format_dirs, fmt, name, sep, change):
    import shutil

    from mamo_l2l.data.readers import read_folder
    folder = Path(shutil.copytree(format_dirs[fmt], tmp_path / fmt))
    path = folder / name
    encoding = "utf-8" if fmt == "atomic" else "latin-1"
    lines = path.read_text(encoding=encoding).rstrip("\n").split("\n")
    parts = lines[-1].split(sep)
    bad = sep.join(parts[:-1] if change == "short" else parts + [parts[-1]])
    path.write_text("\n".join(lines + [bad]) + "\n", encoding=encoding)
    with pytest.raises(MamoError) as e:
        read_folder(folder)
    assert e.value.path == str(path) and e.value.line == len(lines) + 1, str(e.value)
    assert "fields" in e.value.reason


@pytest.mark.parametrize("side", ["user", "item"])
def test_an_atomic_folder_without_a_side_file_trains(tmp_path, atomic_dir, side):
    import shutil
    folder = Path(shutil.copytree(atomic_dir, tmp_path / "data"))
    (folder / f"tiny.{side}").unlink()
    cfg = tmp_path / "c.yaml"    # without the item identity field the item layout has no field at all
    cfg.write_text("data:\n  item_id_feature: false\n")
    res = CliRunner().invoke(app, ["train", "--dataset", "tiny", "--data-dir", str(folder), "--epochs", "1",
                                   "--config", str(cfg), "--out", str(tmp_path / "run"),
                                   "--cache-dir", str(tmp_path / "c"), "--quiet"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    scored = [v for v in m["scenarios"].values() if v["users"] > 0]   # no item years: no new items
    assert scored and all(0 < v["mae"] < 5 for v in scored)


def test_models_from_the_entry_point_group_are_found(tmp_path, monkeypatch):
    from mamo_l2l.algorithms import MODELS, require_models
    from mamo_l2l.core import plugins
    (tmp_path / "ep_models.py").write_text(PLUGIN.replace("tiny-plugin-model", "entry-point-model"))
    dist = tmp_path / "ep_models-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-models\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[mamo_l2l.models]\nentry-point-model = ep_models\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "entry_points_loaded", False)
    monkeypatch.delitem(MODELS, "entry-point-model", raising=False)
    require_models("entry-point-model")
    assert "entry-point-model" in MODELS
    MODELS.pop("entry-point-model")
