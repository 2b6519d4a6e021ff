"""README's Python examples run as written, one after the other in one namespace (fetching
replaced by a local copy of ml-100k): train and evaluate, then recommend from the saved run."""
import re
from pathlib import Path

from conftest import find_ml100k

import mamo_l2l.data.fetch as fetch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_examples():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 2, "README should hold two Python examples: train/evaluate, then recommend"
    return blocks


def test_readme_python_example_runs(monkeypatch, tmp_path, capsys, format_dirs):
    # the real copy where there is one (conftest.find_ml100k), else the fixture in the same (atomic) format
    local = find_ml100k() or format_dirs["ml-100k-atomic"]
    monkeypatch.setenv("MAMO_L2L_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch, "fetch_dataset", lambda name, cache_dir=None, progress=True: Path(local))
    monkeypatch.chdir(tmp_path)
    train, recommend = _python_examples()
    namespace = {}
    exec(compile(train, str(README), "exec"), namespace)
    out = capsys.readouterr().out
    assert "user_item_cold" in out and "item_mean" in out
    mae = float(out.strip().splitlines()[-1])
    assert 0.3 < mae < 2.0
    exec(compile(recommend, str(README), "exec"), namespace)
    top = namespace["top"]
    assert list(top.columns) == ["item_id", "title", "score", "rank_score"] and len(top) == 10
    assert not {"50", "181"} & set(top["item_id"])          # rated items are not recommended
    assert top["rank_score"].is_monotonic_decreasing
