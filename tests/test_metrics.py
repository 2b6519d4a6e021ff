"""Metrics against values worked out by hand."""
import math

import numpy as np
import pytest

from mamo_l2l.metrics import ndcg_at_k, scenario_metrics


def test_ndcg_hand_values():
    pred, true = [1.0, 2.0, 3.0], [5.0, 3.0, 4.0]   # ranked by prediction: true ratings 4, 3, 5
    assert ndcg_at_k(pred, true, 1) == pytest.approx(15 / 31)
    dcg3 = 15 + 7 / math.log2(3) + 31 / 2
    idcg3 = 31 + 15 / math.log2(3) + 7 / 2
    assert ndcg_at_k(pred, true, 3) == pytest.approx(dcg3 / idcg3)
    assert ndcg_at_k(pred, true, 5) == pytest.approx(dcg3 / idcg3)   # k beyond the list: whole list
    assert ndcg_at_k([3.0, 1.0, 2.0], true, 3) == pytest.approx(1.0)


def test_ties_break_by_query_position():
    assert ndcg_at_k([2.0, 2.0], [1.0, 5.0], 1) == pytest.approx(1 / 31)
    assert ndcg_at_k([2.0, 2.0], [5.0, 1.0], 1) == pytest.approx(1.0)


def test_scenario_metrics_pool_all_ratings():
    preds = [np.array([1.0, 2.0]), np.array([4.0, 4.0, 4.0, 4.0])]
    trues = [np.array([2.0, 2.0]), np.array([5.0, 3.0, 4.0, 2.0])]
    m = scenario_metrics(preds, trues)
    assert m["mae"] == pytest.approx((1 + 0 + 1 + 1 + 0 + 2) / 6)
    assert m["rmse"] == pytest.approx(math.sqrt((1 + 0 + 1 + 1 + 0 + 4) / 6))
    assert m["users"] == 2 and m["ratings"] == 6
    # user 1: order by pred [1, 2] -> true (2, 2): perfect; user 2: all tied -> true order 5, 3, 4, 2
    u2 = (31 + 7 / math.log2(3) + 15 / 2) / (31 + 15 / math.log2(3) + 7 / 2)
    assert m["ndcg@3"] == pytest.approx((1.0 + u2) / 2)


def test_empty_scenario_is_nan_not_an_error():
    m = scenario_metrics([], [])
    assert m["users"] == 0 and math.isnan(m["mae"])
