"""The one-line verdict of `mamo-l2l inspect` (mamo_l2l/api/inspect.py) on hand-made reports, one
per outcome; the thresholds are the documented ones (docs/algorithm.md)."""
import math

from mamo_l2l.api.inspect import COLLAPSED_RATIO, NUDGE_RATIO, SPREAD_MIN, UNIFORM_MARGIN, format_report, verdict


def _report(ratio=0.5, entropy=0.6, counts=(40, 30, 30), spread=0.3):
    users = {"users": 100, "attention_entropy_mean": entropy, "attention_entropy_max": math.log(3),
             "top_slot_counts": list(counts), "bias_start_spread": spread, "bias_start_norm_ratio": 0.2,
             "pref_start_spread": spread}
    return {"model": "mamo", "dataset": "x", "seed": 0, "slots": 3, "memory_update": "competitive",
            "key_init": "kmeans", "temperature": 0.1, "tau": 0.1, "feature_memory": True, "task_memory": True,
            "memories": {m: {"slot_norms": [1.0, 1.0, 1.0], "slot_distance_min_ratio": ratio}
                         for m in ("profile", "user_bias", "preference")},
            "users": {"train": dict(users), "test": dict(users)}}


def test_each_outcome_is_named_with_its_figures():
    assert verdict(_report()).startswith("verdict: personalising (on the test users")
    assert "only nudges" not in verdict(_report())
    small = _report()
    small["users"]["test"]["bias_start_norm_ratio"] = NUDGE_RATIO / 50
    assert verdict(small).endswith("; the feature memory's shift is 0.0002 of |phi_u| (< 0.01): it only nudges "
                                   "theta_u^0")
    collapsed = verdict(_report(ratio=COLLAPSED_RATIO / 2))
    assert collapsed.startswith("verdict: collapsed (profile slot_distance_min_ratio 0.05")
    uniform = verdict(_report(entropy=math.log(3) - UNIFORM_MARGIN / 2))
    assert uniform.startswith("verdict: diverse but uniform attention")
    assert verdict(_report(counts=(100, 0, 0))).startswith("verdict: diverse but uniform attention")
    weak = verdict(_report(spread=SPREAD_MIN / 2))
    assert weak.startswith("verdict: weakly personalising") and "bias_start_spread 0.025" in weak


def test_an_unused_memory_does_not_count_and_the_report_ends_with_the_verdict():
    report = _report()
    report["task_memory"] = False                     # an ablation: preference memory not used
    report["memories"]["preference"]["slot_distance_min_ratio"] = 0.0
    for group in report["users"].values():
        group["pref_start_spread"] = None
    assert verdict(report).startswith("verdict: personalising")
    assert format_report(report).splitlines()[-1] == verdict(report)
