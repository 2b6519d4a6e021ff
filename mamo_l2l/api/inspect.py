"""Do MAMO's memories personalise? The report of ``mamo-l2l inspect`` (``inspect_run``,
``format_report``) over a run's training and test users; the statistics it is made of are
mamo_l2l/algorithms/memory_stats.py, and docs/algorithm.md ("Checking that the memories
personalise") explains each figure."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

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
    report = dict({"model": run.model_name, "dataset": run.config.data.dataset, "seed": run.config.train.seed},
                  **report)
    report["verdict"] = verdict(report)
    return report


# The thresholds of the verdict (docs/algorithm.md, "Checking that the memories personalise"), the
# same as tests/models/test_memory_diversity.py asserts of a default run and of a collapsed one.
#: slot_distance_min_ratio below this: two slots of a memory are (nearly) the same
COLLAPSED_RATIO = 0.1
#: attention entropy within this of ln K: (nearly) uniform attention
UNIFORM_MARGIN = 0.01
#: a start spread above this: the personalised starts differ across users
SPREAD_MIN = 0.05
#: |tau*b_u| / |phi_u| below this: the feature memory only nudges theta_u^0 (said after the verdict)
NUDGE_RATIO = 0.01


def _used_memories(report: Dict[str, Any]) -> List[str]:
    return (["profile"] + (["user_bias"] if report.get("feature_memory") else [])
            + (["preference"] if report.get("task_memory") else []))


def verdict(report: Dict[str, Any]) -> str:
    """One line from the report's figures, on the test users (the training users when there are
    none): ``collapsed``, ``diverse but uniform attention``, ``personalising`` or, when the
    attention picks slots but the starts hardly differ, ``weakly personalising``."""
    group = "test" if "test" in report["users"] else "train"
    u = report["users"][group]
    ratios = {m: report["memories"][m]["slot_distance_min_ratio"] for m in _used_memories(report)}
    close = {m: r for m, r in ratios.items() if r == r and r < COLLAPSED_RATIO}
    if close:
        return ("verdict: collapsed (" + ", ".join(f"{m} slot_distance_min_ratio {r:.3g}" for m, r in close.items())
                + f" < {COLLAPSED_RATIO:g}: two slots are nearly the same)")
    gap = u["attention_entropy_max"] - u["attention_entropy_mean"]
    picked = sum(c > 0 for c in u["top_slot_counts"])
    if gap <= UNIFORM_MARGIN or picked < 2:
        return (f"verdict: diverse but uniform attention (the slots differ, but on the {group} users the attention "
                f"entropy is within {gap:.3g} of ln K (uniform below a margin of {UNIFORM_MARGIN:g}) or one slot is "
                f"every user's top slot ({picked} picked): every user reads the same mix)")
    spreads = {k: u[k] for k in ("bias_start_spread", "pref_start_spread") if u.get(k) is not None}
    low = {k: v for k, v in spreads.items() if v <= SPREAD_MIN}
    if low:
        return (f"verdict: weakly personalising (the {group} users pick different slots, but "
                + ", ".join(f"{k} {v:.3g}" for k, v in low.items()) + f" <= {SPREAD_MIN:g}: the starts hardly differ)")
    ratio = u.get("bias_start_norm_ratio")
    nudge = ("" if ratio is None or ratio >= NUDGE_RATIO else
             f"; the feature memory's shift is {ratio:.2g} of |phi_u| (< {NUDGE_RATIO:g}): it only nudges theta_u^0")
    return (f"verdict: personalising (on the {group} users: distinct slots (ratios >= {COLLAPSED_RATIO:g}), "
            f"attention entropy {u['attention_entropy_mean']:.3g} < ln K {u['attention_entropy_max']:.3g} by more "
            f"than {UNIFORM_MARGIN:g}, {picked} slots picked, start spreads "
            + ", ".join(f"{v:.3g}" for v in spreads.values()) + f" > {SPREAD_MIN:g}){nudge}")


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
    lines.append(report.get("verdict") or verdict(report))
    return "\n".join(lines)
