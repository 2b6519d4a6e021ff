"""The import contract of the package (docs/architecture.md): subpackages in layers, each importing
only from layers below it (or from within itself), no import circle between modules, imports at
module top (a function-level import only for an optional dependency, marked so), and no private
name imported across modules, in the package and in the tests."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "mamo_l2l"
#: lowest first; a module may import its own layer and the layers before it
LAYERS = ("core", "data", "models", "algorithms", "backends", "evaluation", "recommend", "training", "api",
          "serving", "cli")
#: the package root (the public API facade, ``python -m``) sits above every layer
TOP = ("mamo_l2l", "mamo_l2l.__main__")
OPTIONAL_MARK = "optional dependency"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> List[Tuple[str, int, bool, str]]:
    """(imported mamo_l2l module, line, at module level, source line) for every import in ``path``;
    ``from mamo_l2l.x import y`` counts as importing mamo_l2l.x.y when that is a module."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    tree = ast.parse(text)
    found = []

    def visit(node, top: bool, guarded: bool):
        for child in ast.iter_child_nodes(node):
            inside = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            static = guarded or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
            if isinstance(child, ast.ImportFrom):
                assert child.level == 0, f"{path}:{child.lineno}: relative import (write it absolute)"
                names = [f"{child.module}.{a.name}" for a in child.names]
                targets = [n if _is_module(n) else child.module for n in names]
                for target in targets:
                    found.append((target, child.lineno, top and not guarded, lines[child.lineno - 1], guarded))
            elif isinstance(child, ast.Import):
                for a in child.names:
                    found.append((a.name, child.lineno, top and not guarded, lines[child.lineno - 1], guarded))
            visit(child, inside, static)

    visit(tree, True, False)
    return found


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (REPO / rel).with_suffix(".py").is_file() or (REPO / rel / "__init__.py").is_file()


def layer_of(module: str) -> int:
    if module in TOP:
        return len(LAYERS)
    parts = module.split(".")
    assert len(parts) >= 2 and parts[1] in LAYERS, f"{module} lies in no layer; LAYERS: {LAYERS}"
    return LAYERS.index(parts[1])


def package_modules() -> Dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def graph() -> Dict[str, Set[str]]:
    """Module-level (load-time) imports between the package's modules."""
    mods = package_modules()
    edges: Dict[str, Set[str]] = {m: set() for m in mods}
    for m, p in mods.items():
        for target, _, top, _, guarded in imports_of(p):
            if top and not guarded and target.startswith("mamo_l2l") and target in mods and target != m:
                edges[m].add(target)
    return edges


def find_cycle(edges: Dict[str, Set[str]]):
    """A list of modules forming a circle of imports, or None."""
    state: Dict[str, int] = {}
    stack: List[str] = []

    def dfs(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state:
                found = dfs(n)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state:
            found = dfs(m)
            if found:
                return found
    return None


def test_every_module_lies_in_a_layer():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(LAYERS)
    loose = [p.name for p in PACKAGE.glob("*.py") if module_name(p) not in TOP]
    assert loose == [], f"modules outside every layer: {loose}"


def test_no_module_imports_a_higher_layer():
    bad = []
    for m, p in package_modules().items():
        for target, line, _, _, guarded in imports_of(p):
            if not target.startswith("mamo_l2l") or guarded:
                continue
            if target == "mamo_l2l" or layer_of(target) > layer_of(m):
                bad.append(f"{p.relative_to(REPO)}:{line}: {m} imports {target}")
    assert bad == [], "upward imports:\n" + "\n".join(bad)


def test_no_import_circle():
    cycle = find_cycle(graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_function_level_imports_only_for_marked_optional_dependencies():
    bad = []
    for m, p in package_modules().items():
        for target, line, top, source, guarded in imports_of(p):
            if not top and not guarded and (OPTIONAL_MARK not in source or target.startswith("mamo_l2l")):
                bad.append(f"{p.relative_to(REPO)}:{line}: {source.strip()}")
    assert bad == [], "imports inside functions (move them to the module top):\n" + "\n".join(bad)


@pytest.mark.parametrize("root", ["mamo_l2l", "tests", "benchmarks", "studies", "scripts"])
def test_no_private_name_is_imported_across_modules(root):
    bad = []
    for p in sorted((REPO / root).rglob("*.py")) if (REPO / root).is_dir() else []:
        tree = ast.parse(p.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mamo_l2l"):
                bad += [f"{p.relative_to(REPO)}:{node.lineno}: {a.name} from {node.module}"
                        for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                owner = ast.unparse(node.value)
                if owner.split(".")[0] in package_aliases(tree):
                    bad.append(f"{p.relative_to(REPO)}:{node.lineno}: {owner}.{node.attr}")
            if (isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("setattr", "delattr"))
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
                    and str(node.args[1].value).startswith("_") and not str(node.args[1].value).startswith("__")
                    and ast.unparse(node.args[0]).split(".")[0] in package_aliases(tree)):
                bad.append(f"{p.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert bad == [], "private names used across modules:\n" + "\n".join(bad)


def package_aliases(tree) -> Set[str]:
    """Names bound to mamo_l2l or one of its modules in a file (``import mamo_l2l as ml``,
    ``from mamo_l2l.training import fit``)."""
    names = {"mamo_l2l"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith("mamo_l2l")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mamo_l2l"):
            names |= {a.asname or a.name for a in node.names if _is_module(f"{node.module}.{a.name}")}
    return names


def test_no_private_name_is_patched_by_name_in_the_tests():
    pattern = re.compile(r"[\"'](mamo_l2l(?:\.\w+)*\._[a-z]\w*)[\"']")
    bad = [f"{p.relative_to(REPO)}: {m}" for p in sorted((REPO / "tests").rglob("*.py"))
           for m in pattern.findall(p.read_text(encoding="utf-8"))]
    assert bad == [], "private names reached by a dotted string:\n" + "\n".join(bad)


# ----------------------------------------------------------------------------- the checker itself
def test_the_checker_finds_an_upward_import_and_a_circle(tmp_path, monkeypatch):
    """The contract tests fail on the two faults they exist for (a checker that cannot fail
    checks nothing): an upward import and a circle, in a throwaway copy of the layout."""
    pkg = tmp_path / "mamo_l2l"
    for layer in ("core", "data"):
        (pkg / layer).mkdir(parents=True)
        (pkg / layer / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "core" / "a.py").write_text("from mamo_l2l.data.b import x\n")      # core -> data: upward
    (pkg / "data" / "b.py").write_text("from mamo_l2l.data.c import y\nx = 1\n")
    (pkg / "data" / "c.py").write_text("from mamo_l2l.data.b import x\ny = 2\n")  # b <-> c: a circle
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    with pytest.raises(AssertionError, match="core.a imports mamo_l2l.data.b"):
        test_no_module_imports_a_higher_layer()
    with pytest.raises(AssertionError, match="import circle"):
        test_no_import_circle()
