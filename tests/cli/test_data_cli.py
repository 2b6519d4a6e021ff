"""`mamo-l2l data info` / `data fetch` through click's CliRunner."""
import json

import pytest
from click.testing import CliRunner
from synthetic import synthetic_raw, write_atomic

from mamo_l2l.cli.main import app


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return write_atomic(synthetic_raw(), tmp_path_factory.mktemp("src"))


def run(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_info_prints_the_table_and_writes_json(synth_dir, tmp_path):
    out = tmp_path / "counts.json"
    r = run("data", "info", "--dataset", "synth", "--data-dir", str(synth_dir), "--cache-dir",
            str(tmp_path / "c"), "--seed", "4", "--json", str(out), "--quiet")
    assert r.exit_code == 0, r.output
    c = json.loads(out.read_text())
    assert set(c) == {"dataset", "seed", "item_state", "item_year_cutoff", "item_time_cutoff", "warm_eval",
                      "totals", "partition", "scenarios", "splits"}
    assert set(c["scenarios"]) == {"warm", "user_cold", "item_cold", "user_item_cold"}
    assert all(set(v) == {"users", "items", "ratings"} for v in c["scenarios"].values())
    assert set(c["splits"]) == {"train", "valid", "warm_test"}
    assert all(set(v) == {"users", "ratings"} for v in c["splits"].values())
    assert c["seed"] == 4 and c["dataset"] == "synth"
    assert sum(c["partition"].values()) == c["totals"]["ratings"] == len(synthetic_raw().ratings)
    # the table shows each scenario row with its numbers, and the cutoff year
    lines = r.output.splitlines()
    assert f"items released after {c['item_year_cutoff']:g} are new" in lines[0]
    for s, v in c["scenarios"].items():
        row = next(fl for fl in lines if fl.startswith(s + " "))
        assert row.split()[1:] == [f"{c['partition'][s]:,}", f"{v['users']:,}", f"{v['items']:,}",
                                   f"{v['ratings']:,}"]
    row = next(fl for fl in lines if fl.startswith("train "))
    assert row.split()[1:] == [f"{c['splits']['train']['users']:,}", f"{c['splits']['train']['ratings']:,}"]


def test_info_reads_protocol_and_seed_from_a_config(synth_dir, tmp_path):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"data:\n  dataset: synth\n  data_dir: {synth_dir}\n  item_year_cutoff: 1990\n"
                   "train:\n  seed: 9\n", encoding="utf-8")
    out = tmp_path / "c.json"
    r = run("data", "info", "--config", str(cfg), "--cache-dir", str(tmp_path / "c"), "--json", str(out), "--quiet")
    assert r.exit_code == 0, r.output
    c = json.loads(out.read_text())
    assert c["item_year_cutoff"] == 1990.0 and c["seed"] == 9


def test_unknown_data_set_is_one_line_error(tmp_path):
    r = CliRunner().invoke(app, ["data", "info", "--dataset", "no-such-set", "--cache-dir", str(tmp_path), "--quiet"])
    assert r.exit_code != 0
    assert "Traceback" not in r.output
    err = r.output.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no-such-set" in err[0]


def test_bad_config_key_is_one_line_error(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("data:\n  n_qery: 3\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["data", "info", "--config", str(cfg), "--quiet"])
    assert r.exit_code == 1 and "n_qery" in r.output and "Traceback" not in r.output


def test_fetch_unknown_name_fails_cleanly(tmp_path):
    r = CliRunner().invoke(app, ["data", "fetch", "no-such-set", "--cache-dir", str(tmp_path)])
    assert r.exit_code == 1 and r.output.startswith("error:") and "no-such-set" in r.output


@pytest.mark.realdata
def test_info_on_ml100k(tmp_path, ml100k_real_dir):
    out = tmp_path / "c.json"
    r = run("data", "info", "--dataset", "ml-100k", "--data-dir", str(ml100k_real_dir), "--cache-dir", str(tmp_path),
            "--json", str(out), "--quiet")
    assert r.exit_code == 0, r.output
    assert "items released after 1996 are new" in r.output
    assert "all: 943 users, 1,682 items, 100,000 ratings" in r.output
