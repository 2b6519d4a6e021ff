"""mamo_l2l: cold-start recommendation by meta-learning (MAMO, MAML, MeLU) on four cold-start scenarios.

The public API (nothing heavy is imported until used)::

    import mamo_l2l as ml
    cfg = ml.load_config().override("train", epochs=5)
    result = ml.run(cfg, "runs/a")          # the whole run: files, data, training, evaluation
    print(ml.results_table(result.metrics))

or step by step: ``bundle = ml.load_data(cfg)``, ``run = ml.fit(bundle, cfg)``,
``metrics = ml.evaluate(run)``. Each name lives in one layer of the package
(docs/architecture.md); this module only points at it.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, List

from mamo_l2l.core.version import __version__

#: public name -> the module that defines it
_API = {
    "load_config": "mamo_l2l.core.config", "Config": "mamo_l2l.core.config", "MamoError": "mamo_l2l.core.errors",
    "register_format": "mamo_l2l.data.readers",
    "register_model": "mamo_l2l.algorithms", "build_model": "mamo_l2l.algorithms",
    "register_backend": "mamo_l2l.backends",
    "results_table": "mamo_l2l.evaluation.scoring",
    "ItemRecommender": "mamo_l2l.recommend.recommender",
    "load_data": "mamo_l2l.training.run", "fit": "mamo_l2l.training.fit", "write_metrics": "mamo_l2l.training.runfiles",
    "run": "mamo_l2l.api.pipeline", "RunResult": "mamo_l2l.api.pipeline", "evaluate": "mamo_l2l.api.evaluating",
    "load_run": "mamo_l2l.api.load", "load_recommender": "mamo_l2l.api.load",
    "inspect_run": "mamo_l2l.api.inspect", "format_report": "mamo_l2l.api.inspect",
}
#: the registries that check config values by name (train.backend, data.format): a config read
#: through this module checks them, as it does anywhere the registries are loaded
_REGISTRIES = ("mamo_l2l.backends", "mamo_l2l.data.readers")

if TYPE_CHECKING:   # the same names, statically, for editors and type checkers
    from mamo_l2l.algorithms import build_model, register_model
    from mamo_l2l.api.evaluating import evaluate
    from mamo_l2l.api.inspect import format_report, inspect_run
    from mamo_l2l.api.load import load_recommender, load_run
    from mamo_l2l.api.pipeline import RunResult, run
    from mamo_l2l.backends import register_backend
    from mamo_l2l.core.config import Config, load_config
    from mamo_l2l.core.errors import MamoError
    from mamo_l2l.data.readers import register_format
    from mamo_l2l.evaluation.scoring import results_table
    from mamo_l2l.recommend.recommender import ItemRecommender
    from mamo_l2l.training.fit import fit
    from mamo_l2l.training.run import load_data
    from mamo_l2l.training.runfiles import write_metrics


def __getattr__(name: str):
    if name in _API:
        if _API[name] == "mamo_l2l.core.config":
            for registry in _REGISTRIES:
                importlib.import_module(registry)
        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mamo_l2l' has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_API))


__all__ = [
    "Config", "ItemRecommender", "MamoError", "RunResult", "__version__", "build_model", "evaluate", "fit",
    "format_report", "inspect_run", "load_config", "load_data", "load_recommender", "load_run", "register_backend",
    "register_format", "register_model", "results_table", "run", "write_metrics",
]
