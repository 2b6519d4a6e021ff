"""mamo_l2l: cold-start recommendation by meta-learning (MAMO, MAML, MeLU) on four cold-start scenarios.

The public API (nothing heavy is imported until used)::

    import mamo_l2l as ml
    cfg = ml.load_config().override("train", epochs=5)
    result = ml.run(cfg, "runs/a")          # the whole run: files, data, training, evaluation
    print(ml.results_table(result.metrics))

or step by step: ``bundle = ml.load_data(cfg)``, ``run = ml.fit(bundle, cfg)``,
``metrics = ml.evaluate(run)``.
"""
__version__ = "0.1.0"   # the one place the version is written (setup.cfg reads it)

_LAZY = {
    "load_config": "config", "Config": "config", "MamoError": "errors",
    "run": "pipeline", "RunResult": "pipeline",
    "load_data": "runtime", "fit": "train", "evaluate": "api", "load_run": "api", "results_table": "scoring",
    "write_metrics": "runfiles", "register_model": "algorithms", "build_model": "algorithms",
    "register_backend": "backends", "register_format": "data.readers",
    "load_recommender": "recommend", "ItemRecommender": "recommend",
    "inspect_run": "diagnostics", "format_report": "diagnostics",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mamo_l2l' has no attribute {name!r}")


__all__ = sorted(_LAZY)
