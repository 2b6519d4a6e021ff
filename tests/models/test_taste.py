"""Item taste factors and the per-user taste vector (model.taste_dim, docs/algorithm.md "The
recommender"): the ALS start, the prediction term, what one local step fits, backends agree."""

import numpy as np
import pytest
import synthetic
import torch

from mamo_l2l.algorithms import build_model
from mamo_l2l.backends import get_backend
from mamo_l2l.backends.base import InnerLoop
from mamo_l2l.core.config import Config, ModelConfig
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.batching import pad_tasks
from mamo_l2l.models.factors import als_item_factors

K = 4


def _data_and_tasks():
    return synthetic.with_identity()


def _build(model_name="mamo", data=None, taste_dim=K):
    return synthetic.build_with_identity(model_name, data, taste_dim=taste_dim)


def test_als_recovers_a_low_rank_rating_matrix_better_than_item_means():
    rng = np.random.default_rng(0)
    n_users, n_items, k = 300, 60, 2
    p, q = rng.normal(size=(n_users, k)), rng.normal(size=(n_items, k))
    users, items = np.divmod(rng.choice(n_users * n_items, 9000, replace=False), n_items)
    ratings = 3.0 + (p[users] * q[items]).sum(1) + 0.1 * rng.normal(size=users.size)
    fitted = als_item_factors(users, items, ratings, n_users, n_items + 5, k, seed=0, penalty=1.0)
    assert fitted.shape == (n_items + 5, k) and fitted.dtype == np.float32
    assert np.all(fitted[n_items:] == 0)                                 # never rated: zero rows
    # fold each user in on the fitted factors (least squares): the residual is near the noise level
    err, err_mean = [], []
    item_mean = np.bincount(items, ratings, n_items) / np.bincount(items, minlength=n_items)
    for u in range(0, n_users, 10):
        idx = users == u
        x = np.c_[fitted[items[idx]], np.ones(idx.sum())]
        w = np.linalg.lstsq(x, ratings[idx], rcond=None)[0]
        err.append(np.mean((x @ w - ratings[idx]) ** 2))
        err_mean.append(np.mean((item_mean[items[idx]] - ratings[idx]) ** 2))
    assert np.mean(err) < 0.1 * np.mean(err_mean)
    again = als_item_factors(users, items, ratings, n_users, n_items + 5, k, seed=0, penalty=1.0)
    assert np.array_equal(fitted, again)                                 # seeded


def test_taste_term_adds_q_dot_t_and_needs_the_item_bias():
    data, tasks = _data_and_tasks()
    model, _ = _build(data=data)
    head, emb = model.head, model.item_embedder
    assert emb.out_dim == emb.dim * len(data.item_layout) + K + 1 and head.taste.shape == (K,)
    user_x = torch.from_numpy(data.user_x[:1])[0]
    item_x = torch.from_numpy(data.item_x[:5])
    before = model(user_x, item_x).detach()
    rows = item_x[:, emb.bias_column]
    q = torch.arange(5 * K, dtype=torch.float32).reshape(5, K) / 10
    emb.set_factors(rows, q)
    assert torch.allclose(model(user_x, item_x).detach(), before)       # t starts at 0: no effect
    with torch.no_grad():
        head.taste.copy_(torch.tensor([1.0, -1.0, 0.5, 2.0]))
    assert torch.allclose(model(user_x, item_x).detach() - before, q @ head.taste.detach(), atol=1e-5)
    with pytest.raises(MamoError, match="taste_dim"):
        Config.from_dict({"model": {"taste_dim": -1}}).validate()
    torch.manual_seed(0)
    no_bias, _ = build_model("mamo", ModelConfig(taste_dim=K, item_bias=False), data, 3.0)   # off with the bias
    assert no_bias.item_embedder.factors is None and not hasattr(no_bias.head, "taste")
    plain, _ = _build(data=synthetic.encoded())                          # no identity field: no factors
    assert plain.item_embedder.factors is None and not hasattr(plain.head, "taste")


def test_factors_start_at_scaled_als_factors_of_the_training_ratings():
    data, tasks = _data_and_tasks()
    model, _ = _build(data=data)
    model.init_item_factors(tasks, data.item_x, scale=3.0, seed=7)
    emb = model.item_embedder
    users = np.concatenate([np.full(len(t.support_items) + len(t.query_items), j) for j, t in enumerate(tasks)])
    items = np.concatenate([np.r_[t.support_items, t.query_items] for t in tasks])
    ratings = np.concatenate([np.r_[t.support_ratings, t.query_ratings] for t in tasks])
    want = 3.0 * als_item_factors(users, items, ratings, len(tasks), len(data.item_ids), K, seed=7)
    rows = torch.from_numpy(data.item_x[:, emb.bias_column].astype(np.int64))
    got = emb.factors.weight.detach()[rows].numpy()
    rated = np.bincount(items, minlength=len(data.item_ids)) > 0
    np.testing.assert_allclose(got[rated], want[rated], atol=1e-6)
    assert np.abs(got[rated]).max() > 0 and np.all(got[~rated] == 0)
    assert torch.all(emb.factors.weight[1] == 0)                         # UNKNOWN: a new item has no taste term


def test_one_local_step_fits_the_taste_vector_to_the_support_residuals():
    """With every other parameter held, one SGD step on the support MSE moves t by
    2 rho / n * sum_s (y_s - yhat_s) q_s: the residual-weighted mean of the support items' factors."""
    data, tasks = _data_and_tasks()
    model, algo = _build("maml", data=data)
    model.init_item_factors(tasks, data.item_x, scale=2.0, seed=0)
    t = tasks[0]
    p_u = model.user_embedder(torch.from_numpy(data.user_x[t.user]))
    p_s = model.item_embedder(torch.from_numpy(data.item_x[t.support_items]))
    y = torch.from_numpy(t.support_ratings)
    rho = 0.05
    adapted = get_backend("func").adapt(model.head, {}, lambda f: ((f(p_u, p_s) - y) ** 2).mean(),
                                        InnerLoop(1, rho, True), False)
    with torch.no_grad():
        resid = y - model.head(p_u, p_s)
        q = p_s[:, -1 - K:-1]
        want = 2 * rho / len(y) * (resid.unsqueeze(1) * q).sum(0)
    assert torch.allclose(adapted.params["taste"], want, atol=1e-6)


@pytest.mark.parametrize("model_name", ["mamo", "maml"])
@pytest.mark.parametrize("other", ["l2l", "higher"])
def test_backends_agree_with_taste_factors(model_name, other):
    data, tasks = _data_and_tasks()
    outs = {}
    for backend in ("func", other):
        model, algo = _build(model_name, data=data)
        emb = model.item_embedder
        rows = torch.arange(emb.factors.num_embeddings)[2:]                # every identity value
        emb.set_factors(rows, torch.randn(len(rows), K, generator=torch.Generator().manual_seed(1)))
        out = get_backend(backend).run_batch(model, algo, pad_tasks(tasks, data), InnerLoop(2, 0.05, False),
                                             training=True)
        loss = out.query_loss.mean()
        outs[backend] = (out, synthetic.grads(model, loss), [n for n, _ in model.named_parameters()])
    (a, ga, names), (b, gb, _) = outs["func"], outs[other]
    assert torch.allclose(a.query_pred, b.query_pred, atol=1e-5)
    g_factors = ga[names.index("item_embedder.factors.weight")]
    assert g_factors.abs().max() > 1e-5                                   # the outer gradient reaches q_i
    for x, y in zip(ga, gb):
        assert torch.allclose(x, y, atol=1e-5)
