"""Distributed meta-training (docs/distributed.md): N gloo processes end where one process ends
on the same global meta-batches (parameters and MAMO memories, to 1e-5), a killed N-process run
resumes with another number of processes, and the sharding arithmetic.

The runs use the ML-100K-layout fixture (43 training tasks) with meta_batch_size 7: with two
ranks each meta-batch is shared 3/4 (uneven shards) and the last one holds a single task, so one
rank has nothing to do there (an empty shard)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mamo_l2l.cli.main import app
from mamo_l2l.training.checkpoint import load_checkpoint
from mamo_l2l.training.distributed import SINGLE, World

REPO = Path(__file__).resolve().parents[2]
TOL = 1e-5


@pytest.fixture(scope="module")
def dist_yaml(tmp_path_factory):
    path = tmp_path_factory.mktemp("dist-cfg") / "small.yaml"
    path.write_text(yaml.safe_dump({"model": {"field_dim": 8, "embed_dim": 8, "hidden": 16},
                                    "train": {"meta_batch_size": 7, "threads": 1}}))
    return str(path)


def _args(data_dir, config, out, cache, *extra):
    return ["train", "--dataset", "fixture", "--data-dir", str(data_dir), "--config", config, "--out", str(out),
            "--cache-dir", str(cache), *extra]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _ranks(n: int, args, logs: Path):
    """n workers of `python -m mamo_l2l ARGS` with the environment torchrun gives them."""
    port = _free_port()
    procs = []
    for rank in range(n):
        env = _env(WORLD_SIZE=n, RANK=rank, LOCAL_RANK=rank, LOCAL_WORLD_SIZE=n, MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=port)
        err = open(logs / f"rank{rank}.txt", "wb")
        procs.append((subprocess.Popen([sys.executable, "-m", "mamo_l2l", *args], cwd=REPO, env=env,
                                       stdout=subprocess.DEVNULL, stderr=err), err))
    return procs


def _wait(procs, timeout=240):
    codes = []
    try:
        for p, _ in procs:
            codes.append(p.wait(timeout=timeout))
    finally:
        for p, err in procs:
            if p.poll() is None:      # a failed test leaves no rank behind
                p.kill()
                p.wait()
            err.close()
    return codes


def _state(path):
    return load_checkpoint(path)["state_dict"]


def _max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def _warm_cache(data_dir, cache):
    res = CliRunner().invoke(app, ["data", "info", "--dataset", "fixture", "--data-dir", str(data_dir),
                                   "--cache-dir", str(cache), "--quiet"])
    assert res.exit_code == 0, res.output


# ------------------------------------------------------------------ sharding arithmetic
def test_shards_cover_the_meta_batch_in_order_and_differ_by_at_most_one():
    tasks = list(range(7))
    for n in (1, 2, 3, 8):
        shards = [World(n, r).shard(tasks) for r in range(n)]
        assert [t for s in shards for t in s] == tasks
        assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert World(2, 0).shard([5]) == [] and World(2, 1).shard([5]) == [5]
    assert not SINGLE.active and SINGLE.is_main
    writes = [object(), None]
    assert SINGLE.gather_writes(writes) is writes and SINGLE.broadcast(3) == 3 and SINGLE.max_int(15) == 15


def test_only_train_is_distributed(monkeypatch, tmp_path):
    from mamo_l2l.training.distributed import launched
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert launched()
    res = CliRunner().invoke(app, ["compare", "--dataset", "ml-100k", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "torchrun" in res.output and not any(tmp_path.iterdir())
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not launched()


# ------------------------------------------------------------------ 2 processes == 1 process
def test_two_processes_end_where_one_process_ends_and_resume_with_two(tmp_path, ml100k_raw_dir, dist_yaml):
    cache = tmp_path / "cache"
    _warm_cache(ml100k_raw_dir, cache)
    one = tmp_path / "one"
    res = CliRunner().invoke(app, _args(ml100k_raw_dir, dist_yaml, one, cache, "--epochs", "2", "--quiet"))
    assert res.exit_code == 0, res.output
    # epoch 1 with torchrun (the documented launcher), epoch 2 by --resume with 2 processes again
    two = tmp_path / "two"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "mamo_l2l", *_args(ml100k_raw_dir, dist_yaml, two, cache, "--epochs", "1")],
                         cwd=REPO, env=_env(), capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("mamo on fixture (seed 0") == 1     # one results table: rank 0 only
    assert run.stdout.count("\nuser_item_cold ") == 2           # its row and its catalogue row, once
    first = load_checkpoint(two / "last.pt")
    assert first["state"]["epoch"] == 1
    codes = _wait(_ranks(2, ["train", "--out", str(two), "--resume", "--epochs", "2", "--cache-dir", str(cache),
                             "--quiet"], tmp_path))
    assert codes == [0, 0], [(tmp_path / f"rank{r}.txt").read_text()[-2000:] for r in range(2)]
    a, b = _state(one / "last.pt"), _state(two / "last.pt")
    assert _max_diff(a, b) < TOL
    # not a trivial agreement: training moved the parameters and the memories far beyond TOL
    assert _max_diff(first["state_dict"], b) > 1e3 * TOL
    memory = {k: v for k, v in b.items() if k.startswith("memory.")}
    assert memory and _max_diff({k: first["state_dict"][k] for k in memory}, memory) > 1e3 * TOL
    ha = load_checkpoint(one / "last.pt")["state"]["history"]
    hb = load_checkpoint(two / "last.pt")["state"]["history"]
    assert [h["train_loss"] for h in ha] == pytest.approx([h["train_loss"] for h in hb], abs=TOL)
    assert [h["valid_mae"] for h in ha] == pytest.approx([h["valid_mae"] for h in hb], abs=TOL)


def test_two_processes_with_the_per_task_l2l_backend(tmp_path, ml100k_raw_dir, dist_yaml):
    cache = tmp_path / "cache"
    _warm_cache(ml100k_raw_dir, cache)
    args = ("--epochs", "1", "--backend", "l2l", "--quiet")
    res = CliRunner().invoke(app, _args(ml100k_raw_dir, dist_yaml, tmp_path / "one", cache, *args))
    assert res.exit_code == 0, res.output
    codes = _wait(_ranks(2, _args(ml100k_raw_dir, dist_yaml, tmp_path / "two", cache, *args), tmp_path))
    assert codes == [0, 0], [(tmp_path / f"rank{r}.txt").read_text()[-2000:] for r in range(2)]
    assert _max_diff(_state(tmp_path / "one" / "last.pt"), _state(tmp_path / "two" / "last.pt")) < TOL


# ------------------------------------------------------------------ a killed 2-process run resumes
def test_killed_two_process_run_resumes_with_one_process(tmp_path, ml100k_raw_dir, dist_yaml):
    cache = tmp_path / "cache"
    _warm_cache(ml100k_raw_dir, cache)
    killed = tmp_path / "killed"
    procs = _ranks(2, _args(ml100k_raw_dir, dist_yaml, killed, cache, "--epochs", "200", "--patience", "1000"),
                   tmp_path)
    log0 = tmp_path / "rank0.txt"
    deadline = time.monotonic() + 180
    while b"epoch   1 " not in log0.read_bytes():
        assert all(p.poll() is None for p, _ in procs), log0.read_text()[-2000:]
        assert time.monotonic() < deadline, "no epoch line"
        time.sleep(0.05)
    procs[1][0].send_signal(signal.SIGTERM)          # one rank is signalled: every rank stops at the epoch end
    codes = _wait(procs)
    text = log0.read_text()
    assert codes == [143, 143], text[-2000:]
    assert "--resume" in text
    stopped = int(load_checkpoint(killed / "last.pt")["state"]["epoch"])
    assert 1 <= stopped < 200 and not (killed / "metrics.json").exists()
    target = stopped + 2
    res = CliRunner().invoke(app, ["train", "--out", str(killed), "--resume", "--epochs", str(target),
                                   "--cache-dir", str(cache), "--quiet"])
    assert res.exit_code == 0, res.output
    full = tmp_path / "full"
    res = CliRunner().invoke(app, _args(ml100k_raw_dir, dist_yaml, full, cache, "--epochs", str(target),
                                        "--patience", "1000", "--quiet"))
    assert res.exit_code == 0, res.output
    assert _max_diff(_state(full / "last.pt"), _state(killed / "last.pt")) < TOL
    assert _max_diff(_state(full / "best.pt"), _state(killed / "best.pt")) < TOL
