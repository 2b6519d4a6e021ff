"""The weight w of the choice prior in the ranking score (docs/algorithm.md, "Ranking score";
the score itself is mamo_l2l/evaluation/ranking.py): chosen after training from ``WEIGHTS``, the
weight with the best catalogue Recall@10 of the validation users (candidates: the training
items; the smallest w on ties)."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from mamo_l2l.data.identity import training_items
from mamo_l2l.evaluation.catalogue import (
    CatalogueAccumulator,
    UserItems,
    catalogue_scores,
    relevant_threshold,
)
from mamo_l2l.evaluation.ranking import Ranking, choice_prior

#: the weights tried on the validation users (docs/algorithm.md)
WEIGHTS = (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0)


def select_ranking(run, weights=WEIGHTS) -> Tuple[Ranking, Dict[str, Any]]:
    """Fit c on the training tasks and choose w on the validation users' catalogue Recall@10
    (candidates: the training items). Returns the Ranking and what to record (the Recall@10 and
    NDCG@10 of every weight)."""
    bundle, t = run.bundle, run.config.train
    prior = choice_prior(bundle.data, bundle.splits.train, t.seed)
    valid = bundle.splits.valid
    if not valid:
        return Ranking(0.0, prior), {"weight": 0.0, "valid": {}}
    candidates = training_items(bundle.splits)
    threshold = relevant_threshold(run.config.data.relevant_rating, bundle.data.rating_range)
    raw = catalogue_scores(run.model, run.algorithm, run.backend, valid, candidates, bundle.data, run.inner, t.device)
    table, rated = {}, UserItems(bundle.data)
    for w in weights:
        acc = CatalogueAccumulator(candidates, threshold, rated)
        ranked = Ranking(w, prior).scores(raw, candidates)
        for task, s in zip(valid, ranked):
            acc.add(task, s)
        r = acc.result()
        table[f"{w:g}"] = {"recall@10": r["recall@10"], "ndcg@10": r["ndcg@10"]}
    best = max(weights, key=lambda w: (np.nan_to_num(table[f"{w:g}"]["recall@10"], nan=-1.0), -w))
    return Ranking(float(best), prior), {"weight": float(best), "valid": table}


def choose_ranking(run) -> Tuple[Optional[Ranking], Optional[Dict[str, Any]]]:
    """After training (train.fit): the run's Ranking and its record when ``model.choice_prior`` is
    on and the model is scored through a backend; (None, None) otherwise."""
    if not run.config.model.choice_prior or getattr(run.algorithm, "predict_direct", None) is not None:
        return None, None
    return select_ranking(run)


