"""The references' figures kept on disk (mamo_l2l/api/reference_cache.py, docs/data.md)."""
import copy
import dataclasses
import json
import logging

import pytest
import synthetic

import mamo_l2l.api.evaluating as evaluating
from mamo_l2l import api
from mamo_l2l.api.reference_cache import entry_paths, read_references, reference_key
from mamo_l2l.evaluation.topn_references import TOPN_REFERENCES
from mamo_l2l.training.fit import fit
from mamo_l2l.training.run import DataBundle


@pytest.fixture(scope="module")
def trained():
    cfg = synthetic.small_config(epochs=1)
    return fit(synthetic.bundle(cfg), cfg, model_name="mamo", progress=False)


def _on_disk(run, cache_dir):
    """The run, evaluated as a later process would: a bundle of the same data with nothing shared."""
    bundle = dataclasses.replace(run.bundle, derived={}, cache_dir=cache_dir)
    return dataclasses.replace(run, bundle=bundle)


def _without_seconds(choices):
    return {k: v for k, v in choices.items() if k != "seconds"}


def _text(figures):
    """JSON text (NaN, a metric of a scenario without relevant items, equals itself there)."""
    return json.dumps(figures, sort_keys=True)


def test_a_later_process_reads_the_references_instead_of_fitting_them(trained, tmp_path, monkeypatch):
    first = api.evaluate(_on_disk(trained, tmp_path))
    assert first["reference_choices"]["seconds"]["fit_and_choose"] > 0
    assert len(list((tmp_path / "references").glob("*.json"))) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("the references were fitted again")

    monkeypatch.setattr(evaluating, "fit_references", refuse)
    second = api.evaluate(_on_disk(trained, tmp_path))
    seconds = second["reference_choices"]["seconds"]
    assert seconds["cached"] is True and seconds["fit_and_choose"] == 0.0
    assert _text(_without_seconds(second["reference_choices"])) == _text(_without_seconds(first["reference_choices"]))
    assert _text(second["references"]) == _text(first["references"])
    for name in TOPN_REFERENCES:
        assert name in second["references"]
    assert _text(second["scenarios"]) == _text(first["scenarios"])


def test_the_key_follows_the_data_the_split_and_the_metric_setting(trained):
    bundle = trained.bundle
    base = reference_key(bundle, 4.0, ("warm", "user_cold"))
    assert reference_key(bundle, 4.0, ("warm", "user_cold")) == base
    assert reference_key(bundle, 3.0, ("warm", "user_cold")) != base
    assert reference_key(bundle, 4.0, ("warm",)) != base
    other_data = dataclasses.replace(bundle, data=dataclasses.replace(bundle.data, fingerprint="another"))
    assert reference_key(other_data, 4.0, ("warm", "user_cold")) != base
    other_seed = copy.deepcopy(bundle.config)
    other_seed.train.seed = bundle.config.train.seed + 1
    assert reference_key(DataBundle(bundle.data, bundle.splits, bundle.encoders, other_seed), 4.0,
                         ("warm", "user_cold")) != base


def test_a_damaged_entry_is_reported_and_fitted_again(trained, tmp_path, caplog):
    first = api.evaluate(_on_disk(trained, tmp_path))
    (json_path,) = (tmp_path / "references").glob("*.json")
    json_path.write_text(json_path.read_text()[:100])
    with caplog.at_level(logging.WARNING, logger="mamo_l2l"):
        again = api.evaluate(_on_disk(trained, tmp_path))
    assert "cannot be read" in caplog.text
    assert again["reference_choices"]["seconds"]["fit_and_choose"] > 0
    assert _text(again["references"]) == _text(first["references"])
    key = json.loads(json_path.read_text())["key"]               # written whole again
    assert read_references(tmp_path, key) is not None and entry_paths(tmp_path, key)[0] == json_path


def test_an_unwritable_cache_is_reported_and_the_evaluation_goes_on(trained, tmp_path, caplog):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "references").write_text("a file where the folder should be")
    with caplog.at_level(logging.WARNING, logger="mamo_l2l"):
        m = api.evaluate(_on_disk(trained, blocked))
    assert "could not keep the references" in caplog.text
    assert "ease" in m["references"]


def test_a_bundle_without_a_cache_folder_writes_nothing(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("MAMO_L2L_CACHE", str(tmp_path))
    api.evaluate(_on_disk(trained, None))
    assert not (tmp_path / "references").exists()
