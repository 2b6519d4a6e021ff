"""A model registered from user code (docs/models.md's example, run as written) trains and
evaluates through fit/evaluate like the built-in ones."""
import re
from pathlib import Path

import numpy as np
import pytest
import synthetic
import torch

from mamo_l2l import api
from mamo_l2l.algorithms import MODELS, build_model
from mamo_l2l.core.config import Config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.training.fit import fit

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"


@pytest.fixture
def registered():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "docs/models.md should hold exactly one Python example"
    namespace = {"__name__": "user_models"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    yield namespace
    MODELS.pop("linear-maml", None)


def test_registered_model_trains_and_evaluates(registered, tmp_path):
    assert "linear-maml" in MODELS
    cfg = Config()
    cfg.train.epochs, cfg.train.meta_batch_size, cfg.model.field_dim = 2, 4, 8
    cfg.validate()
    bundle = synthetic.bundle(cfg)
    run = fit(bundle, cfg, model_name="linear-maml", out_dir=tmp_path, progress=False)
    assert isinstance(run.model.head, registered["LinearHead"])
    assert len(run.history) == 2 and (tmp_path / "best.pt").is_file()
    m = api.evaluate(run)
    assert m["model"] == "linear-maml"
    assert all(np.isfinite(m["scenarios"][s]["mae"]) for s in m["scenarios"])
    # the head is linear: [p_u ; p_i] has 2 + 2 fields of 8 dims
    assert run.model.head.linear.weight.shape == (1, 32)
    torch.manual_seed(0)
    fresh, _ = build_model("linear-maml", cfg.model, bundle.data, 3.0)
    assert not torch.equal(fresh.head.linear.weight, run.model.head.linear.weight)


def test_unregistered_name_is_a_clear_error():
    with pytest.raises(MamoError, match="unknown model 'linear-maml'"):
        build_model("linear-maml", Config().model, synthetic.encoded(), 3.0)
