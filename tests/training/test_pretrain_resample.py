"""Supervised pretraining before meta-training (train.pretrain_epochs) and per-epoch query
resampling of the training tasks (train.resample_queries); docs/algorithm.md, "Training"."""
import numpy as np
import pytest
import synthetic
import torch

from mamo_l2l.core.config import Config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.batching import MetaBatchSampler, resplit_tasks
from mamo_l2l.training.fit import fit
from mamo_l2l.training.run import build_run


def _pairs(items, ratings):
    return sorted(zip(items.tolist(), ratings.tolist()))


def test_resplit_keeps_each_tasks_ratings_and_query_size_and_draws_a_new_split_per_epoch():
    data = synthetic.encoded()
    tasks = synthetic.tasks(data, n=6, n_query=5)
    e1, e1_again, e2 = resplit_tasks(tasks, 0, 1), resplit_tasks(tasks, 0, 1), resplit_tasks(tasks, 0, 2)
    moved = 0
    for t, a, a2, b in zip(tasks, e1, e1_again, e2):
        assert a.user == t.user and len(a.query_items) == len(t.query_items) == 5
        assert len(a.support_items) == len(t.support_items)
        every = _pairs(
            np.concatenate([t.support_items, t.query_items]), np.concatenate([t.support_ratings, t.query_ratings])
        )
        assert (
            _pairs(
                np.concatenate([a.support_items, a.query_items]), np.concatenate([a.support_ratings, a.query_ratings])
            )
            == every
        )
        assert not set(a.query_items.tolist()) & set(a.support_items.tolist())
        assert np.array_equal(a.query_items, a2.query_items)  # seeded by (seed, epoch)
        moved += not np.array_equal(np.sort(a.query_items), np.sort(b.query_items))
        moved += not np.array_equal(np.sort(a.query_items), np.sort(t.query_items))
    assert moved == 2 * len(tasks)


def test_sampler_resamples_only_when_asked():
    data = synthetic.encoded()
    tasks = synthetic.tasks(data, n=6, n_query=5)
    plain = [t for b in MetaBatchSampler(tasks, 4, 0).epoch(3) for t in b]
    assert all(any(t is u for u in tasks) for t in plain)
    fresh = [t for b in MetaBatchSampler(tasks, 4, 0, resample_queries=True).epoch(3) for t in b]
    assert [t.user for t in fresh] == [t.user for t in plain]  # same batches, new splits
    assert any(not np.array_equal(np.sort(a.query_items), np.sort(b.query_items)) for a, b in zip(fresh, plain))


def _cfg(**train):
    return synthetic.small_config(**train)


def test_resampling_changes_training_and_resumes_exactly(tmp_path):
    cfg = _cfg(patience=10, resample_queries=True)
    plain = fit(synthetic.bundle(cfg), _cfg(patience=10), progress=False)
    full = fit(synthetic.bundle(cfg), cfg, out_dir=tmp_path / "full", progress=False)
    assert full.history[-1]["train_loss"] != plain.history[-1]["train_loss"]
    fit(synthetic.bundle(cfg), cfg, out_dir=tmp_path / "resumed", progress=False, stop_after_epoch=1)
    resumed = fit(synthetic.bundle(cfg), cfg, out_dir=tmp_path / "resumed", resume=True, progress=False)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k


def test_pretraining_fits_the_training_ratings_and_starts_the_preference_memory_there():
    cfg = _cfg(pretrain_epochs=3, epochs=0)
    run = fit(synthetic.bundle(cfg), cfg, progress=False)
    assert run.timing["pretrain_seconds"] > 0
    fresh = build_run(synthetic.bundle(cfg), cfg, "mamo")
    head, slots = run.model.head.pref.weight, run.model.memory.preference
    assert not torch.equal(head, fresh.model.head.pref.weight)  # the head was trained...
    for k in range(slots.shape[0]):  # ...and every slot starts there
        assert torch.equal(slots[k], head)


def _structured_bundle(cfg):
    """The synthetic bundle with every rating a function of the item's year field (learnable)."""
    b = synthetic.bundle(cfg)
    year = b.data.item_x[:, 0].astype(np.float32)
    for tasks in [b.splits.train, b.splits.valid, *b.splits.test.values()]:
        for t in tasks:
            t.support_ratings[:] = 1.0 + 0.8 * (year[t.support_items] - 1.0)
            t.query_ratings[:] = 1.0 + 0.8 * (year[t.query_items] - 1.0)
    return b


def test_pretraining_lowers_the_supervised_loss_and_resumes_exactly(tmp_path):
    cfg = _cfg(pretrain_epochs=6, patience=10, outer_lr=0.02)
    full = fit(_structured_bundle(cfg), cfg, out_dir=tmp_path / "full", progress=False)
    losses = [r["train_loss"] for r in full.pretrain_history]
    assert len(losses) == 6 and losses[-1] < 0.5 * losses[0]
    fit(_structured_bundle(cfg), cfg, out_dir=tmp_path / "resumed", progress=False, stop_after_epoch=1)
    resumed = fit(_structured_bundle(cfg), cfg, out_dir=tmp_path / "resumed", resume=True, progress=False)
    for k, v in full.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    without = fit(_structured_bundle(cfg), _cfg(patience=10, outer_lr=0.02), progress=False)
    assert not torch.equal(without.model.head.rating_net[0].weight, full.model.head.rating_net[0].weight)


def test_pretraining_is_refused_for_models_it_does_not_apply_to():
    cfg = _cfg(pretrain_epochs=1)
    with pytest.raises(MamoError, match="pretrain_epochs"):
        fit(synthetic.bundle(cfg), cfg, model_name="supervised", progress=False)
    with pytest.raises(MamoError, match="pretrain_epochs"):
        Config.from_dict({"train": {"pretrain_epochs": -1}}).validate()


def test_rating_tasks_names_the_task_of_every_rating_in_task_ratings_order():
    from mamo_l2l.data.batching import rating_tasks, task_ratings

    data = synthetic.encoded()
    tasks = synthetic.tasks(data, n=4, n_query=3)
    items, _ = task_ratings(tasks)
    owner = rating_tasks(tasks)
    assert owner.dtype == np.int64 and owner.shape == items.shape
    for j, t in enumerate(tasks):
        assert np.array_equal(items[owner == j], np.concatenate([t.support_items, t.query_items]))
    assert rating_tasks([]).size == 0
