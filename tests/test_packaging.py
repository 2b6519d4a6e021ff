"""Packaging: the version in one place, optional backends as extras with a clear message when
missing, registries behind the CLI choices, a portable peak-memory measure."""
import configparser
import subprocess
import sys
from pathlib import Path

import pytest

import mamo_l2l
from mamo_l2l.backends import BACKENDS, get_backend, register_backend
from mamo_l2l.core.errors import MamoError

REPO = Path(__file__).resolve().parent.parent


def test_version_is_written_once():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["metadata"]["version"].strip() == "attr: mamo_l2l.core.version.__version__"
    assert mamo_l2l.__version__.count(".") == 2


def test_optional_backends_are_extras():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    extras = cfg["options.extras_require"]
    assert "higher" in extras["higher"] and "learn2learn" in extras["l2l"]
    assert "higher" not in cfg["options"]["install_requires"]
    assert {BACKENDS["l2l"].extra, BACKENDS["higher"].extra} == {"l2l", "higher"}
    install = (REPO / "scripts" / "install.sh").read_text()
    assert "EXTRAS=${EXTRAS:-test,higher,l2l}" in install


def test_a_missing_backend_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(BACKENDS, "ghost", BACKENDS["func"])   # restored by monkeypatch
    register_backend("ghost", "mamo_l2l.backends.func:FuncBackend", requires="no_such_module_xyz", extra="ghost")
    with pytest.raises(MamoError, match=r"pip install 'mamo_l2l\[ghost\]'"):
        get_backend("ghost")


def test_cli_and_config_choices_come_from_the_registry(monkeypatch):
    from click.testing import CliRunner

    from mamo_l2l.cli.main import app
    from mamo_l2l.core.config import Config
    res = CliRunner().invoke(app, ["train", "--help"])
    assert "|".join(BACKENDS) in res.output
    with pytest.raises(MamoError, match="train.backend"):
        Config().override("train", backend="nope")
    monkeypatch.setitem(BACKENDS, "mine", BACKENDS["func"])
    assert Config().override("train", backend="mine").train.backend == "mine"


def test_peak_memory_without_resource():
    """As on Windows (no ``resource``): psutil when installed, else None; the trainer imports."""
    code = ("import sys; sys.modules['resource'] = None\n"
            "import mamo_l2l.training.fit\n"
            "from mamo_l2l.training.run import peak_memory_mib\n"
            "v = peak_memory_mib()\n"
            "print('ok', v is None or v > 0)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok True"


def test_peak_memory_with_resource():
    from mamo_l2l.training.run import peak_memory_mib
    assert peak_memory_mib() > 1.0
