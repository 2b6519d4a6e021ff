"""`mamo-l2l compare`: runs per model x seed, mean/std tables checked against the per-run
metrics.json files, best marks, reuse on a second call, the chart's optional dependency."""
import csv
import json
import math
import sys

import pytest
import synthetic
import yaml
from click.testing import CliRunner

from mamo_l2l.api.report import PLOT_HINT
from mamo_l2l.cli.main import app
from mamo_l2l.evaluation.topn_references import TOPN_REFERENCES

MODELS = ("melu", "supervised")


@pytest.fixture(scope="module")
def compared(tmp_path_factory, ml100k_raw_dir):
    base = tmp_path_factory.mktemp("compare")
    cfg = base / "small.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"field_dim": 8, "embed_dim": 8, "hidden": 16},
                                   "train": {"meta_batch_size": 8, "batch_size": 64}}))
    args = ["compare", "--dataset", "fixture", "--data-dir", str(ml100k_raw_dir), "--models", ",".join(MODELS),
            "--seeds", "2", "--epochs", "2", "--config", str(cfg), "--out", str(base / "out"),
            "--cache-dir", str(base / "cache"), "--quiet"]
    mp = pytest.MonkeyPatch()
    mp.setitem(sys.modules, "matplotlib", None)     # as if the optional `plot` extra were missing
    try:
        first = CliRunner().invoke(app, args)
    finally:
        mp.undo()
    assert first.exit_code == 0, first.output
    return base / "out", args, first.output


def _run_metrics(out, model, seed):
    return json.loads((out / "runs" / f"{model}-seed{seed}" / "metrics.json").read_text())


def test_writes_the_three_files_and_one_run_per_model_and_seed(compared):
    out, _, output = compared
    for name in ("results.md", "results.csv", "results.json"):
        assert (out / name).is_file(), name
    for model in MODELS:
        for seed in (0, 1):
            m = _run_metrics(out, model, seed)
            assert (m["model"], m["seed"]) == (model, seed)
    assert "[run 1/4] melu seed 0" in output and "[run 4/4] supervised seed 1" in output
    assert "ETA" in output


def test_mean_and_std_match_the_runs(compared):
    out, _, _ = compared
    a = _run_metrics(out, "melu", 0)["scenarios"]["user_cold"]["mae"]
    b = _run_metrics(out, "melu", 1)["scenarios"]["user_cold"]["mae"]
    mean, std = (a + b) / 2, abs(a - b) / math.sqrt(2)      # sample std (ddof=1) of two values
    res = json.loads((out / "results.json").read_text())
    cell = res["results"]["melu"]["user_cold"]["mae"]
    assert cell["mean"] == pytest.approx(mean, abs=1e-12) and cell["std"] == pytest.approx(std, abs=1e-12)
    assert cell["values"] == [a, b]
    rows = {(r["model"], r["scenario"]): r for r in csv.DictReader(open(out / "results.csv"))}
    row = rows[("melu", "user_cold")]
    assert float(row["mae_mean"]) == pytest.approx(mean) and float(row["mae_std"]) == pytest.approx(std)
    assert f"{mean:.4f} ± {std:.4f}" in (out / "results.md").read_text()


def test_best_per_column_is_marked(compared):
    out, _, _ = compared
    res = json.loads((out / "results.json").read_text())
    for scen in res["scenarios"]:
        for metric, lower in (("mae", True), ("rmse", True), ("ndcg@3", False)):
            rows = res["models"]     # the models and the reference rows (popularity, ease, ..., als)
            means = {m: v for m in rows if (v := res["results"][m][scen][metric]["mean"]) is not None
                     and not math.isnan(v)}      # a ranking-only reference has no MAE (null)
            best = (min if lower else max)(means, key=means.get)
            assert res["results"][best][scen][metric]["best"]
            assert sum(res["results"][m][scen][metric]["best"] for m in rows) >= 1
    md = (out / "results.md").read_text()
    assert "**" in md


def test_results_name_the_command_and_the_counts(compared):
    out, args, _ = compared
    md = (out / "results.md").read_text()
    assert "mamo-l2l compare" in md and "Data counts per seed" in md
    res = json.loads((out / "results.json").read_text())
    counts = _run_metrics(out, "melu", 1)["counts"]
    assert res["counts"]["1"]["splits"] == counts["splits"]
    assert res["results"]["melu"]["warm"]["users"] == [_run_metrics(out, "melu", k)["scenarios"]["warm"]["users"]
                                                       for k in (0, 1)]
    cutoff = res["counts"]["0"]["item_year_cutoff"]
    assert float(cutoff).is_integer() and f"| 0 | {int(cutoff)} |" in md       # 1996, not 1996.0
    assert "warm test: heldout = the warm rows score ratings of training users that training never saw" in md


def test_plain_numbers():
    from mamo_l2l.api.report import plain_number
    assert [plain_number(v) for v in (1996.0, 1996.5, 7, None)] == ["1996", "1996.5", "7", "-"]


def test_missing_matplotlib_says_how_to_get_it(compared):
    out, _, output = compared
    assert "pip install matplotlib" in output and "EXTRAS=test,plot" in output
    assert PLOT_HINT.split(",")[0] in output
    assert not (out / "mae.png").exists()


def test_second_call_reuses_the_runs(compared):
    out, args, _ = compared
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/best.pt")}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("reusing") == 4
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    # the count is of trained runs, not of the table's rows (the references are rows too)
    assert "(4 of 4 runs reused)" in (out / "results.md").read_text()


def test_unknown_model_fails_before_training(tmp_path, ml100k_raw_dir):
    res = CliRunner().invoke(app, ["compare", "--data-dir", str(ml100k_raw_dir), "--models", "melu,nope",
                                   "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    assert res.exit_code == 1 and "unknown model(s) nope" in res.output
    assert not (tmp_path / "o" / "runs").exists()


def test_catalogue_metrics_are_aggregated(compared):
    out, _, _ = compared
    res = json.loads((out / "results.json").read_text())
    a = _run_metrics(out, "melu", 0)["scenarios"]["warm"]["catalogue"]["ndcg@10"]
    b = _run_metrics(out, "melu", 1)["scenarios"]["warm"]["catalogue"]["ndcg@10"]
    assert res["results"]["melu"]["warm"]["catalogue_ndcg@10"]["mean"] == pytest.approx((a + b) / 2)
    rows = {(r["model"], r["scenario"]): r for r in csv.DictReader(open(out / "results.csv"))}
    assert float(rows[("melu", "warm")]["catalogue_ndcg@10_mean"]) == pytest.approx((a + b) / 2)
    assert "Catalogue NDCG@10 per scenario" in (out / "results.md").read_text()


def test_quiet_shows_the_per_run_lines_but_no_epoch_lines(compared):
    _, _, output = compared
    assert "[run 1/4]" in output
    assert "train loss" not in output


def test_paired_comparison_matches_the_runs(compared):
    out, _, _ = compared
    results = json.loads((out / "results.json").read_text())
    paired = results["paired"]
    assert paired["reference"] == MODELS[0]
    assert set(paired["models"]) == {MODELS[1], "popularity", *TOPN_REFERENCES}   # the references are rows too
    for scen in ("warm", "user_cold"):
        for metric in ("mae", "ndcg@3"):
            diffs = [_run_metrics(out, MODELS[0], k)["scenarios"][scen][metric]
                     - _run_metrics(out, MODELS[1], k)["scenarios"][scen][metric] for k in (0, 1)]
            cell = paired["models"][MODELS[1]][scen][metric]
            mean = sum(diffs) / 2
            se = abs(diffs[0] - diffs[1]) / 2          # sample std / sqrt(2) for two values
            assert cell["mean_diff"] == pytest.approx(mean, abs=1e-12)
            assert cell["se"] == pytest.approx(se, abs=1e-12)
            assert cell["ci95"] == pytest.approx([mean - 12.706 * se, mean + 12.706 * se], abs=1e-9)
            inside = cell["ci95"][0] <= 0 <= cell["ci95"][1]
            assert (cell["verdict"] == "within noise") == inside
    md = (out / "results.md").read_text()
    assert f"## Paired comparison: {MODELS[0]} against each model" in md


def test_paired_verdicts_by_hand():
    from mamo_l2l.api.report import paired_comparison
    values = {"a": [0.70, 0.71, 0.72], "b": [0.75, 0.76, 0.77], "c": [0.69, 0.73, 0.71]}
    results = {"seeds": [0, 1, 2], "models": list(values), "scenarios": ["warm"],
               "results": {m: {"warm": {"mae": {"values": v}, "ndcg@3": {"values": [0.5, 0.6, 0.7]}}}
                           for m, v in values.items()}}
    p = paired_comparison(results, "a")
    assert p["models"]["b"]["warm"]["mae"]["verdict"] == "better"      # a is 0.05 lower every seed
    assert p["models"]["b"]["warm"]["mae"]["mean_diff"] == pytest.approx(-0.05)
    assert p["models"]["c"]["warm"]["mae"]["verdict"] == "within noise"
    assert p["models"]["b"]["warm"]["ndcg@3"]["verdict"] == "within noise"  # identical: zero spread
    results["results"]["b"]["warm"]["ndcg@3"]["values"] = [0.6, 0.7, 0.8]
    assert paired_comparison(results, "a")["models"]["b"]["warm"]["ndcg@3"]["verdict"] == "worse"


def test_no_catalogue_skips_the_catalogue_ranking(tmp_path, ml100k_raw_dir):
    res, _ = synthetic.compare_fixture(tmp_path, ml100k_raw_dir, "item-mean", "--no-catalogue", "--quiet")
    assert res.exit_code == 0, res.output
    metrics = _run_metrics(tmp_path / "out", "item-mean", 0)
    assert all("catalogue" not in s for s in metrics["scenarios"].values())
    assert "mae" in metrics["scenarios"]["warm"]


def test_one_seed_gives_no_verdict_and_a_summary_on_stdout(tmp_path, ml100k_raw_dir):
    res, results = synthetic.compare_fixture(tmp_path, ml100k_raw_dir, "item-mean,global-mean", "--no-catalogue",
                                             "-q", "-v")
    assert res.exit_code == 0, res.output
    cell = results["paired"]["models"]["global-mean"]["warm"]["mae"]
    assert cell["n"] == 1 and cell["verdict"] == "n/a (needs 2+ seeds)"
    md = (tmp_path / "out" / "results.md").read_text()
    assert "n/a (needs 2+ seeds)" in md and "± nan" not in md and "within noise |" not in md
    assert "* item-mean: the item's mean training rating" in md and "* global-mean: every rating" in md
    stdout = res.stdout
    assert "MAE, mean ± std over 1 seed(s):" in stdout and "± nan" not in stdout
    mae = results["results"]["item-mean"]["user_cold"]["mae"]["mean"]
    assert f"{mae:.4f}" in stdout and "vs global-mean:" in stdout and "n/a (needs 2+ seeds)" in stdout
    assert f"full tables: {tmp_path / 'out'}/results.md" in stdout


def test_references_become_rows_of_the_comparison():
    from mamo_l2l.api.comparison import reference_rows
    from mamo_l2l.api.report import aggregate
    cat = {"recall@10": 0.2, "ndcg@10": 0.1, "hit@10": 0.5, "coverage@10": 0.3, "personalisation@10": 0.9,
           "popularity@10": 0.4, "users": 7, "candidates": 50}

    def metrics(k):
        scen = {"mae": 0.8, "rmse": 1.0, "ndcg@1": 0.5, "ndcg@3": 0.6, "ndcg@5": 0.7, "users": 8, "ratings": 80,
                "catalogue": dict(cat, **{"recall@10": 0.1 + k})}
        return {"scenarios": {"warm": scen},
                "references": {"ease": {"warm": {"catalogue": dict(cat, **{"recall@10": 0.3 + k})}},
                               "als": {"warm": dict(scen, mae=0.7, catalogue=cat)}}}
    per_run = {"mamo": {0: metrics(0.0), 1: metrics(0.01)}}
    names = reference_rows(per_run, ["mamo"], [0, 1])
    assert names == ["ease", "als"]
    table = aggregate(per_run, ["mamo", *names], [0, 1])["results"]
    assert table["ease"]["warm"]["catalogue_recall@10"]["values"] == [0.3, 0.31]
    assert table["als"]["warm"]["mae"]["mean"] == 0.7
    assert math.isnan(table["ease"]["warm"]["mae"]["mean"])
    assert table["ease"]["warm"]["catalogue_recall@10"]["best"]


def test_a_list_of_seeds_runs_exactly_those_seeds(tmp_path, ml100k_raw_dir):
    res, results = synthetic.compare_fixture(tmp_path, ml100k_raw_dir, "item-mean", "--no-catalogue", "--quiet",
                                             "--seeds", "4,2")
    assert res.exit_code == 0, res.output
    assert results["seeds"] == [4, 2] and "over seeds 4, 2" in res.output
    assert sorted(p.name for p in (tmp_path / "out" / "runs").iterdir()) == ["item-mean-seed2", "item-mean-seed4"]
    assert _run_metrics(tmp_path / "out", "item-mean", 4)["seed"] == 4
    bad, _ = synthetic.compare_fixture(tmp_path / "bad", ml100k_raw_dir, "item-mean", "--seeds", "five")
    assert bad.exit_code != 0 and "give a number N" in bad.output


def test_the_tables_render_again_from_results_json(compared):
    """scripts/results_tables.py renders docs' tables from a results.json, where a reference's
    missing MAE is null, not NaN: the same markdown as compare's own results.md."""
    from mamo_l2l.api.report import format_markdown
    out, _, _ = compared
    res = json.loads((out / "results.json").read_text())
    assert res["results"]["ease"]["warm"]["mae"]["mean"] is None          # the case that must render
    md = format_markdown(res)
    assert "| ease | n/a |" in md
    assert md.strip() in (out / "results.md").read_text()


def test_reevaluate_scores_runs_of_other_code_again_without_retraining(tmp_path, ml100k_raw_dir):
    cfg = tmp_path / "small.yaml"
    cfg.write_text(yaml.safe_dump({"model": {"field_dim": 8, "embed_dim": 8, "hidden": 16},
                                   "train": {"meta_batch_size": 8, "batch_size": 64}}))
    args = ["compare", "--dataset", "fixture", "--data-dir", str(ml100k_raw_dir), "--models", "melu",
            "--seeds", "1", "--epochs", "1", "--config", str(cfg), "--out", str(tmp_path / "out"),
            "--cache-dir", str(tmp_path / "cache"), "--quiet"]
    first = CliRunner().invoke(app, [*args, "--no-catalogue"])
    assert first.exit_code == 0, first.output
    folder = tmp_path / "out" / "runs" / "melu-seed0"
    before = json.loads((folder / "metrics.json").read_text())
    assert "catalogue" not in before["scenarios"]["warm"]
    made_by = before["code_fingerprint"]
    before["code_fingerprint"] = "0" * 16            # as if other code had made the run
    (folder / "metrics.json").write_text(json.dumps(before))
    stamp = (folder / "best.pt").stat().st_mtime_ns
    again = CliRunner().invoke(app, [*args, "--reevaluate"])
    assert again.exit_code == 0, again.output
    assert "again with this code" in again.output
    assert (folder / "best.pt").stat().st_mtime_ns == stamp   # not retrained
    after = json.loads((folder / "metrics.json").read_text())
    assert after["trained_by"]["code_fingerprint"] == made_by and after["code_fingerprint"] == made_by
    assert after["scenarios"]["warm"]["mae"] == before["scenarios"]["warm"]["mae"]
    assert "catalogue" in after["scenarios"]["warm"]
    assert after["timing"]["train_seconds"] == before["timing"]["train_seconds"]
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert "catalogue_ndcg@10" in res["results"]["melu"]["warm"]
    # a run of another config is not taken for this one: it is trained
    other = CliRunner().invoke(app, [*args, "--reevaluate", "--local-steps", "2"])
    assert other.exit_code == 0, other.output
    assert "not re-evaluating" in other.output and (folder / "best.pt").stat().st_mtime_ns != stamp


def test_the_references_are_fitted_once_per_seed_and_shared_by_the_models(compared):
    out, _, _ = compared
    for seed in (0, 1):
        first, second = _run_metrics(out, "melu", seed), _run_metrics(out, "supervised", seed)
        assert "shared" not in first["reference_choices"]["seconds"]
        assert second["reference_choices"]["seconds"]["shared"] is True
        assert second["reference_choices"]["seconds"]["fit_and_choose"] == 0.0
        for name in TOPN_REFERENCES:
            assert second["references"][name] == first["references"][name], name
            assert second["reference_choices"][name] == first["reference_choices"][name], name
