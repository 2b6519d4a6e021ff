"""The top-N references (mamo_l2l/evaluation/topn_references.py) on small hand-made cases."""
import copy

import numpy as np
import pytest
import synthetic
import torch

from mamo_l2l.data.types import Task
from mamo_l2l.evaluation.topn_references import (
    EASE_LAMBDAS,
    UNMODELLED,
    ExplicitALS,
    FeatureRows,
    content_scorer,
    ease_matrix,
    fit_references,
    knn_matrix,
    linear_scorer,
    training_gram,
    vocabulary,
)


def _task(support, ratings=None, query=(0,), query_ratings=(5.0,), user=0):
    support = np.asarray(support, dtype=np.int64)
    ratings = np.full(support.size, 5.0, np.float32) if ratings is None else np.asarray(ratings, np.float32)
    return Task(user, support, ratings, np.asarray(query, np.int64), np.asarray(query_ratings, np.float32))


def test_ease_is_steck_closed_form():
    rng = np.random.default_rng(0)
    x = (rng.random((30, 6)) < 0.4).astype(np.float64)
    lam = 3.0
    p = np.linalg.inv(x.T @ x + lam * np.eye(6))
    expected = np.eye(6) - p / np.diag(p)[None, :]
    b = ease_matrix(torch.from_numpy(x.T @ x), lam).double().numpy()
    np.testing.assert_allclose(b, expected, atol=1e-5)
    assert np.abs(np.diag(b)).max() < 1e-6
    # it is the constrained least squares min |X - XB|^2 + lam |B|^2, diag B = 0: column 0 by hand
    others = x[:, 1:]
    col = np.linalg.solve(others.T @ others + lam * np.eye(5), others.T @ x[:, 0])
    np.testing.assert_allclose(b[1:, 0], col, atol=1e-5)
    scores = linear_scorer(torch.from_numpy(b).float(), np.arange(6))([_task([1, 2])], np.array([0, 3]))
    np.testing.assert_allclose(scores[0], b[1, [0, 3]] + b[2, [0, 3]], atol=1e-5)


def test_item_knn_cosine_with_shrink_and_neighbours():
    x = torch.tensor([[1, 1, 0], [1, 1, 1], [0, 1, 1], [1, 0, 0]], dtype=torch.float64)
    gram = x.T @ x
    s = knn_matrix(gram, 0, 0.0).double()
    assert s[0, 1].item() == pytest.approx(2 / np.sqrt(3 * 3)) and s[0, 0].item() == 0.0
    assert s[0, 2].item() == pytest.approx(1 / np.sqrt(3 * 2))
    shrunk = knn_matrix(gram, 0, 1.0).double()
    assert shrunk[0, 1].item() == pytest.approx(2 / (3 + 1))
    top1 = knn_matrix(gram, 1, 0.0)
    assert (top1 != 0).sum(0).tolist() == [1, 1, 1]           # one neighbour kept per column
    assert top1[1, 0].item() == pytest.approx(2 / 3)            # item 0's nearest is item 1


def test_explicit_als_recovers_biases_and_folds_in_new_users():
    rng = np.random.default_rng(1)
    n_users, n_items = 40, 15
    b_u, b_i = rng.normal(0, 0.5, n_users), rng.normal(0, 0.5, n_items)
    p, q = rng.normal(0, 0.5, (n_users, 2)), rng.normal(0, 0.5, (n_items, 2))
    r = 3.0 + b_u[:, None] + b_i[None, :] + p @ q.T
    train = [Task(u, np.arange(10), r[u, :10].astype(np.float32), np.arange(10, 15), r[u, 10:].astype(np.float32))
             for u in range(n_users - 1)]
    als = ExplicitALS(train, n_items, factors=2, lam=1e-3, seed=0, iters=30)
    new = n_users - 1
    t = Task(new, np.arange(12), r[new, :12].astype(np.float32), np.arange(12, 15), r[new, 12:].astype(np.float32))
    pred = als.predict([t], np.arange(12, 15))[0]
    np.testing.assert_allclose(pred, r[new, 12:], atol=0.05)
    clipped = als.query_predictions([t], (1.0, 5.0))[0]
    np.testing.assert_allclose(clipped, np.clip(r[new, 12:], 1, 5), atol=0.05)
    # an item without training ratings: b_i = 0, q_i = 0 -> mu + b_u for every such item
    als_short = ExplicitALS(train, n_items + 2, factors=2, lam=1e-3, seed=0, iters=5)
    s = als_short.predict([t], np.array([n_items, n_items + 1]))[0]
    assert s[0] == pytest.approx(s[1])


def test_content_knn_scores_items_like_the_liked_support_items():
    data = synthetic.encoded(n_items=6)
    data.item_x[:] = np.array([[1, 3, 0, 0], [1, 3, 0, 0], [2, 4, 5, 0], [2, 4, 5, 0], [1, 3, 4, 0], [6, 7, 0, 0]])
    f = FeatureRows(data, "binary")
    norms = np.sqrt(np.bincount(np.repeat(np.arange(6), np.diff(f.indptr)), weights=f.values.astype(np.float64) ** 2))
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)
    score = content_scorer(f, 4.0)
    # item 0 liked (5), item 2 disliked (1): item 1 (same features as 0) first, item 3 (as 2) below item 4
    s = score([_task([0, 2], [5.0, 1.0])], np.array([1, 3, 4, 5]))[0]
    assert s[0] == pytest.approx(1.0) and s[3] == 0.0 and s[1] == pytest.approx(0.0) and s[2] > 0
    # nothing liked: every support item counts
    s = score([_task([0, 2], [1.0, 1.0])], np.array([1, 3]))[0]
    assert s[0] == pytest.approx(1.0) and s[1] == pytest.approx(1.0)
    # idf weighting: item 4's values are shared by different numbers of items, so the scores change
    idf = content_scorer(FeatureRows(data, "idf"), 4.0)
    assert not np.allclose(idf([_task([4], [5.0])], np.arange(6)), score([_task([4], [5.0])], np.arange(6)))


def test_content_knn_equals_the_dense_cosine_on_random_features():
    data = synthetic.encoded(n_items=40)
    rng = np.random.default_rng(3)
    data.item_x[:] = rng.integers(0, 6, size=data.item_x.shape)
    data.item_x[:, 0] = 0   # a PAD column: left out
    for weighting in ("binary", "idf"):
        f = FeatureRows(data, weighting)
        dense = np.zeros((40, f.n_values))
        for i in range(40):
            cols = f.cols[f.indptr[i]:f.indptr[i + 1]]
            dense[i, cols] = f.values[f.indptr[i]:f.indptr[i + 1]]
        tasks = [_task(rng.choice(40, 5, replace=False), rng.choice([1.0, 5.0], 5)) for _ in range(7)]
        cand = np.sort(rng.choice(40, 25, replace=False))
        got = content_scorer(f, 4.0)(tasks, cand)
        for r, t in enumerate(tasks):
            liked = t.support_items[t.support_ratings >= 4.0]
            liked = liked if liked.size else t.support_items
            np.testing.assert_allclose(got[r], dense[cand] @ dense[liked].sum(0), atol=1e-5)


def test_vocabulary_bounds_the_dense_matrices_and_unmodelled_items_rank_last():
    train = [_task([0, 1, 2], query=(3,)), _task([0, 1], query=(4,)), _task([0, 5], query=(1,))]
    assert vocabulary(train, 8).tolist() == [0, 1, 2, 3, 4, 5]          # everything fits
    assert vocabulary(train, 8, max_items=3).tolist() == [0, 1]         # at least 2 ratings: 2 items
    assert vocabulary(train, 8, max_items=1).tolist() == []             # none has 4
    vocab = vocabulary(train, 8, max_items=3)
    gram = training_gram(train, vocab)
    assert gram.tolist() == [[3.0, 3.0], [3.0, 3.0]]   # items 0 and 1 together in 3 tasks (support or query)
    score = linear_scorer(torch.tensor([[0.0, 2.0], [1.0, 0.0]]), vocab)
    s = score([_task([0, 6]), _task([5])], np.array([1, 0, 7]))
    assert s[0].tolist() == [2.0, 0.0, UNMODELLED] and s[1].tolist() == [0.0, 0.0, UNMODELLED]


def test_choices_use_the_validation_users_only():
    b = synthetic.bundle(n_train=10, n_valid=4)
    _, _, chosen = fit_references(b.splits, b.data, 4.0, seed=0)
    assert chosen["ease"]["chosen"]["lambda"] in EASE_LAMBDAS
    assert set(chosen) == {"ease", "item-knn", "als", "content-knn", "choice-prior"}
    other = copy.deepcopy(b.splits)
    for tasks in other.test.values():                    # different test users: the same choices
        for t in tasks:
            t.query_ratings[:] = 6.0 - t.query_ratings
    _, _, again = fit_references(other, b.data, 4.0, seed=0)
    assert again == chosen
