"""`mamo-l2l data synth` (mamo_l2l/data/synth.py, docs/distributed.md): MovieLens-shaped data in
RecBole atomic format that the atomic reader and the cold-start protocol take as they are."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from click.testing import CliRunner

from mamo_l2l.cli.main import app
from mamo_l2l.core.config import Config
from mamo_l2l.data.prepare import prepare
from mamo_l2l.data.readers import read_folder
from mamo_l2l.data.synth import write_synthetic


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_synth_is_movielens_shaped_seeded_and_cold_start_structured(tmp_path):
    s = write_synthetic(tmp_path / "a", scale=0.05, seed=3, block_users=100)   # 302 users in 4 blocks
    assert s.users == 302 and s.items == round(3706 * 0.05 ** 0.5)
    assert 100 * s.users < s.ratings < 230 * s.users          # about 165 a user, as ML-1M
    assert 0.05 < s.new_items / s.items < 0.15 and 0.1 < s.late_users / s.users < 0.3
    write_synthetic(tmp_path / "b", scale=0.05, seed=3, block_users=100)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")          # same arguments, same bytes
    write_synthetic(tmp_path / "c", scale=0.05, seed=4, block_users=100)
    assert _digests(tmp_path / "a") != _digests(tmp_path / "c")

    raw = read_folder(tmp_path / "a", format="atomic")
    assert len(raw.ratings) == s.ratings and not raw.duplicates_dropped
    assert {f.name for f in raw.user_fields} == {"age", "gender", "occupation", "zip"}
    assert {f.name for f in raw.item_fields} == {"release_year", "genres"}
    assert raw.rating_range == (1.0, 5.0) and set(raw.ratings["rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.2 < raw.ratings["rating"].mean() < 3.9
    # a new item (released after the cutoff year) is only rated after its release
    inter = pd.read_csv(tmp_path / "a" / "synth.inter", sep="\t")
    items = pd.read_csv(tmp_path / "a" / "synth.item", sep="\t")
    year = dict(zip(items["item_id:token"], items["release_year:token"]))
    new = inter["item_id:token"].map(year) > 1998
    assert new.any() and (inter.loc[new, "timestamp:float"] > 946_684_800 + 240 * 86_400).all()
    # the profile carries signal: mean rating differs by age group more than noise would give
    users = pd.read_csv(tmp_path / "a" / "synth.user", sep="\t")
    age = inter["user_id:token"].map(dict(zip(users["user_id:token"], users["age:token"])))
    by_age = inter.groupby(age)["rating:float"].mean()
    assert np.ptp(by_age.to_numpy()) > 0.05


def test_synth_cli_and_training_data(tmp_path):
    out = tmp_path / "synth"
    res = CliRunner().invoke(app, ["data", "synth", "--scale", "0.03", "--out", str(out), "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "--format atomic" in res.output and (out / "synth.inter").is_file()
    cfg = Config().override("data", dataset="synth", data_dir=str(out), format="atomic")
    data, splits, _ = prepare(cfg.data, 0, cache_dir=tmp_path / "cache", progress=False)
    counts = splits.counts["scenarios"]
    assert splits.train and all(counts[s]["users"] > 0 for s in ("warm", "user_cold", "item_cold"))
    res = CliRunner().invoke(app, ["data", "synth", "--scale", "0", "--out", str(tmp_path / "x")])
    assert res.exit_code == 1 and "--scale" in res.output
