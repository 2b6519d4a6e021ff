"""MAMO's memories must stay diverse and personalise (docs/algorithm.md, "The memory write rule"
and "Checking that the memories personalise"): hand-worked competitive writes, k-means keys,
re-seeding, and a short real training run after which the slots differ and users read
different starts -- while the old interpolating rule, run the same way, collapses (so the
checks below can fail)."""
import json
import math

import pytest
import torch
from click.testing import CliRunner

import mamo_l2l as ml
from mamo_l2l.algorithms.memory_stats import slot_stats, users_summary
from mamo_l2l.api.inspect import inspect_run
from mamo_l2l.cli.main import app
from mamo_l2l.models.memory import MAMOMemory, MemoryWrite


def _memory(update="competitive", slots=2, learned=False):
    mem = MAMOMemory(slots, 2, torch.nn.Linear(1, 1), 2, temperature=1.0, alpha=0.5, beta=0.1, gamma=0.2,
                     update=update, key_init="kmeans", learned_preference=learned)
    with torch.no_grad():
        mem.profile.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]])[:slots])
        mem.user_bias.copy_(torch.tensor([[1.0, 1.0], [-1.0, 2.0]])[:slots])
        mem.preference.copy_(torch.stack([torch.eye(2), 2 * torch.eye(2)])[:slots])
    return mem


def test_competitive_write_moves_only_the_top_slot_by_hand():
    mem = _memory()
    w = MemoryWrite(torch.tensor([0.3, 0.7]), torch.tensor([2.0, 4.0]), torch.tensor([3.0, 0.0]),
                    torch.tensor([[2.5, 0.0], [1.0, 2.0]]), torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    mem.write([w])
    # slot 1 wins (0.7): M_P[1] = (0,1) + 0.5 ((2,4) - (0,1)) = (1, 2.5)
    assert torch.allclose(mem.profile, torch.tensor([[1.0, 0.0], [1.0, 2.5]]))
    # M_U[1] = (-1,2) + 0.1 ((3,0) - (-1,2)) = (-0.6, 1.8)
    assert torch.allclose(mem.user_bias, torch.tensor([[1.0, 1.0], [-0.6, 1.8]]))
    # M_UI[1] += 0.2 (W' - W0) = 2I + 0.2 [[0.5, 0], [1, 0]]
    assert torch.allclose(mem.preference[1], torch.tensor([[2.1, 0.0], [0.2, 2.0]]))
    assert torch.equal(mem.preference[0], torch.eye(2))        # the other slot is untouched
    assert mem.wins.tolist() == [0.0, 1.0]


def test_competitive_batch_write_equals_writing_one_task_at_a_time():
    gen = torch.Generator().manual_seed(3)
    mem = MAMOMemory(3, 4, torch.nn.Linear(2, 2), 2, temperature=1.0, alpha=0.5, beta=0.1, gamma=0.2)
    writes = [MemoryWrite(torch.softmax(torch.randn(3, generator=gen), 0), torch.randn(4, generator=gen),
                          torch.randn(mem.user_bias.shape[1], generator=gen), torch.randn(2, 2, generator=gen),
                          torch.randn(2, 2, generator=gen)) for _ in range(9)]
    expected = {n: getattr(mem, n).clone() for n in ("profile", "user_bias", "preference")}
    for w in writes:                        # the rule written out, one task at a time
        k = int(w.attention.argmax())
        expected["profile"][k] += 0.5 * (w.profile - expected["profile"][k])
        expected["user_bias"][k] += 0.1 * (w.grad_user - expected["user_bias"][k])
        expected["preference"][k] += 0.2 * (w.pref - w.pref_start)
    assert len({int(w.attention.argmax()) for w in writes}) < len(writes)   # some slot won twice
    mem.write(writes)
    for name, value in expected.items():
        assert torch.allclose(getattr(mem, name), value, atol=1e-6), name
    assert mem.wins.sum() == 9


def test_competitive_preference_write_does_not_pull_slots_together():
    # The same W' written to two slots' winners, with the read a mixture: under the interpolating
    # rule both slots move toward the one value (they merge); the competitive rule writes only the
    # change from the read, so the slots keep their distance.
    for update, merges in (("interpolate", True), ("competitive", False)):
        mem = _memory(update)
        start = mem.preference.clone()
        read = 0.5 * (start[0] + start[1])
        for k in range(200):
            a = torch.tensor([0.6, 0.4]) if k % 2 == 0 else torch.tensor([0.4, 0.6])
            mem.write([MemoryWrite(a, torch.zeros(2), torch.zeros(2), read.clone(), read.clone())])
        gap = float((mem.preference[0] - mem.preference[1]).norm())
        start_gap = float((start[0] - start[1]).norm())
        if merges:
            assert gap < 0.01 * start_gap
        else:
            assert gap == pytest.approx(start_gap)


def test_learned_preference_memory_is_a_parameter_and_is_not_written():
    mem = _memory(learned=True)
    assert isinstance(mem.preference, torch.nn.Parameter)
    before = mem.preference.detach().clone()
    mem.write([MemoryWrite(torch.tensor([1.0, 0.0]), torch.ones(2), torch.ones(2), torch.zeros(2, 2),
                           torch.eye(2))])
    assert torch.equal(mem.preference.detach(), before)


def test_kmeans_keys_find_the_clusters():
    mem = _memory()
    gen = torch.Generator().manual_seed(0)
    a = torch.tensor([5.0, 0.0]) + 0.1 * torch.randn(30, 2, generator=gen)
    b = torch.tensor([0.0, -3.0]) + 0.1 * torch.randn(30, 2, generator=gen)
    mem.init_keys(torch.cat([a, b]), seed=1)
    keys = sorted(mem.profile.tolist())
    assert keys[0] == pytest.approx(b.mean(0).tolist(), abs=1e-5)
    assert keys[1] == pytest.approx(a.mean(0).tolist(), abs=1e-5)


def test_reseed_moves_a_dead_slot_to_the_worst_served_user():
    mem = _memory()
    mem.wins.copy_(torch.tensor([5.0, 0.0]))                  # slot 1 won nothing this epoch
    profiles = torch.tensor([[1.0, 0.1], [0.9, 0.0], [0.5, -1.0]])
    assert mem.reseed(profiles) == 1
    assert torch.equal(mem.profile[1], profiles[2])         # the user farthest from every key (best cos 0.45)
    # it takes the values of the slot that user read most so far (slot 0: cos 0.45 against -0.89)
    assert torch.equal(mem.user_bias[1], mem.user_bias[0])
    assert torch.equal(mem.preference[1], mem.preference[0])
    assert mem.wins.tolist() == [0.0, 0.0]


def test_slot_stats_and_spread_by_hand():
    stats = slot_stats(torch.tensor([[3.0, 4.0], [0.0, 0.0], [3.0, 0.0]]))
    assert stats["slot_norms"] == [5.0, 0.0, 3.0]
    assert stats["slot_distance_min_ratio"] == pytest.approx(3.0 / (8.0 / 3))


# ---------------------------------------------------------------- a real (short) training run
def _train(ml100k_raw_dir, tmp_path, **model):
    cfg = ml.load_config().override("data", dataset="fixture", data_dir=str(ml100k_raw_dir))
    cfg = cfg.override("model", field_dim=8, embed_dim=8, hidden=16, **model)
    cfg = cfg.override("train", epochs=6, patience=10, meta_batch_size=4, threads=1)
    bundle = ml.load_data(cfg, cache_dir=tmp_path / "cache", progress=False)
    return ml.fit(bundle, cfg, model_name="mamo", out_dir=tmp_path / "run", progress=False)


@pytest.fixture(scope="module")
def default_run(ml100k_raw_dir, tmp_path_factory):
    return _train(ml100k_raw_dir, tmp_path_factory.mktemp("mem"))


def test_trained_memories_stay_diverse_and_personalise(default_run):
    report = inspect_run(default_run)
    assert report["verdict"].startswith("verdict: personalising"), report["verdict"]
    for name, mem in report["memories"].items():
        assert mem["slot_distance_min_ratio"] > 0.1, (name, mem)      # no two slots equal
    for group in ("train", "test"):
        users = report["users"][group]
        assert users["attention_entropy_mean"] < users["attention_entropy_max"] - 0.01
        assert sum(c > 0 for c in users["top_slot_counts"]) >= 2    # users pick different slots
        assert users["pref_start_spread"] > 0.05                     # different W_pref^0 per user
        assert users["bias_start_spread"] > 0.05                     # different theta_u^0 per user
    # different users really get different starts from the algorithm itself
    algo = default_run.algorithm
    rows = torch.from_numpy(default_run.bundle.data.user_x[:20])
    with torch.no_grad():
        overrides, _ = algo.start(algo.profiles(rows))
    pref = overrides["pref.weight"].reshape(20, -1)
    assert float((pref - pref[:1]).abs().max()) > 1e-3


def test_history_records_memory_diagnostics_per_epoch(default_run):
    assert len(default_run.history) == 6
    for record in default_run.history:
        mem = record["memory"]
        assert 0.0 <= mem["attention_entropy_mean"] <= math.log(3) + 1e-9
        assert set(mem["slot_distance_min_ratio"]) == {"profile", "user_bias", "preference"}
        assert "reseeded_slots" in mem


def test_the_old_interpolating_rule_collapses_the_same_run(ml100k_raw_dir, tmp_path):
    # The diagnostics above can fail: with the interpolating rule and random keys the key slots
    # merge within these 6 epochs (the value slots follow later), the attention becomes uniform
    # and every user reads (nearly) the same start.
    run = _train(ml100k_raw_dir, tmp_path, memory_update="interpolate", memory_init="random",
                 preference_memory="written", temperature=1.0)
    report = inspect_run(run)
    assert report["verdict"].startswith("verdict: collapsed (profile slot_distance_min_ratio"), report["verdict"]
    assert report["memories"]["profile"]["slot_distance_min_ratio"] < 0.1
    for group in ("train", "test"):
        users = report["users"][group]
        assert users["attention_entropy_mean"] > users["attention_entropy_max"] - 0.01
        assert users["pref_start_spread"] < 0.01 and users["bias_start_spread"] < 0.01


def test_inspect_cli_prints_and_writes_json_with_the_documented_keys(default_run, tmp_path):
    out = tmp_path / "report.json"
    res = CliRunner().invoke(app, ["inspect", "--checkpoint", str(default_run.out_dir / "best.pt"),
                                   "--json", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "slot_distance_min_ratio" in res.output and "attention entropy" in res.output
    report = json.loads(out.read_text())
    assert res.stdout.splitlines()[-2] == report["verdict"]        # the last line before "saved ..."
    for mem in report["memories"].values():
        assert set(mem) == {"slot_norms", "slot_distance_min_ratio"}
    for users in report["users"].values():
        assert {"attention_entropy_mean", "attention_entropy_max", "top_slot_counts", "bias_start_spread",
                "pref_start_spread", "users"} <= set(users)
    assert report["users"]["train"]["attention_entropy_max"] == pytest.approx(math.log(3))
    # the checkpoint's memories are what the report describes
    live = inspect_run(default_run)
    assert report["memories"]["preference"]["slot_norms"] == pytest.approx(live["memories"]["preference"]["slot_norms"])


def test_inspect_refuses_a_model_without_memories(ml100k_raw_dir, tmp_path):
    cfg = ml.load_config().override("data", dataset="fixture", data_dir=str(ml100k_raw_dir))
    cfg = cfg.override("train", epochs=1, threads=1)
    bundle = ml.load_data(cfg, cache_dir=tmp_path / "cache", progress=False)
    ml.fit(bundle, cfg, model_name="item-mean", out_dir=tmp_path / "r", progress=False)
    res = CliRunner().invoke(app, ["inspect", "--checkpoint", str(tmp_path / "r" / "best.pt"),
                                   "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 1 and "no memories" in res.output


def test_users_summary_on_equal_slots_is_uniform():
    mem_algo = type("A", (), {})()
    mem = _memory()
    with torch.no_grad():
        mem.profile.copy_(torch.ones(2, 2))
        mem.preference.copy_(torch.stack([torch.eye(2), torch.eye(2)]))
    mem_algo.memory, mem_algo.feature_memory, mem_algo.task_memory, mem_algo.tau = mem, False, True, 0.0
    s = users_summary(mem_algo, torch.randn(10, 2))
    assert s["attention_entropy_mean"] == pytest.approx(math.log(2))
    assert s["pref_start_spread"] == pytest.approx(0.0, abs=1e-12)


def test_users_summary_in_chunks_equals_one_read_of_every_user():
    """The chunked statistics (RowMoments' merges) give what one read of all users gives: the
    spread is the norm of the per-coordinate population std over the mean row norm."""
    from mamo_l2l.algorithms.memory_stats import RowMoments
    torch.manual_seed(0)
    mem = _memory(slots=2)
    algo = type("A", (), {})()
    algo.memory, algo.feature_memory, algo.task_memory, algo.tau = mem, False, True, 0.0
    profiles = torch.randn(23, 2)
    whole = users_summary(algo, profiles, chunk=1000)
    parts = users_summary(algo, profiles, chunk=5)
    pref = mem.read(profiles).pref.reshape(23, -1).to(torch.float64)
    direct = float(pref.std(dim=0, unbiased=False).norm() / pref.norm(dim=1).mean())
    assert direct > 0.01
    assert whole["pref_start_spread"] == pytest.approx(direct, rel=1e-12)
    assert parts["pref_start_spread"] == pytest.approx(direct, rel=1e-12)
    assert parts["top_slot_counts"] == whole["top_slot_counts"] and sum(parts["top_slot_counts"]) == 23
    assert parts["attention_entropy_mean"] == pytest.approx(whole["attention_entropy_mean"], rel=1e-12)
    m = RowMoments()
    for c in (pref[:1], pref[1:2], pref[2:20], pref[20:]):
        m.add(c)
    assert m.spread() == pytest.approx(direct, rel=1e-12)
    assert users_summary(algo, profiles[:0])["users"] == 0
