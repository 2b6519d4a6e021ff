"""The item identity field: known only for items rated in training tasks, zero-initialised."""
import numpy as np
import torch

from mamo_l2l.core.config import DataConfig
from mamo_l2l.data import prepare as pipeline
from mamo_l2l.data.types import FIRST_VALUE, UNKNOWN
from mamo_l2l.models.embedding import FieldEmbedder


def _prepare(folder, tmp_path, flag):
    cfg = DataConfig(dataset="fixture", data_dir=str(folder), item_id_feature=flag)
    return pipeline.prepare(cfg, seed=1, cache_dir=tmp_path, progress=False)


def test_identity_column(ml100k_raw_dir, tmp_path):
    plain, splits, _ = _prepare(ml100k_raw_dir, tmp_path, False)
    data, splits2, _ = _prepare(ml100k_raw_dir, tmp_path, True)
    assert [f.name for f in data.item_layout][-1] == "item_id"
    assert [f.name for f in plain.item_layout] == [f.name for f in data.item_layout][:-1]
    np.testing.assert_array_equal(data.item_x[:, :-1], plain.item_x)        # other fields untouched
    ids = data.item_x[:, -1]
    train_items = set()
    for t in splits2.train:
        train_items.update(t.support_items.tolist() + t.query_items.tolist())
    for item in range(len(ids)):
        if item in train_items:
            assert ids[item] >= FIRST_VALUE
        else:
            assert ids[item] == UNKNOWN
    known = ids[ids >= FIRST_VALUE]
    assert len(np.unique(known)) == len(train_items) == len(known)           # one index per item
    assert data.item_layout[-1].vocab_size == FIRST_VALUE + len(train_items)
    for scen in ("item_cold", "user_item_cold"):                             # new items: no identity
        for t in splits2.test[scen]:
            assert (ids[t.query_items] == UNKNOWN).all() and (ids[t.support_items] == UNKNOWN).all()


def test_identity_embeddings_start_at_zero(ml100k_raw_dir, tmp_path):
    data, _, _ = _prepare(ml100k_raw_dir, tmp_path, True)
    emb = FieldEmbedder(data.item_layout, 4)
    assert torch.count_nonzero(emb.tables[-1].weight) == 0
    assert torch.count_nonzero(emb.tables[0].weight) > 0
