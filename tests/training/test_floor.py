"""benchmarks/bench_floor.py (docs/performance.md, "The floor of an epoch"): the FLOP count covers
the backward pass and the table's floor is the count over the measured rate."""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[2]


def test_the_counter_counts_the_backward_pass():
    """The floor counts forward + backward: a product and its backward (two products) are 3x the forward."""
    a, b = torch.randn(64, 32, requires_grad=True), torch.randn(32, 16, requires_grad=True)
    with FlopCounterMode(display=False) as forward:
        torch.mm(a, b)
    with FlopCounterMode(display=False) as both:
        torch.mm(a, b).sum().backward()
    assert forward.get_total_flops() == 2 * 64 * 32 * 16
    assert both.get_total_flops() == 3 * forward.get_total_flops()


@pytest.mark.slow
def test_the_floor_script_prints_a_consistent_table(tmp_path):
    subprocess.run([sys.executable, "-m", "mamo_l2l", "data", "synth", "--scale", "0.05", "--out", str(tmp_path)],
                   check=True, capture_output=True)
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_floor.py"), "--dataset", "synth",
                          "--data-dir", str(tmp_path), "--format", "atomic", "--warmup", "1", "--batches", "2",
                          "--threads", "1", "--gemm", "256", "--profile"], check=True, capture_output=True, text=True,
                         timeout=300).stdout
    head, profile = out.split("torch.profiler over", 1)
    value = {m[0]: float(m[1]) for m in re.findall(r"^\| (.+?) \| ([\d.]+)(?: GFLOP/s| GFLOP| s|x|%) \|$", head, re.M)}
    flops = value["matrix-product FLOPs of one epoch (forward + backward)"]
    rate = value["float32 matrix-multiply rate (256^3, best)"]
    floor = value["floor: epoch FLOPs / rate"]
    assert flops > 0 and rate > 0
    assert floor == pytest.approx(flops / rate, rel=0.01)
    shares = [v for k, v in value.items() if k.startswith("of which ")]
    assert shares and sum(shares) == pytest.approx(100, abs=len(shares))
    measured = value["measured epoch (extrapolated from 2 meta-batches)"]
    assert value["gap: measured / floor"] == pytest.approx(measured / max(floor, 1e-12), rel=0.01)
    classes = {m[0]: float(m[1]) for m in re.findall(r"^\| (.+?) \| ([\d.e+-]+) \| \d+% \|$", profile, re.M)}
    everything = classes.pop("all ops (self CPU, every thread)")
    assert classes["matrix products"] > 0 and everything > 0
    assert sum(classes.values()) == pytest.approx(everything, rel=0.02)


def test_the_profile_classes_ops_by_name():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from bench_floor import op_class
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    assert op_class("aten::bmm") == op_class("aten::addmm") == "matrix products"
    assert op_class("aten::topk") == op_class("aten::tanh") == "element-wise and reductions"
    assert op_class("aten::t") == "views and shape" and op_class("aten::to") != "views and shape"
    assert op_class("aten::index_select") == "gather, scatter, embedding, index"
    assert op_class("aten::_foreach_add_").startswith("optimizer")
    assert op_class("autograd::engine::evaluate_function: MmBackward0").startswith("autograd")
