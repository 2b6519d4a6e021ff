"""The results table's footnotes (mamo_l2l/evaluation/scoring.py): what the warm test and each
reference row are, and the claims they make checked against a run's own figures."""
import pytest

import mamo_l2l as ml
from mamo_l2l import api
from mamo_l2l.evaluation.scoring import REFERENCE_NOTES, WARM_NOTES, footnotes, results_table
from mamo_l2l.training.fit import fit


@pytest.fixture(scope="module")
def metrics(ml100k_raw_dir, tmp_path_factory):
    """An item-mean run on the fixture data under the real protocol (new items by release year)."""
    cfg = ml.load_config().override("data", dataset="fixture", data_dir=str(ml100k_raw_dir))
    bundle = ml.load_data(cfg, cache_dir=tmp_path_factory.mktemp("cache"), progress=False)
    return api.evaluate(fit(bundle, cfg, model_name="item-mean", progress=False))


def test_the_table_ends_with_one_line_per_reference_and_the_warm_test(metrics):
    table = results_table(metrics)
    assert f"warm test: {metrics['warm_eval']})" in table.splitlines()[0]
    tail = table.splitlines()[-len(REFERENCE_NOTES) - 1:]
    assert tail == ["* " + n for n in footnotes(metrics["warm_eval"])]
    assert tail[0].startswith("* warm test: heldout = the warm rows score ratings of training users that training "
                              "never saw")
    assert [line.split(":")[0] for line in tail[1:]] == [
        "* global_mean", "* item_mean", "* popularity (catalogue ranking only)",
        "* ease, item-knn (catalogue only), als (ratings and catalogue)", "* content-knn (catalogue only)",
        "* cover@10 / person@10 / popul@10"]
    assert "seen" in WARM_NOTES and footnotes("seen", catalogue=False)[1:] == list(REFERENCE_NOTES[:2])


def test_item_mean_equals_global_mean_on_new_items_as_the_note_says(metrics):
    refs = metrics["references"]
    for scen in ("item_cold", "user_item_cold"):
        assert refs["item_mean"][scen]["users"] > 0
        assert refs["item_mean"][scen]["mae"] == pytest.approx(refs["global_mean"][scen]["mae"], abs=1e-12)
        cat_i, cat_g = refs["item_mean"][scen]["catalogue"], refs["global_mean"][scen]["catalogue"]
        assert cat_i["ndcg@10"] == pytest.approx(cat_g["ndcg@10"], abs=1e-12)
        assert refs["popularity"][scen]["catalogue"]["ndcg@10"] == pytest.approx(cat_g["ndcg@10"], abs=1e-12)
