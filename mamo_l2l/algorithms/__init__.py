"""Model registry: a name -> a function that builds (model, algorithm) for a data set.

Add your own model from your code::

    from mamo_l2l.algorithms import register_model

    @register_model("my-model")
    def build_my_model(model_cfg, data, rating_mean):
        model = ...       # a mamo_l2l.models.recommender.Recommender (or subclass)
        return model, MyAlgorithm(model)

and use it as ``--model my-model --plugin my_module`` on the command line (mamo_l2l/core/plugins.py; or an
entry point in the group ``mamo_l2l.models``) or ``fit(..., model_name="my-model")``.
The algorithm's ``trainer`` attribute ("meta", the default, "supervised" or "none") says how
``fit`` trains it, and ``adapts`` whether evaluation adapts per user (algorithms/baselines.py);
docs/models.md has a complete example.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Dict, List, Optional, Tuple

from mamo_l2l.algorithms.base import Algorithm
from mamo_l2l.algorithms.baselines import (
    MeanModel,
    MeanPrediction,
    MeLU,
    Supervised,
    SupervisedFinetune,
)
from mamo_l2l.algorithms.mamo import MAMO, MAMORecommender
from mamo_l2l.algorithms.tanp import TaNP
from mamo_l2l.core.config import ModelConfig
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.plugins import load_entry_points, load_plugins
from mamo_l2l.data.identity import FIELD
from mamo_l2l.data.types import EncodedDataset
from mamo_l2l.models.choice import ChoiceHead
from mamo_l2l.models.melu import build_melu
from mamo_l2l.models.memory import MAMOMemory
from mamo_l2l.models.recommender import Recommender, build_recommender
from mamo_l2l.models.tanp import TaNPRecommender

log = logging.getLogger("mamo_l2l")
Builder = Callable[[ModelConfig, EncodedDataset, float], Tuple[Recommender, Algorithm]]
MODELS: Dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register a builder under ``name`` (replacing an earlier one of that name)."""
    def deco(fn: Builder) -> Builder:
        MODELS[name] = fn
        return fn
    return deco


def require_models(*names: str, listing: bool = False) -> None:
    """MamoError unless every name is registered (after reading the ``mamo_l2l.models`` entry points)."""
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        load_entry_points()
        unknown = [n for n in names if n not in MODELS]
    if unknown:
        what = f"model(s) {', '.join(unknown)}" if listing else f"model {', '.join(map(repr, unknown))}"
        raise MamoError(f"unknown {what}; "
                        f"known models: {', '.join(sorted(MODELS))} (a model of your own: --plugin MODULE, "
                        "docs/models.md)")


def build_model(name: str, cfg: ModelConfig, data: EncodedDataset, rating_mean: float) -> Tuple[Recommender, Algorithm]:
    """Build the named model and its algorithm. The caller seeds torch first (init is random)."""
    require_models(name)
    return MODELS[name](cfg, data, rating_mean)


def _recommender(cfg: ModelConfig, data: EncodedDataset, rating_mean: float) -> Recommender:
    return build_recommender(data.user_layout, data.item_layout, cfg.field_dim, cfg.embed_dim, cfg.hidden, rating_mean,
                             item_bias_field=item_bias_field(cfg, data), taste_dim=cfg.taste_dim,
                             choice=choice_head(cfg, data))


def choice_head(cfg: ModelConfig, data: EncodedDataset) -> Optional[ChoiceHead]:
    """The choice head (``model.choice_dim`` > 0; models/choice.py), or None when it is off or the
    data have no item identity field (its identity vectors are what the implicit ALS start fills)."""
    if cfg.choice_dim <= 0 or not any(f.identity for f in data.item_layout):
        return None
    return ChoiceHead(data.item_layout, cfg.choice_dim, cfg.choice_alpha, cfg.choice_penalty,
                      train_identity=cfg.choice_identity == "trained", content=cfg.choice_content)


def item_bias_field(cfg: ModelConfig, data: EncodedDataset):
    """The field that carries the item bias (``model.item_bias``): the item identity field, or None
    when the bias is off or the data have no identity field (``data.item_id_feature: false``)."""
    if not cfg.item_bias:
        return None
    return FIELD if any(f.name == FIELD and f.identity for f in data.item_layout) else None


def _mamo(cfg: ModelConfig, data: EncodedDataset, rating_mean: float, feature_memory=True, task_memory=True):
    base = _recommender(cfg, data, rating_mean)
    memory = MAMOMemory(cfg.memory_slots, base.user_embedder.out_dim, base.head.user_net, 2 * cfg.embed_dim,
                        cfg.temperature, cfg.alpha, cfg.beta, cfg.gamma, cfg.memory_update, cfg.memory_init,
                        learned_preference=cfg.preference_memory == "learned")
    model = MAMORecommender(base, memory)
    return model, MAMO(model, cfg.tau, feature_memory=feature_memory, task_memory=task_memory)


@register_model("mamo")
def build_mamo(cfg, data, rating_mean):
    return _mamo(cfg, data, rating_mean)


@register_model("mamo-no-feature-memory")
def build_mamo_no_feature_memory(cfg, data, rating_mean):
    return _mamo(cfg, data, rating_mean, feature_memory=False)


@register_model("mamo-no-task-memory")
def build_mamo_no_task_memory(cfg, data, rating_mean):
    return _mamo(cfg, data, rating_mean, task_memory=False)


@register_model("maml")
def build_maml(cfg, data, rating_mean):
    model = _recommender(cfg, data, rating_mean)
    return model, Algorithm(model)


@register_model("melu")
def build_melu_model(cfg, data, rating_mean):
    model = build_melu(data.user_layout, data.item_layout, cfg.field_dim, cfg.hidden, rating_mean)
    return model, MeLU(model)


@register_model("tanp")
def build_tanp(cfg, data, rating_mean):
    model = TaNPRecommender(data.user_layout, data.item_layout, cfg.field_dim, cfg.tanp_hidden, cfg.tanp_z_dim,
                            cfg.tanp_clusters, rating_mean, gated=cfg.tanp_film == "gated")
    return model, TaNP(model, cfg.tanp_alpha, cfg.tanp_lambda)


@register_model("supervised")
def build_supervised(cfg, data, rating_mean):
    model = _recommender(cfg, data, rating_mean)
    return model, Supervised(model)


@register_model("supervised-finetune")
def build_supervised_finetune(cfg, data, rating_mean):
    model = _recommender(cfg, data, rating_mean)
    return model, SupervisedFinetune(model)


@register_model("global-mean")
def build_global_mean(cfg, data, rating_mean):
    model = MeanModel(len(data.item_ids))
    return model, MeanPrediction(model, per_item=False)


@register_model("item-mean")
def build_item_mean(cfg, data, rating_mean):
    model = MeanModel(len(data.item_ids))
    return model, MeanPrediction(model, per_item=True)


def loaded_plugins(model_name: Optional[str]) -> List[str]:
    """The module to import again to rebuild ``model_name``: the builder's module when it lies
    outside mamo_l2l (and is importable by name), else nothing."""
    builder = MODELS.get(model_name) if model_name else None
    module = getattr(builder, "__module__", None)
    if not module or module == "mamo_l2l" or module.startswith("mamo_l2l.") or module == "__main__":
        return []
    return [module]


def import_recorded(ckpt: Dict[str, Any], path=None) -> None:
    """Import the plugins a checkpoint records when its model is not registered yet."""
    name = ckpt.get("model_name")
    if name in MODELS:
        return
    recorded = list(ckpt.get("plugins") or [])
    if recorded:
        log.debug("importing the run's plugin module(s) %s", ", ".join(recorded))
        load_plugins(recorded)


