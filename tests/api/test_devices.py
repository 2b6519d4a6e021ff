"""One device end to end (docs/performance.md, "GPU"): train, evaluate with the catalogue,
recommend and serve on ``cpu`` and, where a GPU exists, on ``cuda`` (marker ``cuda``; skipped
without one). On cuda the scores must equal the cpu run's within float32 rounding."""
import numpy as np
import pytest
import synthetic
import torch

from mamo_l2l import api
from mamo_l2l.training.fit import fit

DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device")])]


def _trained(device, tmp_path):
    cfg = synthetic.small_config(epochs=1)
    cfg = cfg.override("train", device=device)
    return fit(synthetic.bundle(cfg), cfg, out_dir=tmp_path / device, progress=False)


@pytest.mark.parametrize("device", DEVICES)
def test_train_evaluate_recommend_serve_on_a_device(device, tmp_path):
    run = _trained(device, tmp_path)
    assert next(run.model.parameters()).device.type == device
    metrics = api.evaluate(run)
    for scen in ("warm", "user_cold", "item_cold", "user_item_cold"):
        m = metrics["scenarios"][scen]
        assert np.isfinite(m["mae"]) and 0.0 <= m["catalogue"]["recall@10"] <= 1.0
    rec = api.load_recommender(tmp_path / device / "best.pt", device=device)
    items = [str(i) for i in rec.catalog.item_ids[:3]]
    top = rec.recommend([(i, 4.0) for i in items], k=5)
    assert len(top) == 5 and not set(top["item_id"]) & set(items)
    fastapi = pytest.importorskip("fastapi.testclient")
    from mamo_l2l.serving.app import create_app
    with fastapi.TestClient(create_app(rec, max_ratings=20, max_k=30)) as client:
        body = client.post("/recommend", json={"ratings": [{"item_id": i, "rating": 4} for i in items], "k": 5})
        assert body.status_code == 200, body.text
        assert [r["item_id"] for r in body.json()["items"]] == list(top["item_id"])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_scores_equal_the_cpu_scores(tmp_path):
    """The same seed trained on both devices: the evaluation's MAE and the catalogue's Recall@10
    agree (float32 reduction order differs between devices, so not bitwise)."""
    cpu, gpu = (api.evaluate(_trained(d, tmp_path)) for d in ("cpu", "cuda"))
    for scen in ("warm", "user_cold"):
        assert gpu["scenarios"][scen]["mae"] == pytest.approx(cpu["scenarios"][scen]["mae"], abs=1e-4)


@pytest.mark.slow
def test_the_device_check_script_runs_on_cpu():
    """benchmarks/gpu_check.py's dry run (--device cpu --quick): every row of its table is there,
    with numbers."""
    import re
    import subprocess
    import sys
    from pathlib import Path
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    out = subprocess.run([sys.executable, str(script), "--device", "cpu", "--quick"], check=True,
                         capture_output=True, text=True, timeout=600).stdout
    table = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith(("| row", "| ---"))]
    names = [line.split("|")[1].strip() for line in table]
    assert names.count("epoch") == 9 and {"evaluate", "synthetic", "peak", "torchrun"} <= set(names)
    for line in table:
        assert re.search(r"\d", line.split("|")[3]), line
    ratios = [float(m) for m in re.findall(r"\| ([\d.]+)x \|", out)]
    assert len(ratios) == 2 and all(r > 0 for r in ratios)
