"""Config: YAML in, validated, overrides, and the shipped default file equal to the defaults."""
from pathlib import Path

import pytest
import yaml

from mamo_l2l.core.config import Config, load_config
from mamo_l2l.core.errors import MamoError

DEFAULT = Path(__file__).resolve().parents[2] / "mamo_l2l" / "configs" / "default.yaml"


def test_shipped_default_file_lists_every_key_with_its_default():
    assert yaml.safe_load(DEFAULT.read_text()) == Config().to_dict()
    assert load_config(DEFAULT).to_dict() == Config().to_dict()


def test_partial_yaml_keeps_other_defaults(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  local_lr: 0.05\n  epochs: 3\nmodel:\n  tau: 0\n")
    cfg = load_config(p)
    assert cfg.train.local_lr == 0.05 and cfg.train.epochs == 3 and cfg.model.tau == 0.0
    assert cfg.train.outer_lr == 1e-3 and cfg.data.n_query == 10


@pytest.mark.parametrize("text,needle", [
    ("train:\n  lr: 1\n", "train.lr"),
    ("train:\n  epochs: many\n", "train.epochs must be int"),
    ("train:\n  first_order: 1\n", "true or false"),
    ("model:\n  alpha: 2.0\n", "model.alpha"),
    ("data:\n  n_query: 20\n", "data.n_query"),
    ("optim:\n  x: 1\n", "unknown section"),
    ("train: [1, 2]\n", "must be a mapping"),
    ("train:\n  epochs: [\n", "not valid YAML"),
])
def test_bad_configs_name_the_key(tmp_path, text, needle):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(MamoError, match=None) as e:
        load_config(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_override_validates_and_copies():
    cfg = Config()
    new = cfg.override("train", epochs=7, local_lr=None)
    assert new.train.epochs == 7 and cfg.train.epochs == 30 and new.train.local_lr == 0.01
    with pytest.raises(MamoError, match="train.backend"):
        cfg.override("train", backend="jax")
