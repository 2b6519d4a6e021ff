"""Run tracking (mamo_l2l/training/tracking.py): history.csv in every run folder, one row per
epoch, without any extra; TensorBoard event files in train.log_dir when tensorboard is there."""
import csv
import importlib.util
import sys

import pytest
import synthetic

from mamo_l2l.core.errors import MamoError
from mamo_l2l.training.fit import fit
from mamo_l2l.training.tracking import TENSORBOARD_MISSING, flat_record, require_tensorboard, tag_of

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


def _rows(folder):
    with open(folder / "history.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_every_run_folder_gets_one_row_per_epoch(tmp_path):
    cfg = synthetic.small_config(epochs=3, patience=10)
    run = fit(synthetic.bundle(cfg), cfg, model_name="mamo", out_dir=tmp_path / "run", progress=False)
    rows = _rows(tmp_path / "run")
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3] == [h["epoch"] for h in run.history]
    header = list(rows[0])
    assert header[:4] == ["epoch", "train_loss", "valid_mae", "valid_rmse"]
    assert header[-2:] == ["seconds", "tasks_per_s"]
    for row, record in zip(rows, run.history):
        assert float(row["train_loss"]) == pytest.approx(record["train_loss"])
        assert float(row["valid_mae"]) == pytest.approx(record["valid_mae"])
        assert float(row["seconds"]) == pytest.approx(record["seconds"])
        memory = record["memory"]
        assert float(row["memory.attention_entropy_mean"]) == pytest.approx(memory["attention_entropy_mean"])
        assert float(row["memory.slot_distance_min_ratio.profile"]) == pytest.approx(
            memory["slot_distance_min_ratio"]["profile"])
        assert int(float(row["memory.top_slot_counts.0"])) == memory["top_slot_counts"][0]


def test_a_resumed_run_keeps_every_epoch_and_a_model_without_epochs_gets_the_header(tmp_path):
    cfg = synthetic.small_config(epochs=3, patience=10)
    data = synthetic.bundle(cfg)
    fit(data, cfg, model_name="maml", out_dir=tmp_path / "r", progress=False, stop_after_epoch=2)
    assert len(_rows(tmp_path / "r")) == 2
    fit(data, cfg, model_name="maml", out_dir=tmp_path / "r", resume=True, progress=False)
    assert [int(r["epoch"]) for r in _rows(tmp_path / "r")] == [1, 2, 3]
    fit(data, cfg, model_name="item-mean", out_dir=tmp_path / "m", progress=False)
    text = (tmp_path / "m" / "history.csv").read_text()
    assert text.splitlines() == ["epoch,train_loss,seconds,tasks_per_s"]


def test_flat_record_and_tags():
    record = {"epoch": 2, "train_loss": 0.5, "valid_mae": 0.8, "seconds": 1.5,
              "memory": {"slot_distance_min_ratio": {"profile": 0.3}, "top_slot_counts": [4, 0], "x": None}}
    flat = flat_record(record)
    assert flat == {"epoch": 2, "train_loss": 0.5, "valid_mae": 0.8, "seconds": 1.5,
                    "memory.slot_distance_min_ratio.profile": 0.3, "memory.top_slot_counts.0": 4,
                    "memory.top_slot_counts.1": 0}
    assert [tag_of(c) for c in ("train_loss", "valid_mae", "seconds", "memory.slot_distance_min_ratio.profile")] \
        == ["train/loss", "valid/mae", "time/seconds", "memory/slot_distance_min_ratio/profile"]


def test_missing_tensorboard_is_one_clear_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)     # as if tensorboard were not installed
    with pytest.raises(MamoError) as e:
        require_tensorboard()
    assert str(e.value) == TENSORBOARD_MISSING and "pip install tensorboard" in str(e.value)
    cfg = synthetic.small_config(epochs=1, log_dir=str(tmp_path / "tb"))
    with pytest.raises(MamoError, match="needs the tensorboard package"):
        fit(synthetic.bundle(cfg), cfg, model_name="maml", out_dir=tmp_path / "r", progress=False)


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="the optional tensorboard package is not installed "
                    "(pip install tensorboard, or the tensorboard extra)")
def test_log_dir_writes_tensorboard_event_files_with_the_epoch_figures(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    cfg = synthetic.small_config(epochs=2, patience=10, log_dir=str(tmp_path / "tb"))
    run = fit(synthetic.bundle(cfg), cfg, model_name="mamo", out_dir=tmp_path / "run", progress=False)
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "valid/mae", "valid/ndcg@3", "memory/attention_entropy_mean",
            "memory/slot_distance_min_ratio/profile", "time/seconds"} <= tags
    loss = events.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2]
    assert [e.value for e in loss] == pytest.approx([h["train_loss"] for h in run.history], rel=1e-6)
