"""Layer 9, api: the Python API over the layers below: one run from a config to its folder
(pipeline.py), evaluating a run (evaluating.py, with the references' figures kept on disk by
reference_cache.py), loading a saved run or recommender (load.py),
comparing models over seeds (comparison.py, with its tables in report.py) and the memory report
(inspect.py)."""
from mamo_l2l.api.comparison import compare
from mamo_l2l.api.evaluating import evaluate
from mamo_l2l.api.inspect import format_report, inspect_run
from mamo_l2l.api.load import load_recommender, load_run, open_recommender
from mamo_l2l.api.pipeline import RunResult, run

__all__ = ["RunResult", "compare", "evaluate", "format_report", "inspect_run", "load_recommender", "load_run",
           "open_recommender", "run"]
