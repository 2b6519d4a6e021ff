"""Scoring: adapt on each test user's support set, predict the query set, compute the metrics.

Evaluation never changes a parameter or a memory (no writes, no optimiser), and each user is
adapted independently, so the order of test users does not matter.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Optional, Sequence

import numpy as np

from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.backends.base import Backend, InnerLoop
from mamo_l2l.data.batching import chunks, pad_tasks
from mamo_l2l.data.identity import mask_identity
from mamo_l2l.data.types import SCENARIOS, EncodedDataset, Splits, Task
from mamo_l2l.evaluation.metrics import CATALOGUE_METRICS, LIST_METRICS, scenario_metrics
from mamo_l2l.evaluation.references import reference_predictions


def predict_tasks(model, algorithm: Algorithm, backend: Backend, tasks: Sequence[Task], data: EncodedDataset,
                  inner: InnerLoop, device: str = "cpu", clip: bool = True) -> List[np.ndarray]:
    """Per task, the predicted query ratings (numpy, in the task's query order), clipped to the
    rating range unless ``clip=False`` (catalogue ranking ranks unclipped scores)."""
    lo, hi = data.rating_range
    if not clip:
        lo, hi = -np.inf, np.inf
    direct = getattr(algorithm, "predict_direct", None)
    if direct is not None:  # a model that predicts without a backend (e.g. item-mean)
        return [np.clip(np.asarray(p, dtype=np.float64), lo, hi) for p in direct(tasks)]
    out: List[np.ndarray] = []
    was_training = model.training
    model.eval()
    try:
        for group in chunks(tasks, backend.eval_chunk):
            batch = pad_tasks(group, data).to(device)
            res = backend.run_batch(model, algorithm, batch, inner, training=False)
            pred = res.query_pred.cpu().numpy().clip(lo, hi)
            for k, t in enumerate(group):
                out.append(pred[k, :len(t.query_items)].astype(np.float64))
    finally:
        model.train(was_training)
    return out


def score_tasks(model, algorithm, backend, tasks, data, inner, device="cpu") -> Dict[str, float]:
    preds = predict_tasks(model, algorithm, backend, tasks, data, inner, device)
    return scenario_metrics(preds, [t.query_ratings for t in tasks])


def validation_metrics(model, algorithm, backend, tasks, data, inner, device="cpu") -> Dict[str, float]:
    """The validation users' metrics for model selection (train.fit): ``score_tasks``, plus, when
    the items have an identity field, ``masked_mae`` and ``masked_ndcg@3`` with every identity read
    as UNKNOWN (data.identity.mask_identity: the validation stand-in for new items, whose identity
    and item bias are unknown), and ``ndcg@3+masked``, the mean of the two nDCG@3 (without an
    identity field: nDCG@3 itself)."""
    v = dict(score_tasks(model, algorithm, backend, tasks, data, inner, device))
    masked = mask_identity(data)
    if masked is not data:
        m = score_tasks(model, algorithm, backend, tasks, masked, inner, device)
        v.update({"masked_mae": m["mae"], "masked_ndcg@3": m["ndcg@3"]})
    v["ndcg@3+masked"] = (v["ndcg@3"] + v.get("masked_ndcg@3", v["ndcg@3"])) / 2
    return v


def evaluate_scenarios(model, algorithm: Algorithm, backend: Backend, splits: Splits, data: EncodedDataset,
                       inner: InnerLoop, scenarios: Sequence[str] = SCENARIOS, device: str = "cpu",
                       progress: bool = False) -> Dict[str, Dict[str, float]]:
    """Metrics for each requested scenario's test tasks."""
    results = {}
    for name in scenarios:
        results[name] = score_tasks(model, algorithm, backend, splits.test[name], data, inner, device)
        if progress:
            r = results[name]
            logging.getLogger("mamo_l2l").info("  evaluated %s: %d users, MAE %.4f", name, r["users"], r["mae"])
    return results


def evaluate_references(splits: Splits, data: EncodedDataset, scenarios: Sequence[str] = SCENARIOS
                        ) -> Dict[str, Dict[str, Dict[str, float]]]:
    """Global-mean and item-mean references, fitted on the training tasks, on each scenario."""
    lo, hi = data.rating_range
    refs = reference_predictions(splits.train, len(data.item_ids))
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for ref_name, ref in refs.items():
        out[ref_name] = {}
        for name in scenarios:
            tasks = splits.test[name]
            preds = [np.clip(ref.predict(t), lo, hi) for t in tasks]
            out[ref_name][name] = scenario_metrics(preds, [t.query_ratings for t in tasks])
    return out


#: what "warm test: <warm_eval>" in a table's title means (docs/protocol.md, Warm test)
WARM_NOTES = {
    "heldout": "warm test: heldout = the warm rows score ratings of training users that training never saw "
               "(held out per user); `seen` would score the training tasks' own query sets",
    "seen": "warm test: seen = the warm rows score the training tasks' own query sets (training performance, as "
            "the MeLU paper reports); `heldout` scores ratings that training never saw",
}

#: one line per reference row of the tables (docs/algorithm.md, References)
REFERENCE_NOTES = (
    "global_mean: every rating predicted as the mean training rating; in the catalogue ranking all items tie, "
    "so its figures are a random ranking's expected ones",
    "item_mean: the item's mean training rating, the global mean for an item without training ratings, so on "
    "new items (item_cold, user_item_cold) it equals global_mean; in the catalogue ranking it puts items with a "
    "few high ratings first, hence near-zero figures on existing items",
    "popularity (catalogue ranking only): items ordered by their number of training ratings; new items have "
    "none, so there it ties every item, like global_mean",
    "ease, item-knn (catalogue only), als (ratings and catalogue): collaborative references fitted on the "
    "training tasks, the user folded in from the support set, hyperparameters chosen on the validation users "
    "(docs/algorithm.md, Top-N references); they know nothing of new items, so there they tie every item",
    "content-knn (catalogue only): items scored by the similarity of their feature rows to the user's liked "
    "support items; choice-prior: the choice prior alone (the model's ranking score without the model)",
    "cover@10 / person@10 / popul@10: share of candidates in some user's top 10 / 1 - mean pairwise overlap of "
    "the users' top-10 lists / share of each list among the 10% most-rated training items",
)


def footnotes(warm_eval: Optional[str], catalogue: bool = True) -> List[str]:
    """The lines under a results table: the warm test and the reference rows."""
    notes = [WARM_NOTES.get(str(warm_eval), f"warm test: {warm_eval}")]
    return notes + [n for n in REFERENCE_NOTES if catalogue or n.startswith(("global_mean", "item_mean"))]


def results_table(metrics: Dict) -> str:
    """The results table of a run's metrics (metrics.json content), titled, with its footnotes."""
    title = (f"{metrics['model']} on {metrics['dataset']} (seed {metrics['seed']}, backend {metrics['backend']}, "
             f"warm test: {metrics['warm_eval']})")
    table = format_table(metrics["model"], metrics["scenarios"], metrics["references"], title=title)
    ranking = metrics.get("ranking")
    catalogue = any("catalogue" in m for m in metrics["scenarios"].values())
    if ranking and catalogue:
        v = ranking.get("choice_weight") or 0.0
        head = f" + {v:g} x choice head score" if v else ""
        table += (f"\n{metrics['model']} ranks the catalogue by predicted rating + {ranking['weight']:g} x item choice "
                  f"prior{head} (the weights chosen on the validation users' Recall@10; docs/algorithm.md, "
                  "Ranking score)")
    if metrics.get("references"):
        table += "\n\n" + "\n".join("* " + n for n in footnotes(metrics.get("warm_eval"), catalogue))
    return table


def format_table(model_name: str, scenarios: Dict[str, Dict[str, float]],
                 references: Optional[Dict[str, Dict[str, Dict[str, float]]]] = None,
                 title: str = "") -> str:
    """A fixed-width results table: one block per scenario, the model and the references."""
    cols = ("mae", "rmse", "ndcg@1", "ndcg@3", "ndcg@5")
    head = f"{'scenario':<15} {'model':<24} {'users':>6} {'ratings':>8} " + " ".join(f"{c.upper():>7}" for c in cols)
    lines = [title] if title else []
    lines += [head, "-" * len(head)]
    for scen, m in scenarios.items():
        rows = [(model_name, m)]
        for ref_name, ref in (references or {}).items():
            if scen in ref and "mae" in ref[scen]:
                rows.append((ref_name, ref[scen]))
        for k, (name, r) in enumerate(rows):
            lines.append(f"{scen if k == 0 else '':<15} {name:<24} {r['users']:>6} {r['ratings']:>8} "
                         + " ".join(f"{r[c]:>7.4f}" for c in cols))
    if any("catalogue" in m for m in scenarios.values()):
        lines += ["", _catalogue_block(model_name, scenarios, references or {})]
    return "\n".join(lines)


def _catalogue_block(model_name: str, scenarios, references) -> str:
    """The catalogue-ranking rows (docs/algorithm.md, Metrics): users scored, candidates, @10
    metrics and the list metrics (coverage, personalisation, popularity; "-" when absent)."""
    threshold = next((m["catalogue"]["relevant_rating"] for m in scenarios.values() if "catalogue" in m), None)
    cols = CATALOGUE_METRICS + LIST_METRICS
    label = {"recall": "Recall", "ndcg": "NDCG", "hit": "Hit", "coverage": "cover", "personalisation": "person",
             "popularity": "popul"}
    head = (f"{'catalogue':<15} {'model':<24} {'users':>6} {'items':>8} "
            + " ".join(f"{label[c.split('@')[0]] + '@' + c.split('@')[1]:>9}" for c in cols))
    lines = [f"catalogue ranking: all candidate items not in the support set; relevant = query rating >= {threshold:g}",
             head, "-" * len(head)]
    for scen, m in scenarios.items():
        if "catalogue" not in m:
            continue
        rows = [(model_name, m["catalogue"])]
        for ref_name, ref in references.items():
            if "catalogue" in ref.get(scen, {}):
                rows.append((ref_name, ref[scen]["catalogue"]))
        for k, (name, r) in enumerate(rows):
            lines.append(f"{scen if k == 0 else '':<15} {name:<24} {r['users']:>6} {r['candidates']:>8} "
                         + " ".join(f"{r[c]:>9.4f}" if c in r else f"{'-':>9}" for c in cols))
    return "\n".join(lines)
