"""Training loop: resume equals an uninterrupted run, meta-batch 1 equals the sequential procedure,
checkpoints are safe and refuse other data."""
import copy
import json

import pytest
import synthetic
import torch
from torch.func import functional_call

from mamo_l2l import api
from mamo_l2l.backends.base import InnerLoop, masked_mse
from mamo_l2l.core.errors import MamoError
from mamo_l2l.data.batching import MetaBatchSampler, pad_tasks
from mamo_l2l.training.checkpoint import load_checkpoint, save_checkpoint
from mamo_l2l.training.fit import fit
from mamo_l2l.training.run import build_run, training_user_rows


def _config(**train):
    return synthetic.small_config(**train)


def _states_equal(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_ends_like_an_uninterrupted_run(tmp_path):
    cfg = _config(patience=10)
    full = fit(synthetic.bundle(cfg), cfg, out_dir=tmp_path / "full", progress=False)
    killed = fit(synthetic.bundle(cfg), cfg, out_dir=tmp_path / "resumed", progress=False, stop_after_epoch=1)
    assert len(killed.history) == 1
    resumed = fit(synthetic.bundle(cfg), cfg, out_dir=tmp_path / "resumed", resume=True, progress=False)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    _states_equal(full.model.state_dict(), resumed.model.state_dict())
    assert resumed.best_epoch == full.best_epoch
    m_full, m_res = api.evaluate(full), api.evaluate(resumed)
    assert json.dumps(m_full["scenarios"], sort_keys=True) == json.dumps(m_res["scenarios"], sort_keys=True)


def test_meta_batch_of_one_is_the_sequential_procedure():
    cfg = _config(meta_batch_size=1, epochs=1)
    bundle = synthetic.bundle(cfg, n_valid=0)
    trained = fit(bundle, cfg, progress=False)

    # The paper's loop written out: per user read memory, adapt, outer step, then write memory;
    # before it the keys from k-means of the training users, after it the epoch-end re-seeding.
    run = build_run(bundle, cfg, "mamo")
    model, algo = run.model, run.algorithm
    algo.begin_training(training_user_rows(bundle), cfg.train.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.outer_lr)
    inner = InnerLoop(cfg.train.local_steps, cfg.train.local_lr, False)
    for (task,) in MetaBatchSampler(bundle.splits.train, 1, cfg.train.seed).epoch(1):
        b = pad_tasks([task], bundle.data)
        p_u = model.user_embedder(b.user_x[0])
        p_s, p_q = model.item_embedder(b.support_x[0]), model.item_embedder(b.query_x[0])
        overrides, attention = algo.start(p_u)
        adapted = run.backend.adapt(model.head, overrides,
                                    lambda f: masked_mse(f(p_u, p_s), b.support_y[0], b.support_mask[0]),
                                    inner, second_order=True)
        loss = masked_mse(adapted.forward(p_u, p_q), b.query_y[0], b.query_mask[0])
        write = algo.functional_write(p_u, attention, adapted.params, lambda prm: masked_mse(
            functional_call(model.head, prm, (p_u, p_q)), b.query_y[0], b.query_mask[0]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.memory.write([write])
    algo.end_epoch(training_user_rows(bundle))
    for (k, a), (_, b) in zip(trained.model.state_dict().items(), model.state_dict().items()):
        assert torch.allclose(a, b, atol=1e-6), k
    assert not torch.equal(model.memory.profile, build_run(bundle, cfg, "mamo").model.memory.profile)


def test_checkpoint_round_trip_and_other_data_refused(tmp_path):
    cfg = _config(epochs=1)
    run = fit(synthetic.bundle(cfg), cfg, out_dir=tmp_path, progress=False)
    ckpt = load_checkpoint(tmp_path / "best.pt")
    assert ckpt["model_name"] == "mamo" and "memory.profile" in ckpt["state_dict"]
    assert ckpt["versions"]["torch"] == torch.__version__
    assert ckpt["config"]["train"]["epochs"] == 1
    other = synthetic.bundle(cfg)
    other.data.fingerprint = "another data set"
    fresh = build_run(other, cfg, "mamo")
    from mamo_l2l.training.runid import check_compatible
    with pytest.raises(MamoError, match="other data"):
        check_compatible(ckpt, fresh, tmp_path / "best.pt")
    fresh.bundle = run.bundle
    changed = copy.deepcopy(cfg)
    changed.model.hidden = 32
    fresh.config = changed
    with pytest.raises(MamoError, match="hidden"):
        check_compatible(ckpt, fresh, tmp_path / "best.pt")


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_loading_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "mamo_l2l-checkpoint-1", "x": Evil()}, path)
    with pytest.raises(MamoError, match="not a readable"):
        load_checkpoint(path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MamoError):
        load_checkpoint(tmp_path / "junk.pt")


def test_atomic_save_leaves_no_temp_files(tmp_path):
    save_checkpoint(tmp_path / "a.pt", {"x": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == ["a.pt"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_trains_on_cuda():
    cfg = _config(epochs=1, device="cuda")
    run = fit(synthetic.bundle(cfg), cfg, progress=False)
    assert next(run.model.parameters()).is_cuda
    assert api.evaluate(run)["scenarios"]["warm"]["users"] == 4


def test_cuda_request_without_gpu_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    cfg = _config(epochs=1, device="cuda")
    with pytest.raises(MamoError, match="no CUDA device"):
        fit(synthetic.bundle(cfg), cfg, progress=False)


def test_select_metric_ndcg_keeps_the_highest_validation_ndcg():
    import numpy as np
    import synthetic

    from mamo_l2l.training.fit import fit
    cfg = synthetic.small_config(epochs=4, patience=10, select_metric="ndcg@3")
    run = fit(synthetic.bundle(cfg), cfg, model_name="maml", progress=False)
    ndcg = [h["valid_ndcg@3"] for h in run.history]
    assert run.best_epoch == 1 + int(np.argmax(ndcg))
    cfg = synthetic.small_config(epochs=4, patience=10, select_metric="mae")
    run = fit(synthetic.bundle(cfg), cfg, model_name="maml", progress=False)
    assert run.best_epoch == 1 + int(np.argmin([h["valid_mae"] for h in run.history]))


def test_select_metric_ndcg_masked_averages_plain_and_identity_masked_validation():
    import types

    import numpy as np
    import synthetic

    from mamo_l2l.data.identity import add_item_identity, mask_identity
    from mamo_l2l.data.types import UNKNOWN
    from mamo_l2l.evaluation.scoring import score_tasks
    from mamo_l2l.training.fit import fit
    from mamo_l2l.training.run import DataBundle
    cfg = synthetic.small_config(epochs=4, patience=10, select_metric="ndcg@3+masked")
    bundle = synthetic.bundle(cfg)
    data = add_item_identity(bundle.data, types.SimpleNamespace(train=bundle.splits.train))
    masked = mask_identity(data)
    col = [f.start for f in data.item_layout if f.identity]
    assert (masked.item_x[:, col] == UNKNOWN).all() and (data.item_x[:, col] != UNKNOWN).any()
    assert mask_identity(bundle.data) is bundle.data                      # no identity field: unchanged
    run = fit(DataBundle(data, bundle.splits, bundle.encoders, cfg), cfg, model_name="mamo", progress=False)
    combined = [(h["valid_ndcg@3"] + h["valid_masked_ndcg@3"]) / 2 for h in run.history]
    assert run.best_epoch == 1 + int(np.argmax(combined))
    m = score_tasks(run.model, run.algorithm, run.backend, bundle.splits.valid, masked, run.inner)
    assert m["ndcg@3"] == pytest.approx(run.history[run.best_epoch - 1]["valid_masked_ndcg@3"])
