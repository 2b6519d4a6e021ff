"""The choice head (mamo_l2l/models/choice.py, docs/algorithm.md "The choice head"): the fold-in is
implicit ALS's weighted ridge solve, the implicit ALS start solves the same problem per row, the
outer loss is the softmax over the catalogue without the support items, and the head learns."""
import numpy as np
import pytest
import synthetic
import torch

from mamo_l2l.data.batching import pad_tasks
from mamo_l2l.data.types import FIRST_VALUE, UNKNOWN
from mamo_l2l.models.choice import ChoiceHead
from mamo_l2l.models.factors import implicit_item_factors, implicit_side


def _head(dim=4, alpha=5.0, penalty=2.0, seed=0):
    data, train = synthetic.with_identity()
    torch.manual_seed(seed)
    head = ChoiceHead(data.item_layout, dim, alpha, penalty)
    for table in head.embedder.tables:           # random factors (the start is zero)
        torch.nn.init.normal_(table.weight, std=0.5)
    trained = np.unique(np.concatenate([np.r_[t.support_items, t.query_items] for t in train]))
    head.set_catalogue(data.item_x[trained])
    return head, data, train, trained


def _weighted_ridge(g: np.ndarray, chosen: np.ndarray, alpha: float, penalty: float) -> np.ndarray:
    """argmin_w sum_c (1 + alpha x_c)(x_c - g_c . w)^2 + penalty |w|^2, by the normal equations."""
    x = np.zeros(len(g))
    x[chosen] = 1.0
    c = 1.0 + alpha * x
    a = (g * c[:, None]).T @ g + penalty * np.eye(g.shape[1])
    return np.linalg.solve(a, (g * c[:, None]).T @ x)


def test_fold_in_is_the_weighted_ridge_solve_over_the_catalogue():
    head, data, train, trained = _head()
    task = train[2]
    with torch.no_grad():
        g = head.factors(head.catalogue).double().numpy()
        sx = torch.from_numpy(data.item_x[task.support_items])[None]
        c = head.user_vectors(sx, torch.ones(1, len(task.support_items)))[0].double().numpy()
    chosen = np.flatnonzero(np.isin(trained, task.support_items))
    assert chosen.size == len(task.support_items)
    np.testing.assert_allclose(c, _weighted_ridge(g, chosen, head.alpha, head.penalty), rtol=1e-4, atol=1e-5)
    # padding changes nothing
    pad = torch.cat([sx, torch.from_numpy(data.item_x[:3])[None]], 1)
    mask = torch.cat([torch.ones(1, len(task.support_items)), torch.zeros(1, 3)], 1)
    with torch.no_grad():
        np.testing.assert_allclose(head.user_vectors(pad, mask)[0].double().numpy(), c, rtol=1e-5, atol=1e-6)


def test_an_implicit_als_half_step_solves_every_row_exactly():
    rng = np.random.default_rng(3)
    x = (rng.random((7, 9)) < 0.3).astype(np.float32)
    other = rng.normal(size=(9, 3)).astype(np.float32)
    sparse = torch.from_numpy(x).to_sparse()
    got = implicit_side(sparse, torch.from_numpy(other), 4.0, 1.5).numpy()
    for r in range(7):
        want = _weighted_ridge(other.astype(np.float64), np.flatnonzero(x[r]), 4.0, 1.5)
        np.testing.assert_allclose(got[r], want, rtol=1e-4, atol=1e-5)


def test_implicit_item_factors_fit_who_rated_what():
    rng = np.random.default_rng(0)
    # two blocks of users and items: users 0-19 rate items 0-9, users 20-39 items 10-19; item 20 unrated
    users, items = [], []
    for u in range(40):
        block = np.arange(10) if u < 20 else np.arange(10, 20)
        chosen = rng.choice(block, 6, replace=False)
        users += [u] * 6
        items += chosen.tolist()
    q = implicit_item_factors(np.array(users), np.array(items), 40, 21, 2, 5.0, 1.0, seed=0)
    assert q.shape == (21, 2) and q.dtype == np.float32
    assert np.all(q[20] == 0.0)
    unit = q[:20] / np.linalg.norm(q[:20], axis=1, keepdims=True)
    sim = unit @ unit.T
    within = np.r_[sim[:10, :10][np.triu_indices(10, 1)], sim[10:, 10:][np.triu_indices(10, 1)]]
    across = sim[:10, 10:].ravel()
    assert within.min() > across.max()


def test_loss_is_the_softmax_over_the_catalogue_without_the_support_items():
    head, data, train, trained = _head()
    task = train[0]
    sx = torch.from_numpy(data.item_x[task.support_items])[None]
    qx = torch.from_numpy(data.item_x[task.query_items])[None]
    with torch.no_grad():
        loss = head.loss(sx, torch.ones(1, sx.shape[1]), qx, torch.ones(1, qx.shape[1]))[0].item()
        c = head.user_vectors(sx, torch.ones(1, sx.shape[1]))
        logits = head.scores(c, head.catalogue)[0].double().numpy()
    keep = ~np.isin(trained, task.support_items)
    log_z = np.log(np.exp(logits[keep]).sum())
    pos = np.flatnonzero(np.isin(trained, task.query_items) & keep)
    assert pos.size > 0
    assert loss == pytest.approx(-(logits[pos] - log_z).mean(), rel=1e-4)


def test_training_the_head_raises_the_query_items_probability():
    head, data, train, _ = _head(seed=1)
    b = pad_tasks(train, data)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    first = head.loss(b.support_x, b.support_mask, b.query_x, b.query_mask).mean().item()
    for _ in range(60):
        opt.zero_grad()
        head.loss(b.support_x, b.support_mask, b.query_x, b.query_mask).mean().backward()
        opt.step()
    last = head.loss(b.support_x, b.support_mask, b.query_x, b.query_mask).mean().item()
    assert last < 0.8 * first


def test_identity_vectors_are_set_and_new_items_read_only_their_content():
    head, data, _, _ = _head()
    ident = head.identity
    rows = torch.tensor([FIRST_VALUE, FIRST_VALUE + 1])
    head.set_identity_factors(rows, torch.ones(2, head.dim))
    table = head.identity_table
    assert torch.all(table.weight[rows] == 1.0)
    x = torch.from_numpy(data.item_x[:1].copy())
    unknown = x.clone()
    unknown[0, ident.start] = UNKNOWN
    with torch.no_grad():
        diff = head.factors(x) - head.factors(unknown)
        want = table.weight[x[0, ident.start]] - table.weight[UNKNOWN]
    np.testing.assert_allclose(diff[0].numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_the_three_backends_train_the_same_choice_head(tmp_path, ml100k_raw_dir):
    import mamo_l2l as ml
    from mamo_l2l import api
    base = ml.load_config().override("data", dataset="fixture", data_dir=str(ml100k_raw_dir))
    base = base.override("model", field_dim=8, embed_dim=8, hidden=16, choice_dim=8)
    runs = {}
    for backend in ("l2l", "higher", "func"):
        cfg = base.override("train", epochs=2, meta_batch_size=16, threads=1, backend=backend)
        runs[backend] = ml.fit(ml.load_data(cfg, cache_dir=tmp_path, progress=False), cfg, model_name="mamo",
                               progress=False)
    ref = runs["func"]
    for name in ("l2l", "higher"):
        sa, sb = runs[name].model.state_dict(), ref.model.state_dict()
        for k in sa:
            assert torch.allclose(sa[k].float(), sb[k].float(), atol=1e-5), (name, k)
        assert runs[name].ranking.choice_weight == ref.ranking.choice_weight
        ma, mb = api.evaluate(runs[name])["scenarios"], api.evaluate(ref)["scenarios"]
        for scen in ma:
            for key, value in ma[scen]["catalogue"].items():
                assert mb[scen]["catalogue"][key] == pytest.approx(value, abs=1e-5, nan_ok=True), (name, scen, key)
    assert ref.model.choice.log_scale.item() != 0.0            # the outer loss trained the head


def test_fixed_identity_vectors_stay_at_their_start_while_the_content_vectors_learn():
    data, train = synthetic.with_identity()
    head = ChoiceHead(data.item_layout, 4, 5.0, 2.0, train_identity=False)
    ident = head.identity_table
    head.set_catalogue(data.item_x[np.unique(np.concatenate([t.support_items for t in train]))])
    n = ident.weight.shape[0] - FIRST_VALUE
    gen = torch.Generator().manual_seed(0)
    head.set_identity_factors(torch.arange(FIRST_VALUE, FIRST_VALUE + n), torch.randn(n, 4, generator=gen))
    start = ident.weight.detach().clone()
    opt = torch.optim.Adam([p for p in head.parameters() if p.requires_grad], lr=0.05)
    b = pad_tasks(train, data)
    for _ in range(5):
        opt.zero_grad()
        head.loss(b.support_x, b.support_mask, b.query_x, b.query_mask).mean().backward()
        opt.step()
    assert torch.equal(ident.weight, start)
    content = [t for t in head.embedder.tables if t is not ident]
    assert any(t.weight.abs().sum() > 0 for t in content)


def test_either_content_gives_catalogue_items_their_identity_vector_and_the_rest_their_content():
    data, train = synthetic.with_identity()
    torch.manual_seed(1)
    head = ChoiceHead(data.item_layout, 4, 5.0, 2.0, content="either")
    summed = ChoiceHead(data.item_layout, 4, 5.0, 2.0)
    for table in head.embedder.tables:
        torch.nn.init.normal_(table.weight, std=0.5)
    summed.load_state_dict(head.state_dict(), strict=False)
    in_catalogue = np.unique(np.concatenate([t.support_items for t in train]))
    head.set_catalogue(data.item_x[in_catalogue])
    outside = np.setdiff1d(np.arange(len(data.item_x)), in_catalogue)
    assert outside.size and in_catalogue.size
    ident, col = head.identity_table, head.identity.start
    x = torch.from_numpy(data.item_x)
    with torch.no_grad():
        g, g_sum = head.factors(x), summed.factors(x)
        np.testing.assert_allclose(g[in_catalogue].numpy(), ident.weight[x[in_catalogue, col]].numpy(), rtol=1e-6)
        content = g_sum - ident.weight[x[:, col]]
        np.testing.assert_allclose(g[outside].numpy(), content[outside].numpy(), rtol=1e-5, atol=1e-6)
        head.train()                                  # a dropped identity reads its content in training
        head.embedder.drop_identities(0.5, 0, 0)
        dropped = head.embedder.dropped[x[:, col]].numpy()
        g_train = head.factors(x)
    hit = dropped & np.isin(np.arange(len(x)), in_catalogue)
    assert hit.any() and (~dropped[in_catalogue]).any()
    np.testing.assert_allclose(g_train[hit].numpy(), content[hit].numpy(), rtol=1e-5, atol=1e-6)
    kept = np.isin(np.arange(len(x)), in_catalogue) & ~dropped
    np.testing.assert_allclose(g_train[kept].numpy(), g[kept].numpy(), rtol=1e-6)
