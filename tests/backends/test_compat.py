"""learn2learn imports and works in this environment (through the guard when it must)."""
import importlib.util
import subprocess
import sys

from mamo_l2l.backends import BACKENDS
from mamo_l2l.backends.compat import LEARN2LEARN_MISSING


def test_import_learn2learn_and_maml_work():
    code = (
        "import torch, mamo_l2l.backends.compat as c\n"
        "l2l = c.import_learn2learn()\n"
        "import learn2learn\n"
        "assert learn2learn is l2l\n"
        "m = learn2learn.algorithms.MAML(torch.nn.Linear(2, 1), lr=0.1)\n"
        "clone = m.clone()\n"
        "loss = clone(torch.ones(1, 2)).pow(2).sum()\n"
        "clone.adapt(loss)\n"
        "assert not torch.equal(clone.module.weight, m.module.weight)\n"
        "learn2learn.utils.update_module(clone.module, updates=[torch.zeros(1, 2), None])\n"
        "print('guard' if c.GUARD_ACTIVE else 'plain', learn2learn.__version__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    mode, version = out.stdout.split()
    assert version == "0.2.0"
    # the guard must be active exactly when the plain import fails in this environment
    plain = subprocess.run([sys.executable, "-c", "import learn2learn"], capture_output=True, text=True, timeout=120)
    assert mode == ("plain" if plain.returncode == 0 else "guard")


def test_guard_is_not_used_when_the_plain_import_works(tmp_path):
    # A fake learn2learn whose __init__ imports fine: the guard must return it untouched.
    pkg = tmp_path / "learn2learn"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("__version__ = 'fake'\nalgorithms = 'fake-algorithms'\n")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import mamo_l2l.backends.compat as c\n"
            "m = c.import_learn2learn()\n"
            "print(m.__version__, c.GUARD_ACTIVE)\n") % str(tmp_path)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["fake", "False"]


def test_missing_learn2learn_gives_a_clear_error(tmp_path):
    code = ("import importlib.util, sys\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda n, *a: None if n == 'learn2learn' else real(n, *a)\n"
            "import mamo_l2l.backends.compat as c\n"
            "from mamo_l2l.core.errors import MamoError\n"
            "try:\n    c.import_learn2learn()\nexcept MamoError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == LEARN2LEARN_MISSING
    assert "On Python 3.11 and later pip cannot install it as a dependency: run `pip install cython`, then `pip " \
           "install --no-deps learn2learn==0.2.0 --config-settings=--build-option=build_ext` (or `bash " \
           "scripts/install.sh`, which does both). On Python 3.9/3.10 `pip install 'mamo_l2l[l2l]'` also works " \
           "(docs/install.md)." in out.stdout


def test_the_l2l_backend_gives_the_same_path_when_learn2learn_is_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "learn2learn" else real(n, *a))
    message = BACKENDS["l2l"].missing_dependency()
    assert message.startswith("backend 'l2l': " + LEARN2LEARN_MISSING) and "--backend func" in message
    assert "mamo_l2l[l2l]'` also works" in message
