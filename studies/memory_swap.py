"""Does a trained MAMO gain from reading its *own* memory slots? (docs/results.md)

For each MAMO run (a ``best.pt``), the test scenarios are scored three times, parameters and
memories unchanged: as trained; with every user's attention replaced by the uniform 1/K (every
user reads the same mixture: no personalisation); and with the keys rotated by one slot (each
user's attention now points at another cluster's values: the wrong personalisation). If the
memories personalise usefully, both changes must raise the MAE; if they do not, nothing changes.
Paired over the runs given (one per seed): mean difference and its standard error.

    python studies/memory_swap.py results/book-crossing-steps1/runs/mamo-seed*/best.pt
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys

import numpy as np
import torch


@contextlib.contextmanager
def uniform_attention(memory):
    original = memory.attention

    def uniform(p_u):
        a = original(p_u)
        return torch.full_like(a, 1.0 / a.shape[-1])
    memory.attention = uniform
    try:
        yield
    finally:
        del memory.attention          # the bound method again


@contextlib.contextmanager
def rotated_keys(memory):
    saved = memory.profile.clone()
    with torch.no_grad():
        memory.profile.copy_(torch.roll(saved, shifts=1, dims=0))
    try:
        yield
    finally:
        with torch.no_grad():
            memory.profile.copy_(saved)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import mamo_l2l as ml
    variants = {"as trained": contextlib.nullcontext, "uniform attention": uniform_attention,
                "rotated keys": rotated_keys}
    rows = []
    for path in args.checkpoints:
        run = ml.load_run(path)
        memory = run.algorithm.memory
        state = {k: v.clone() for k, v in run.model.state_dict().items()}
        row = {"checkpoint": path}
        for name, ctx in variants.items():
            with ctx(memory):
                metrics = ml.evaluate(run, catalogue=False)
            row[name] = {s: metrics["scenarios"][s]["mae"] for s in metrics["scenarios"]}
        for k, v in run.model.state_dict().items():          # nothing was changed for good
            assert torch.equal(v, state[k]), k
        rows.append(row)
        print(path, json.dumps({n: {s: round(m, 4) for s, m in row[n].items()} for n in variants}), flush=True)
    scenarios = list(rows[0]["as trained"])
    print(f"\nMAE change against the trained memory read, mean ± standard error over {len(rows)} runs:")
    print(f"{'variant':<20} " + " ".join(f"{s:>22}" for s in scenarios))
    for name in list(variants)[1:]:
        cells = []
        for s in scenarios:
            d = np.array([r[name][s] - r["as trained"][s] for r in rows])
            se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
            cells.append(f"{d.mean():+.4f} ± {se:.4f}")
        print(f"{name:<20} " + " ".join(f"{c:>22}" for c in cells))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
