"""Where a trained model's ordering of a user's items comes from (docs/results.md, "Ranking").

Validation users only; the test scenarios are never scored. For each run folder (``RUN/best.pt``
as ``mamo-l2l train`` writes it) it prints the validation nDCG@3 (and MAE) of:
- the model after 0, 1 and 5 local steps (the run's local learning rate): does adapting to the
  user's support set change the order of the query items, or only the level?
- the trained item bias b_i alone, and the shrunk training item means it started from
  (``model.item_bias``; needs an item identity field): how much of the ordering is the bias?
- the start's prediction plus a per-user ridge regression of the support residuals on the trained
  item embedding e_i (the item network's output) and a constant, for each penalty in ``--ridge``:
  how much per-user taste, linear in the learned item space, the support set reveals. All
  penalties are printed (choosing one here would be choosing on the same users).
- with ``--als K``: the same question in a collaborative item space: item factors of ALS with
  biases on the training tasks' ratings (mamo_l2l/models/factors.py, rank K), each validation user
  folded in from the support set, (a) by ridge (the ``--ridge`` penalties) and (b) by one
  gradient step from zero, b_i + a q_i . mean_s((r_s - b_s - mean) q_s), for a in ``--steps``;
  the shrunk item means (where the model's item bias starts) alone are the reference. This is what
  ``model.taste_dim`` builds into the model (docs/algorithm.md, "Taste factors").

    python studies/ordering_diagnostics.py runs/mamo-s0 runs/mamo-s1 runs/mamo-s2
"""

from __future__ import annotations

import argparse

import numpy as np
import torch


def _local_steps(run, steps):
    from mamo_l2l.backends.base import InnerLoop
    from mamo_l2l.evaluation.scoring import score_tasks

    inner = InnerLoop(steps, run.config.train.local_lr, True)
    b = run.bundle
    return score_tasks(run.model, run.algorithm, run.backend, b.splits.valid, b.data, inner)


def _bias_alone(run):
    """(nDCG@3 of the trained bias, nDCG@3 of its starting values) on the validation tasks."""
    from mamo_l2l.data.batching import task_ratings
    from mamo_l2l.evaluation.metrics import scenario_metrics

    emb, data, sp = run.model.item_embedder, run.bundle.data, run.bundle.splits
    if getattr(emb, "bias", None) is None:
        return None
    rows = torch.from_numpy(data.item_x[:, emb.bias_column].astype(np.int64))
    trained = emb.bias.weight.detach().reshape(-1)[rows].numpy()
    items, ratings = task_ratings(sp.train)
    n = len(data.item_ids)
    cnt = np.bincount(items, minlength=n)
    sums = np.bincount(items, weights=ratings, minlength=n)
    k = run.config.model.item_bias_shrinkage
    start = np.where(cnt > 0, (sums - cnt * ratings.mean()) / (cnt + k), 0.0)
    truth = [t.query_ratings for t in sp.valid]
    return (
        scenario_metrics([trained[t.query_items] for t in sp.valid], truth)["ndcg@3"],
        scenario_metrics([start[t.query_items] for t in sp.valid], truth)["ndcg@3"],
    )


def _ridge_taste(run, penalties):
    """nDCG@3 of start + per-user ridge fit of the support residuals on [e_i, 1], per penalty."""
    from mamo_l2l.evaluation.metrics import scenario_metrics

    model, data, head = run.model, run.bundle.data, run.model.head
    if not hasattr(head, "item_net"):
        return None
    extra = getattr(head, "extra", 1 if getattr(head, "item_bias", False) else 0)  # columns item_net skips
    fits = {lam: [] for lam in penalties}
    starts, truth = [], []
    for t in run.bundle.splits.valid:
        with torch.no_grad():
            p_u = model.user_embedder(torch.from_numpy(data.user_x[t.user]))
            p_s = model.item_embedder(torch.from_numpy(data.item_x[t.support_items]))
            p_q = model.item_embedder(torch.from_numpy(data.item_x[t.query_items]))
            overrides, _ = run.algorithm.start(p_u)
            params = {**dict(head.named_parameters()), **overrides}
            ys = torch.func.functional_call(head, params, (p_u, p_s)).numpy()
            yq = torch.func.functional_call(head, params, (p_u, p_q)).numpy()
            es = head.item_net(p_s[:, : p_s.shape[-1] - extra]).numpy()
            eq = head.item_net(p_q[:, : p_q.shape[-1] - extra]).numpy()
        xs, xq = np.c_[es, np.ones(len(es))], np.c_[eq, np.ones(len(eq))]
        resid = t.support_ratings - ys
        for lam in penalties:
            w = np.linalg.solve(xs.T @ xs + lam * np.eye(xs.shape[1]), xs.T @ resid)
            fits[lam].append(yq + xq @ w)
        starts.append(yq)
        truth.append(t.query_ratings)
    out = {"start": scenario_metrics(starts, truth)["ndcg@3"]}
    out.update({lam: scenario_metrics(p, truth)["ndcg@3"] for lam, p in fits.items()})
    return out


def _als_fold_in(run, k, penalties, steps):
    """Validation nDCG@3 of the shrunk item means alone, + ridge fold-in, + one-step fold-in."""
    from mamo_l2l.data.batching import rating_tasks, task_ratings
    from mamo_l2l.evaluation.metrics import scenario_metrics
    from mamo_l2l.models import factors

    sp, n_items = run.bundle.splits, len(run.bundle.data.item_ids)
    tasks = sp.train
    items, r = task_ratings(tasks)
    q = factors.als_item_factors(
        rating_tasks(tasks), items, r, len(tasks), n_items, k, seed=run.config.train.seed
    ).astype(np.float64)
    # item biases: the shrunk training means, where the model's item bias starts
    mu, n = r.mean(), np.bincount(items, minlength=n_items)
    b_i = (np.bincount(items, weights=r, minlength=n_items) - n * mu) / (n + run.config.model.item_bias_shrinkage)
    truth, base = [], []
    ridge = {lam: [] for lam in penalties}
    one = {a: [] for a in steps}
    for t in sp.valid:
        y = t.support_ratings - mu - b_i[t.support_items]
        xs, xq = np.c_[q[t.support_items], np.ones(y.size)], np.c_[q[t.query_items], np.ones(len(t.query_items))]
        for lam in penalties:
            w = np.linalg.solve(xs.T @ xs + lam * np.eye(k + 1), xs.T @ y)
            ridge[lam].append(b_i[t.query_items] + xq @ w)
        g = q[t.support_items].T @ (y - y.mean()) / y.size
        for a in steps:
            one[a].append(b_i[t.query_items] + a * q[t.query_items] @ g)
        base.append(b_i[t.query_items])
        truth.append(t.query_ratings)
    nd = lambda p: scenario_metrics(p, truth)["ndcg@3"]
    return nd(base), {lam: nd(p) for lam, p in ridge.items()}, {a: nd(p) for a, p in one.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="run folders (each with best.pt)")
    ap.add_argument("--ridge", default="1,10,100,1000", help="comma-separated ridge penalties")
    ap.add_argument("--als", type=int, default=0, help="also fold users into ALS item factors of this rank")
    ap.add_argument("--steps", default="0.3,1,3,10", help="comma-separated one-step weights a (with --als)")
    args = ap.parse_args()
    from mamo_l2l.api.load import load_run

    penalties = [float(x) for x in args.ridge.split(",")]
    for folder in args.runs:
        run = load_run(f"{folder}/best.pt")
        steps = {s: _local_steps(run, s) for s in (0, 1, 5)}
        print(f"{folder}: validation users {len(run.bundle.splits.valid)}")
        print(
            "  local steps   "
            + " | ".join(f"{s}: nDCG@3 {m['ndcg@3']:.4f} MAE {m['mae']:.4f}" for s, m in steps.items())
        )
        bias = _bias_alone(run)
        if bias is not None:
            print(f"  item bias alone: nDCG@3 {bias[0]:.4f} (its starting values {bias[1]:.4f})")
        ridge = _ridge_taste(run, penalties)
        if ridge is not None:
            print(
                f"  start {ridge['start']:.4f}; + per-user ridge taste on e_i: "
                + " | ".join(f"penalty {lam:g}: {ridge[lam]:.4f}" for lam in penalties),
                flush=True,
            )
        if args.als:
            steps = [float(x) for x in args.steps.split(",")]
            base, by_ridge, by_step = _als_fold_in(run, args.als, penalties, steps)
            print(
                f"  ALS rank {args.als}: shrunk item means alone {base:.4f}; ridge fold-in "
                + " | ".join(f"penalty {lam:g}: {v:.4f}" for lam, v in by_ridge.items())
                + "; one step "
                + " | ".join(f"a {a:g}: {v:.4f}" for a, v in by_step.items()),
                flush=True,
            )


if __name__ == "__main__":
    main()
