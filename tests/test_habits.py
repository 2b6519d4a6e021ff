"""Habits the code keeps (docs/architecture.md): no function over ``MAX_FUNCTION_LINES`` lines in
the package, the tests, the benchmarks, the studies or the scripts, and a test tree that mirrors
the package's folders."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 60
ROOTS = ("mamo_l2l", "tests", "benchmarks", "studies", "scripts")


def long_functions(root: Path, base: Path = REPO):
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    yield f"{path.relative_to(base)}:{node.lineno}: {node.name} ({length} lines)"


def test_no_function_is_longer_than_the_limit():
    found = [f for root in ROOTS if (REPO / root).is_dir() for f in long_functions(REPO / root)]
    assert found == [], f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(found)


def test_the_checker_finds_a_long_function(tmp_path):
    (tmp_path / "ok.py").write_text("def f():\n" + "    x = 1\n" * (MAX_FUNCTION_LINES - 1))
    (tmp_path / "long.py").write_text("def g():\n" + "    x = 1\n" * MAX_FUNCTION_LINES)
    assert list(long_functions(tmp_path, tmp_path)) == [f"long.py:1: g ({MAX_FUNCTION_LINES + 1} lines)"]


def test_the_tests_mirror_the_package():
    layers = {p.name for p in (REPO / "mamo_l2l").iterdir() if (p / "__init__.py").is_file()}
    folders = {p.name for p in (REPO / "tests").iterdir() if p.is_dir() and p.name not in ("fixtures", "__pycache__")}
    assert folders <= layers, f"test folders without a package folder: {sorted(folders - layers)}"
    for folder in folders:
        assert list((REPO / "tests" / folder).glob("test_*.py")), f"tests/{folder} holds no tests"
    top = sorted(p.name for p in (REPO / "tests").glob("test_*.py"))
    assert set(top) <= {"test_docs.py", "test_extending.py", "test_habits.py", "test_layers.py", "test_packaging.py",
                        "test_readme.py"}, f"tests of one layer belong in its folder: {top}"
