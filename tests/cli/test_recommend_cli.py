"""`mamo-l2l recommend` through click, on the session's fixture run (conftest.recommend_run)."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import mamo_l2l as ml
from mamo_l2l.cli.main import app


@pytest.fixture(scope="module")
def checkpoint(recommend_run):
    return str(recommend_run[0] / "best.pt")


def _run(*args):
    return CliRunner().invoke(app, list(args))


def test_one_new_user_table_and_json(checkpoint, tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("item_id,rating\n1,5\n2,4\n3,1\n")
    out = tmp_path / "top.json"
    res = _run("recommend", "--checkpoint", checkpoint, "--ratings", str(csv), "--user", "gender=F, age=25",
               "--k", "4", "--json", str(out))
    assert res.exit_code == 0, res.output
    assert "user new (3 ratings): top 4" in res.output
    doc = json.loads(out.read_text())
    assert doc["k"] == 4 and [u["user"] for u in doc["users"]] == ["new"]
    items = doc["users"][0]["items"]
    assert len(items) == 4 and set(items[0]) == {"item_id", "title", "score", "rank_score"}
    want = ml.load_recommender(checkpoint).recommend([("1", 5), ("2", 4), ("3", 1)],
                                                      user={"gender": "F", "age": "25"}, k=4)
    assert [i["item_id"] for i in items] == list(want["item_id"])
    assert [i["score"] for i in items] == pytest.approx(list(want["score"]), abs=1e-6)
    assert [i["rank_score"] for i in items] == pytest.approx(list(want["rank_score"]), abs=1e-6)
    ranks = [i["rank_score"] for i in items]
    assert ranks == sorted(ranks, reverse=True)              # the list is ordered by the value it shows
    assert "rank score  predicted rating" in res.output and "ordered by rank score" in res.output
    first = res.output.splitlines()[2].split()
    assert float(first[1]) == pytest.approx(items[0]["rank_score"], abs=5e-4)
    assert float(first[2]) == pytest.approx(items[0]["score"], abs=5e-4)
    for i in items:                               # every line of the table names the item and its title
        assert i["title"] in res.output


def test_several_users(checkpoint, tmp_path):
    csv = tmp_path / "many.csv"
    csv.write_text("user_id,item_id,rating\nann,1,5\nann,2,5\nbob,3,2\n")
    out = tmp_path / "top.json"
    res = _run("recommend", "--checkpoint", checkpoint, "--ratings", str(csv), "--k", "3", "--json", str(out))
    assert res.exit_code == 0, res.output
    assert "user ann (2 ratings)" in res.output and "user bob (1 rating)" in res.output
    doc = json.loads(out.read_text())
    assert [u["user"] for u in doc["users"]] == ["ann", "bob"]
    assert all(len(u["items"]) == 3 for u in doc["users"])
    assert not {"1", "2"} & {i["item_id"] for i in doc["users"][0]["items"]}


@pytest.mark.parametrize("content, args, message", [
    ("item_id,rating\n1,5\nnope,4\n", (), "unknown item id"),
    ("item_id,rating\n1,7\n", (), "outside this data set's rating range"),
    ("item_id,rating\n1,five\n", (), "line 2: rating 'five' is not a number"),
    ("item,score\n1,5\n", (), "expected a header line"),
    ("item_id,rating\n1,5\n", ("--k", "0"), "k must be an integer >= 1"),
    ("item_id,rating\n1,5\n", ("--user", "gender"), "--user: expected field=value"),
    ("item_id,rating\n1,5\n", ("--user", "shoe=42"), "unknown user field"),
])
def test_errors_are_one_line_and_exit_1(checkpoint, tmp_path, content, args, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(content)
    res = _run("recommend", "--checkpoint", checkpoint, "--ratings", str(csv), *args)
    assert res.exit_code == 1, res.output
    assert message in res.output
    assert "Traceback" not in res.output and res.output.count("\n") == 1


def test_missing_files(checkpoint, tmp_path):
    res = _run("recommend", "--checkpoint", str(tmp_path / "none.pt"), "--ratings", str(tmp_path / "x.csv"))
    assert res.exit_code == 1 and "ratings file not found" in res.output
    csv = tmp_path / "ok.csv"
    csv.write_text("item_id,rating\n1,5\n")
    res = _run("recommend", "--checkpoint", str(tmp_path / "none.pt"), "--ratings", str(csv))
    assert res.exit_code == 1 and "checkpoint not found" in res.output


def test_a_run_folder_stands_for_its_best_pt(checkpoint, tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("item_id,rating\n1,5\n2,4\n")
    by_file = _run("recommend", "--checkpoint", checkpoint, "--ratings", str(csv), "--k", "3")
    by_dir = _run("recommend", "--checkpoint", str(Path(checkpoint).parent), "--ratings", str(csv), "--k", "3")
    assert by_dir.exit_code == 0, by_dir.output
    assert by_dir.stdout == by_file.stdout
    empty = tmp_path / "unfinished"
    empty.mkdir()
    res = _run("recommend", "--checkpoint", str(empty), "--ratings", str(csv))
    assert res.exit_code == 1 and "this run folder has no best.pt" in res.output


def test_a_file_that_is_not_a_checkpoint_gets_one_line(tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("item_id,rating\n1,5\n")
    junk = tmp_path / "notes.pt"
    junk.write_text("not a checkpoint\n")
    res = _run("recommend", "--checkpoint", str(junk), "--ratings", str(csv))
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert "not a readable mamo_l2l checkpoint" in res.output and "weights_only" not in res.output


def test_profile_values_the_run_never_saw_warn(checkpoint, tmp_path):
    csv = tmp_path / "mine.csv"
    csv.write_text("item_id,rating\n1,5\n")
    res = _run("recommend", "--checkpoint", checkpoint, "--ratings", str(csv), "--user", "gender=Female,age=twenty")
    assert res.exit_code == 0, res.output
    known = ml.load_recommender(checkpoint).catalog.user_values()
    assert "warning: --user: gender=Female is a value this run never saw" in res.stderr
    assert f"known gender values: {', '.join(known['gender'])}" in res.stderr
    assert "age=twenty is a value this run never saw" in res.stderr
    assert "user new (1 rating): top 10" in res.stdout
    quiet = _run("recommend", "--checkpoint", checkpoint, "--ratings", str(csv), "--user", "gender=F")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr
