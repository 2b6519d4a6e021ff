"""README's Python example runs as written (fetching replaced by a local copy of ml-100k)."""
import re
from pathlib import Path

import mamo_l2l.data.fetch as fetch

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 1, "README should hold exactly one Python example"
    return blocks[0]


def test_readme_python_example_runs(monkeypatch, tmp_path, capsys, request, format_dirs):
    try:
        local = request.getfixturevalue("ml100k_real_dir")
    except Exception:  # real copy absent: the fixture in the same (atomic) format
        local = format_dirs["ml-100k-atomic"]
    monkeypatch.setenv("MAMO_L2L_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch, "fetch_dataset", lambda name, cache_dir=None, progress=True: Path(local))
    exec(compile(_python_example(), str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "user_item_cold" in out and "item_mean" in out
    mae = float(out.strip().splitlines()[-1])
    assert 0.3 < mae < 2.0
