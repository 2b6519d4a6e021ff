"""docs/extending.md: its code blocks (a data format, a model, a backend) run as one script."""
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "extending.md"


def code_blocks(text: str):
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
def test_extending_examples_run(tmp_path, monkeypatch):
    from mamo_l2l.algorithms import MODELS
    from mamo_l2l.backends import BACKENDS
    from mamo_l2l.data.readers import FORMATS
    blocks = code_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    saved = [(registry, dict(registry)) for registry in (MODELS, BACKENDS, FORMATS)]   # restored after
    try:
        namespace = {"__name__": "extending_example"}
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    finally:
        for registry, before in saved:
            registry.clear()
            registry.update(before)
    assert (tmp_path / "runs" / "tracked" / "metrics.json").is_file()
