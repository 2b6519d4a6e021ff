"""The weights of the ranking score (docs/algorithm.md, "Ranking score"; the score itself is
mamo_l2l/evaluation/ranking.py): w of the choice prior from ``WEIGHTS`` and, for a model with a
choice head, v of its scores from ``CHOICE_WEIGHTS``, chosen after training as the pair with the
best catalogue Recall@10 of the validation users (candidates: the training items; on ties the
smallest v, then the smallest w)."""
from __future__ import annotations

import time
from typing import Any, Dict, Optional, Tuple

import numpy as np

from mamo_l2l.data.identity import training_items
from mamo_l2l.evaluation.catalogue import (
    CatalogueAccumulator,
    CatalogueTargets,
    UserItems,
    catalogue_scores,
    relevant_threshold,
)
from mamo_l2l.evaluation.ranking import Ranking, choice_prior, choice_scores

#: the weights tried on the validation users (docs/algorithm.md)
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)
#: the weights v of the choice head's scores tried (with a choice head; else v = 0)
CHOICE_WEIGHTS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def weight_key(w: float, v: float) -> str:
    return f"{w:g}" if v == 0 else f"{w:g},{v:g}"


def select_ranking(run, weights=WEIGHTS, choice_weights=CHOICE_WEIGHTS) -> Tuple[Ranking, Dict[str, Any]]:
    """Fit c on the training tasks and choose (w, v) on the validation users' catalogue
    Recall@10 (candidates: the training items). Returns the Ranking and what to record (the
    Recall@10 and NDCG@10 of every pair, keyed "w" when v = 0, else "w,v")."""
    bundle, t = run.bundle, run.config.train
    prior = choice_prior(bundle.data, bundle.splits.train, t.seed)
    valid = bundle.splits.valid
    if not valid:
        return Ranking(0.0, prior), {"weight": 0.0, "valid": {}}
    candidates = training_items(bundle.splits)
    threshold = relevant_threshold(run.config.data.relevant_rating, bundle.data.rating_range)
    raw = catalogue_scores(run.model, run.algorithm, run.backend, valid, candidates, bundle.data, run.inner, t.device)
    choice = choice_scores(run.model, valid, candidates, bundle.data, t.device)
    pairs = [(w, v) for v in (choice_weights if choice is not None else (0.0,)) for w in weights]
    table, rated = {}, UserItems(bundle.data)
    block = CatalogueTargets(valid, candidates, threshold, rated).block(0, len(valid))   # once for all pairs
    raw = block.masked(raw)   # known items at -inf once: w c_i + v s_ui (finite) keeps them there
    choice = None if choice is None else choice[block.kept]
    for w, v in pairs:
        acc = CatalogueAccumulator(candidates, threshold)   # the block already leaves out what is rated
        acc.add_masked(block, Ranking(w, prior, v).scores(raw, candidates, choice))
        r = acc.result()
        table[weight_key(w, v)] = {"recall@10": r["recall@10"], "ndcg@10": r["ndcg@10"]}
    w, v = max(pairs, key=lambda p: (np.nan_to_num(table[weight_key(*p)]["recall@10"], nan=-1.0), -p[1], -p[0]))
    return Ranking(float(w), prior, float(v)), {"weight": float(w), "choice_weight": float(v), "valid": table}


def choose_ranking(run) -> Tuple[Optional[Ranking], Optional[Dict[str, Any]]]:
    """After training (train.fit): the run's Ranking and its record when ``model.choice_prior`` is
    on and the model is scored through a backend; (None, None) otherwise."""
    if not run.config.model.choice_prior or getattr(run.algorithm, "predict_direct", None) is not None:
        return None, None
    started = time.perf_counter()
    chosen = select_ranking(run)
    run.timing["ranking_seconds"] = time.perf_counter() - started   # kept by fit in metrics.json timing
    return chosen


