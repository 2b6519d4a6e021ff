"""Metrics against values worked out by hand."""
import math

import numpy as np
import pytest

from mamo_l2l.evaluation.metrics import TIE_TOLERANCE, ndcg_at_k, ndcg_rows, scenario_metrics


def test_ndcg_hand_values():
    pred, true = [1.0, 2.0, 3.0], [5.0, 3.0, 4.0]   # ranked by prediction: true ratings 4, 3, 5
    assert ndcg_at_k(pred, true, 1) == pytest.approx(15 / 31)
    dcg3 = 15 + 7 / math.log2(3) + 31 / 2
    idcg3 = 31 + 15 / math.log2(3) + 7 / 2
    assert ndcg_at_k(pred, true, 3) == pytest.approx(dcg3 / idcg3)
    assert ndcg_at_k(pred, true, 5) == pytest.approx(dcg3 / idcg3)   # k beyond the list: whole list
    assert ndcg_at_k([3.0, 1.0, 2.0], true, 3) == pytest.approx(1.0)


def test_scenario_metrics_pool_all_ratings():
    preds = [np.array([1.0, 2.0]), np.array([4.0, 4.0, 4.0, 4.0])]
    trues = [np.array([2.0, 2.0]), np.array([5.0, 3.0, 4.0, 2.0])]
    m = scenario_metrics(preds, trues)
    assert m["mae"] == pytest.approx((1 + 0 + 1 + 1 + 0 + 2) / 6)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 1 + 1 + 0 + 4) / 6))
    assert m["users"] == 2 and m["ratings"] == 6
    # user 1: order by pred [1, 2] -> true (2, 2): perfect; user 2: all tied -> every position gets
    # the mean gain (31 + 7 + 15 + 3) / 4 = 14 in expectation
    u2 = 14 * (1 + 1 / math.log2(3) + 1 / 2) / (31 + 15 / math.log2(3) + 7 / 2)
    assert m["ndcg@3"] == pytest.approx((1.0 + u2) / 2)


def test_empty_scenario_is_nan_not_an_error():
    m = scenario_metrics([], [])
    assert m["users"] == 0 and math.isnan(m["mae"])


def test_ties_score_the_expected_value_under_random_order():
    # two tied items: each is first with probability 1/2
    assert ndcg_at_k([2.0, 2.0], [1.0, 5.0], 1) == pytest.approx(0.5 * (1 + 31) / 31)
    assert ndcg_at_k([2.0, 2.0], [5.0, 1.0], 1) == pytest.approx(0.5 * (1 + 31) / 31)


def test_constant_predictor_is_independent_of_query_order():
    """A constant predictor's nDCG is the expectation over all orders, whatever the query order
    (the old stable sort gave whatever order the query happened to be listed in)."""
    import itertools
    true = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    pred = np.full(5, 3.5)
    for k in (1, 3, 5):
        brute = np.mean([ndcg_at_k(np.arange(5, 0, -1.0), true[list(p)], k)
                         for p in itertools.permutations(range(5))])
        for order in (range(5), (4, 3, 2, 1, 0), (2, 0, 4, 1, 3)):
            assert ndcg_at_k(pred, true[list(order)], k) == pytest.approx(brute)


def test_partial_ties_average_only_within_the_tied_group():
    import itertools
    pred = np.array([3.0, 1.0, 3.0, 2.0, 2.0, 2.0])
    true = np.array([1.0, 5.0, 4.0, 2.0, 5.0, 3.0])
    for k in (1, 3, 5):
        vals = []
        for p1 in itertools.permutations([0, 2]):
            for p2 in itertools.permutations([3, 4, 5]):
                order = list(p1) + list(p2) + [1]
                vals.append(ndcg_at_k(np.arange(6, 0, -1.0), true[order], k))
        assert ndcg_at_k(pred, true, k) == pytest.approx(np.mean(vals))


def _brute_catalogue(scores, relevant, n_relevant, k):
    """Average of the plain metrics over every order of the tied scores (small lists only)."""
    import itertools
    from collections import defaultdict
    groups = defaultdict(list)
    for i, s in enumerate(scores):
        groups[s].append(i)
    keys = sorted(groups, reverse=True)
    vals = []
    for combo in itertools.product(*(itertools.permutations(groups[s]) for s in keys)):
        ranking = [i for part in combo for i in part][:k]
        hits = [bool(relevant[i]) for i in ranking]
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(n_relevant, k)))
        vals.append((sum(hits) / n_relevant, dcg / idcg, float(any(hits))))
    return tuple(np.mean(vals, axis=0))


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_catalogue_metrics_are_the_expectation_over_tied_orders(k):
    from mamo_l2l.evaluation.metrics import catalogue_user_metrics
    scores = np.array([0.5, 2.0, 1.0, 1.0, 1.0, 0.2, 2.0])
    relevant = np.array([True, False, True, False, True, False, False])
    got = catalogue_user_metrics(scores, relevant, n_relevant=4, k=k)   # one relevant item is no candidate
    assert got == pytest.approx(_brute_catalogue(scores, relevant, 4, k))


def test_catalogue_metrics_hand_values_and_unrankable_items():
    from mamo_l2l.evaluation.metrics import catalogue_user_metrics
    scores = np.array([3.0, 2.0, -np.inf, 1.0])       # -inf: a support item, never ranked
    relevant = np.array([False, True, True, False])
    recall, ndcg, hit = catalogue_user_metrics(scores, relevant, n_relevant=2, k=2)
    assert recall == pytest.approx(0.5) and hit == 1.0
    assert ndcg == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # a constant scorer: every candidate equally likely in the top k
    recall, ndcg, hit = catalogue_user_metrics(np.zeros(10), np.arange(10) < 2, n_relevant=2, k=5)
    assert recall == pytest.approx(0.5) and hit == pytest.approx(1 - (8 * 7 * 6 * 5 * 4) / (10 * 9 * 8 * 7 * 6))


# ------------------------------------------------------------------ audit: near ties (issue 21)
def test_scores_within_the_tolerance_are_tied():
    from mamo_l2l.evaluation.metrics import catalogue_user_metrics
    tiny = TIE_TOLERANCE / 40   # a float32 rounding difference between backends
    rel = np.array([True, False, False, False])
    exact = catalogue_user_metrics(np.array([2.0, 2.0, 1.0, 0.0]), rel, 1, k=1)
    near = catalogue_user_metrics(np.array([2.0, 2.0 + tiny, 1.0, 0.0]), rel, 1, k=1)
    assert exact == pytest.approx((0.5, 0.5, 0.5))
    assert near == pytest.approx(exact)
    assert ndcg_at_k([3.0, 3.0 + tiny, 1.0], [5.0, 1.0, 2.0], 1) == pytest.approx(
        ndcg_at_k([3.0, 3.0, 1.0], [5.0, 1.0, 2.0], 1))
    # beyond the tolerance, an order
    assert catalogue_user_metrics(np.array([2.0, 2.0 + 4 * TIE_TOLERANCE, 1.0, 0.0]), rel, 1, k=1) == (0.0, 0.0, 0.0)


def test_tie_groups_do_not_chain():
    from mamo_l2l.evaluation.metrics import catalogue_user_metrics
    step = 0.6 * TIE_TOLERANCE   # 0 and 1 tie, 1 and 2 would, 0 and 2 do not: groups {0, 1}, {2}
    scores = np.array([1.0, 1.0 - step, 1.0 - 2 * step, 0.0])
    r, _, _ = catalogue_user_metrics(scores, np.array([False, False, True, False]), 1, k=2)
    assert r == 0.0
    r, _, _ = catalogue_user_metrics(scores, np.array([False, True, False, False]), 1, k=1)
    assert r == pytest.approx(0.5)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_users_ndcg_at_once_equals_the_per_user_definition(seed):
    """ndcg_rows (every user at once, padded) against ndcg_at_k user by user: query sets of 0 to
    24 items, exact ties, near ties within the tolerance, chains of near ties, all-zero gains."""
    rng = np.random.default_rng(seed)
    preds, trues = [], []
    for u in range(400):
        n = int(rng.integers(0, 25))
        p = rng.integers(1, 6, n).astype(np.float64)
        p += (rng.random(n) < 0.5) * rng.integers(0, 3, n) * 0.6 * TIE_TOLERANCE   # near ties, chains
        t = rng.integers(1, 6, n).astype(np.float32) * (u % 9 != 0)               # every 9th: no gain
        preds.append(p.astype(np.float32)), trues.append(t)
    ks = (1, 3, 5, 10, 30)
    at_once = ndcg_rows(preds, trues, ks)
    for k in ks:
        one_by_one = np.array([ndcg_at_k(p, t, k) for p, t in zip(preds, trues)])
        np.testing.assert_allclose(at_once[k], one_by_one, rtol=0, atol=1e-12)
    assert 0.0 < at_once[3].mean() < 1.0


# ------------------------------------------------------------------ beyond accuracy (issue 21)
def test_list_metrics_hand_values():
    from mamo_l2l.evaluation.metrics import list_metrics
    popular = np.zeros(10, dtype=bool)
    popular[[0, 1]] = True
    lists = [np.array([0, 2, 3]), np.array([0, 2, 4]), np.array([5, 6, 7])]
    m = list_metrics(lists, 10, popular)
    assert m["coverage@10"] == pytest.approx(7 / 10)
    # Jaccard: (a, b) = 2 / 4, (a, c) = 0, (b, c) = 0 -> mean 1/6
    assert m["personalisation@10"] == pytest.approx(1 - 1 / 6)
    assert m["popularity@10"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    same = list_metrics([np.array([1, 2])] * 4, 5, popular)
    assert same["personalisation@10"] == pytest.approx(0.0) and same["coverage@10"] == pytest.approx(2 / 5)
    assert np.isnan(list_metrics([np.array([1])], 5, popular)["personalisation@10"])


def test_personalisation_samples_at_most_max_users_seeded():
    from mamo_l2l.evaluation.metrics import list_metrics
    rng = np.random.default_rng(0)
    lists = [rng.choice(50, 10, replace=False) for _ in range(40)]
    pop = np.zeros(50, dtype=bool)
    a = list_metrics(lists, 50, pop, seed=1, max_users=10)
    assert a == list_metrics(lists, 50, pop, seed=1, max_users=10)
    assert a["personalisation@10"] != list_metrics(lists, 50, pop, seed=2, max_users=10)["personalisation@10"]


def test_top_list_and_popular_items():
    from mamo_l2l.evaluation.metrics import popular_items, top_list
    s = np.array([0.5, -np.inf, 2.0, 2.0, 1.0])
    assert top_list(s, 3).tolist() == [2, 3, 4]
    assert top_list(s, 10).tolist() == [2, 3, 4, 0]
    counts = np.array([0, 5, 9, 5, 1, 1, 1, 1, 1, 1, 1, 1])   # 11 training items -> ceil(1.1) = 2 popular
    assert np.flatnonzero(popular_items(counts)).tolist() == [1, 2]


# ------------------------------------------------------------------ row-wise at once (issue 21, Speed)
@pytest.mark.parametrize("seed", range(6))
def test_chunk_metrics_and_top_lists_equal_the_per_user_reference(seed):
    from mamo_l2l.evaluation.metrics import (
        TIE_TOLERANCE,
        catalogue_chunk_metrics,
        catalogue_user_metrics,
        top_list,
        top_lists,
    )
    rng = np.random.default_rng(seed)
    b, c = 40, 30
    scores = rng.integers(0, 6, (b, c)).astype(np.float64)           # many exact ties
    scores += rng.choice([0.0, 0.4, 3.0], (b, c)) * TIE_TOLERANCE       # near ties, some chaining
    scores[rng.random((b, c)) < 0.3] = -np.inf                          # known items
    scores[0] = 1.0                                                     # one constant row
    scores[1, 3:] = -np.inf                                             # fewer finite than k
    scores[2] = -np.inf                                                 # nothing rankable
    relevant = rng.random((b, c)) < 0.2
    n_rel = relevant.sum(1) + rng.integers(1, 3, b)
    for k in (1, 3, 10, 40):
        got = catalogue_chunk_metrics(scores, relevant, n_rel, k)
        want = [catalogue_user_metrics(s, r, int(n), k) for s, r, n in zip(scores, relevant, n_rel)]
        np.testing.assert_allclose(got, np.asarray(want), rtol=0, atol=1e-12)
        for row, lst in zip(scores, top_lists(scores, k)):
            assert lst.tolist() == top_list(row, k).tolist()


@pytest.mark.parametrize("levels", [3, 1000, 0])
def test_chunk_metrics_with_ties_beyond_the_window(levels):
    """Rows far longer than k + TIE_WINDOW: a tie group crossing position k that runs past the
    window (few score levels) is counted over the whole row, as the per-user reference counts it."""
    from mamo_l2l.evaluation.metrics import TIE_WINDOW, catalogue_chunk_metrics, catalogue_user_metrics
    rng = np.random.default_rng(levels)
    b, c = 25, 10 + TIE_WINDOW * 4
    scores = rng.integers(0, levels, (b, c)).astype(np.float64) if levels else rng.random((b, c))
    scores[rng.random((b, c)) < 0.1] = -np.inf
    scores[3, 5] = np.nan                                              # not rankable, as -inf
    relevant = rng.random((b, c)) < 0.1
    n_rel = relevant.sum(1) + 1
    got = catalogue_chunk_metrics(scores, relevant, n_rel, 10)
    want = [catalogue_user_metrics(s, r, int(n), 10) for s, r, n in zip(scores, relevant, n_rel)]
    np.testing.assert_allclose(got, np.asarray(want), rtol=0, atol=1e-12)
