"""Feature values that no training user/item carries map to UNKNOWN (or, for year fields, to the
nearest year that training items carry), and UNKNOWN rows start at zero (docs/data.md section 3)."""
import numpy as np
import torch
from synthetic import synthetic_raw, write_atomic

from mamo_l2l.core.config import DataConfig
from mamo_l2l.data import prepare as pipeline
from mamo_l2l.data.features import FeatureEncoders
from mamo_l2l.data.identity import training_items
from mamo_l2l.data.types import PAD, UNKNOWN
from mamo_l2l.models.embedding import FieldEmbedder


def _prepare(folder, tmp_path, **kw):
    cfg = DataConfig(dataset="fixture", data_dir=str(folder), **kw)
    return pipeline.prepare(cfg, seed=1, cache_dir=tmp_path, progress=False)


def _check_only_trained_codes(data, splits):
    train_users = np.unique([t.user for t in splits.train])
    train_items = training_items(splits)
    for x, layout, rows in ((data.user_x, data.user_layout, train_users),
                            (data.item_x, data.item_layout, train_items)):
        others = np.setdiff1d(np.arange(len(x)), rows)
        assert len(others) > 0
        for f in layout:
            trained = set(np.unique(x[rows, f.start:f.stop]).tolist())
            carried = set(np.unique(x[others, f.start:f.stop]).tolist())
            assert carried <= trained | {PAD, UNKNOWN}, (f.name, sorted(carried - trained))


def test_every_code_outside_training_is_trained_or_unknown(format_dirs, tmp_path):
    for name in ("ml-100k-raw", "ml-1m-raw", "book-crossing"):
        data, splits, _ = _prepare(format_dirs[name], tmp_path / name)
        _check_only_trained_codes(data, splits)


def test_new_items_take_the_latest_trained_year(tmp_path):
    folder = write_atomic(synthetic_raw(), tmp_path / "src")
    data, splits, encoders = _prepare(folder, tmp_path, item_id_feature=False)
    _check_only_trained_codes(data, splits)
    year = next(f for f in data.item_layout if f.name == "release_year")
    cutoff = splits.item_year_cutoff
    new = data.item_year > cutoff
    assert new.any()
    codes = data.item_x[:, year.start]
    trained = training_items(splits)
    last = trained[np.nanargmax(np.where(np.isnan(data.item_year[trained]), -np.inf, data.item_year[trained]))]
    assert (codes[new] == codes[last]).all() and codes[last] > UNKNOWN
    # the restricted encoders encode a new item exactly as the data holds it
    vocab = next(v for v in encoders.item_vocabs if v.name == "release_year")
    late = str(int(np.nanmax(data.item_year)))
    row = encoders.encode_item({"release_year": late, "genre": ["a"]})
    assert row[year.start] == codes[last]
    assert late in dict(vocab.untrained)
    # and survive the round trip that checkpoints use
    assert FeatureEncoders.from_dict(encoders.to_dict()) == encoders
    assert data.encoders == encoders.to_dict()


def test_unknown_rows_start_at_zero(format_dirs, tmp_path):
    data, _, _ = _prepare(format_dirs["ml-100k-raw"], tmp_path)
    torch.manual_seed(0)
    emb = FieldEmbedder(data.item_layout, 8)
    for table in emb.tables:
        assert torch.count_nonzero(table.weight[UNKNOWN]) == 0
        assert torch.count_nonzero(table.weight[PAD]) == 0
    emb = FieldEmbedder(data.user_layout, 8)
    assert all(torch.count_nonzero(t.weight[UNKNOWN]) == 0 for t in emb.tables)
