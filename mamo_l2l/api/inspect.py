"""Do MAMO's memories personalise? The report of ``mamo-l2l inspect`` (``inspect_run``,
``format_report``) over a run's training and test users; the statistics it is made of are
mamo_l2l/algorithms/memory_stats.py, and docs/algorithm.md ("Checking that the memories
personalise") explains each figure."""
from __future__ import annotations

from typing import Any, Dict, Optional

from mamo_l2l.algorithms.memory_stats import inspect_memories
from mamo_l2l.data.batching import user_rows


def inspect_run(run) -> Dict[str, Any]:
    """Memory report of a run (``ml.load_run(...)`` or ``ml.fit(...)``) over its training users and
    its test users (every user of any test scenario)."""
    splits, data = run.bundle.splits, run.bundle.data
    test = [t for s in splits.test.values() for t in s]
    groups = {"train": user_rows(splits.train, data)}
    if test:
        groups["test"] = user_rows(test, data)
    report = inspect_memories(run.algorithm, groups)
    return dict({"model": run.model_name, "dataset": run.config.data.dataset, "seed": run.config.train.seed},
                **report)


def _fmt(v: Optional[float]) -> str:
    return "n/a (memory not used)" if v is None else f"{v:.4g}"


def format_report(report: Dict[str, Any]) -> str:
    lines = [
        f"memories of {report.get('model', '?')} on {report.get('dataset', '?')} (seed {report.get('seed', '?')}): "
        f"K={report['slots']}, write rule {report['memory_update']}, keys {report['key_init']}, "
        f"temperature {report['temperature']}, tau {report['tau']}"
    ]
    lines.append(f"{'memory':<12} {'slot_distance_min_ratio':>24}  slot norms")
    for name, m in report["memories"].items():
        lines.append(
            f"{name:<12} {m['slot_distance_min_ratio']:>24.4g}  " + " ".join(f"{v:.4g}" for v in m["slot_norms"])
        )
    for group, u in report["users"].items():
        lines.append(
            f"{group} users ({u['users']}): attention entropy mean {u['attention_entropy_mean']:.4f} "
            f"(max ln K = {u['attention_entropy_max']:.4f}); top slot counts {u['top_slot_counts']}"
        )
        lines.append(
            f"  start spread across users: tau*b_u {_fmt(u['bias_start_spread'])} "
            f"(|tau*b_u| / |phi_u| {_fmt(u['bias_start_norm_ratio'])}), W_pref^0 {_fmt(u['pref_start_spread'])}"
        )
    return "\n".join(lines)
