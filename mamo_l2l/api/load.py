"""Loading a saved run: one loader for a run and for a recommender.

``load_run(path)`` rebuilds a trained run from its ``best.pt`` with its data (read again and
checked by fingerprint): what ``mamo-l2l evaluate`` and ``inspect`` use. ``load_recommender(path)``
rebuilds only what recommending needs from ``best.pt`` alone (the item catalogue stored in it; no
data set files read): what ``recommend`` and ``serve`` use. Both take the same steps
(``_open``: read the checkpoint, import the plugin that registered its model, check that it is a
model checkpoint; ``_recorded_config``: its config with the overrides asked for;
``_restore``: its parameters and memories into a freshly built model).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from mamo_l2l.algorithms import build_model, import_recorded
from mamo_l2l.backends import get_backend
from mamo_l2l.core.config import Config
from mamo_l2l.core.errors import MamoError
from mamo_l2l.evaluation.ranking import Ranking
from mamo_l2l.recommend.catalog import Catalog
from mamo_l2l.recommend.recommender import ItemRecommender
from mamo_l2l.training.checkpoint import load_checkpoint
from mamo_l2l.training.run import DataBundle, Run, build_run, check_device, load_data
from mamo_l2l.training.runid import check_compatible


def _open(checkpoint, doing: str) -> Dict[str, Any]:
    """The model checkpoint at ``checkpoint`` with its model registered (its plugin imported)."""
    ckpt = load_checkpoint(checkpoint)
    import_recorded(ckpt, checkpoint)
    if ckpt.get("kind") != "model":
        raise MamoError(f"this is a resume checkpoint (last.pt); {doing} the run's best.pt", path=str(checkpoint))
    return ckpt


def _recorded_config(ckpt: Dict[str, Any], checkpoint, data_dir: Optional[str] = None,
                     device: Optional[str] = None, backend: Optional[str] = None) -> Config:
    config = Config.from_recorded(ckpt["config"], source=str(checkpoint))
    if data_dir is not None:
        config = config.override("data", data_dir=str(data_dir))
    if device is not None or backend is not None:
        config = config.override("train", device=device, backend=backend)
    return config


def _restore(model: torch.nn.Module, ckpt: Dict[str, Any], checkpoint) -> None:
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise MamoError(f"checkpoint does not fit the model built from its config: {e}", path=str(checkpoint))


def load_run(checkpoint, data_dir: Optional[str] = None, cache_dir=None, device: Optional[str] = None,
             backend: Optional[str] = None, progress: bool = False,
             bundle: Optional[DataBundle] = None) -> Run:
    """Rebuild a trained run from ``best.pt``: same data (checked by fingerprint), model, memories.
    ``bundle``: the data of its config and seed already loaded (compare's), else it is read."""
    ckpt = _open(checkpoint, "evaluate")
    config = _recorded_config(ckpt, checkpoint, data_dir, device, backend)
    check_device(config.train.device)   # before any data is read
    if bundle is None:
        bundle = load_data(config, cache_dir=cache_dir, progress=progress)
    run = build_run(bundle, config, ckpt["model_name"], fresh=False)   # the checkpoint's state replaces the start
    check_compatible(ckpt, run, checkpoint, allow=("train.backend",))   # evaluating with another backend is allowed
    _restore(run.model, ckpt, checkpoint)
    run.ranking = Ranking.from_payload(ckpt.get("ranking"))
    run.ranking_notes = ckpt.get("ranking_notes")
    run.best_epoch = int(ckpt.get("best_epoch", 0))
    run.history = list(ckpt.get("history", []))
    return run


def load_recommender(checkpoint, device: Optional[str] = None, backend: Optional[str] = None) -> ItemRecommender:
    """An ItemRecommender from ``best.pt`` alone (no data set files read).

    Checkpoints written before the catalogue was stored have none: use
    ``load_run(path).recommender()`` for them (it re-reads the data)."""
    ckpt = _open(checkpoint, "recommend from")
    if "catalog" not in ckpt:
        raise MamoError("checkpoint has no item catalogue (written before recommending was added); use "
                        "ml.load_run(path).recommend(...), which re-reads the data set", path=str(checkpoint))
    config = _recorded_config(ckpt, checkpoint, device=device, backend=backend)
    catalog = Catalog.from_payload(ckpt["catalog"], path=str(checkpoint))
    data = catalog.stub_dataset()
    torch.manual_seed(0)   # the initial values are replaced by the checkpoint's
    model, algorithm = build_model(ckpt["model_name"], config.model, data, 0.0)
    _restore(model, ckpt, checkpoint)
    model.to(config.train.device)
    model.eval()
    run = Run(model, algorithm, get_backend(config.train.backend), config, ckpt["model_name"],
              DataBundle(data, None, catalog.encoders, config))
    return ItemRecommender(model, algorithm, run.backend, run.inner, catalog, ckpt["model_name"],
                           config.train.device, ranking=Ranking.from_payload(ckpt.get("ranking")))


def open_recommender(checkpoint, data_dir=None, cache_dir=None, backend=None, device=None) -> ItemRecommender:
    """The checkpoint's ItemRecommender: from best.pt alone, or (a checkpoint written before the
    item catalogue was stored) from the run rebuilt with its data."""
    try:
        return load_recommender(checkpoint, device=device, backend=backend)
    except MamoError as e:
        if "no item catalogue" not in str(e):
            raise
    return load_run(checkpoint, data_dir=data_dir, cache_dir=cache_dir, device=device, backend=backend).recommender()
