"""mamo_l2l: cold-start recommendation by meta-learning (MAMO, MAML, MeLU) on four cold-start scenarios.

The public API (nothing heavy is imported until used)::

    import mamo_l2l as ml
    cfg = ml.load_config().override("train", epochs=5)
    bundle = ml.load_data(cfg)
    run = ml.fit(bundle, cfg, model_name="mamo")
    metrics = ml.evaluate(run)
    print(ml.results_table(metrics))
"""
__version__ = "0.1.0"

_LAZY = {
    "load_config": "config", "Config": "config", "MamoError": "errors",
    "load_data": "api", "fit": "api", "evaluate": "api", "load_run": "api", "results_table": "api",
    "write_metrics": "api", "register_model": "algorithms", "build_model": "algorithms",
    "load_recommender": "recommend", "ItemRecommender": "recommend",
    "inspect_run": "diagnostics", "format_report": "diagnostics",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'mamo_l2l' has no attribute {name!r}")


__all__ = sorted(_LAZY)
