"""A model registered from user code (the builder contract of docs/extending.md, "A model") trains
and evaluates through fit/evaluate like the built-in ones."""
import numpy as np
import pytest
import synthetic
import torch

from mamo_l2l import api
from mamo_l2l.algorithms import MODELS, build_model
from mamo_l2l.core.config import Config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.training.fit import fit

USER_CODE = '''
import torch
from torch import nn

from mamo_l2l.algorithms import register_model
from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.models.recommender import Recommender


class LinearHead(nn.Module):
    \"\"\"rating = w . [p_u ; p_i] + b: a linear model on the field embeddings.\"\"\"

    def __init__(self, user_dim, item_dim, rating_mean):
        super().__init__()
        self.linear = nn.Linear(user_dim + item_dim, 1)
        with torch.no_grad():
            self.linear.bias.fill_(rating_mean)

    def forward(self, p_u, p_i):                      # p_u [P_u], p_i [n, P_i] -> [n]
        x = torch.cat([p_u.expand(p_i.shape[0], -1), p_i], dim=-1)
        return self.linear(x).squeeze(-1)


class LinearMAML(Algorithm):                          # MAML's behaviour: start from the global head
    name = "linear-maml"


@register_model("linear-maml")
def build_linear_maml(model_cfg, data, rating_mean):
    user_dim = model_cfg.field_dim * len(data.user_layout)
    item_dim = model_cfg.field_dim * len(data.item_layout)
    head = LinearHead(user_dim, item_dim, rating_mean)
    model = Recommender(data.user_layout, data.item_layout, model_cfg.field_dim, head)
    return model, LinearMAML(model)
'''


@pytest.fixture
def registered():
    namespace = {"__name__": "user_models"}
    exec(compile(USER_CODE, "user_models.py", "exec"), namespace)
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
