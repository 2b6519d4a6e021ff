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


# ------------------------------------------------------------------ wheel, sdist, install scripts
def test_packaging_files_take_the_data_folders_and_ship_the_tests():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["options"]["packages"].strip() == "find_namespace:"      # configs, datasets, web: no __init__.py
    data = cfg["options.package_data"]
    assert "yaml" in data["mamo_l2l.configs"] and "yaml" in data["mamo_l2l.datasets"]
    assert "html" in data["mamo_l2l.serving.web"]
    assert cfg["metadata"]["license"].strip() == "MIT" and "MIT License" in (REPO / "LICENSE").read_text()
    assert 'learn2learn==0.2.0; python_version < "3.11"' in cfg["options.extras_require"]["l2l"]
    assert cfg["options.extras_require"]["tensorboard"].strip() == "tensorboard"
    manifest = (REPO / "MANIFEST.in").read_text()
    assert "recursive-include tests *.py" in manifest and "prune tests/fixtures/generated" in manifest


def test_ci_checks_the_wheel_after_lint_and_tests_and_the_demo_installs_no_browser():
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines() if line.startswith("make")]
    assert ci == ["make lint", "make test", "make check-wheel"]
    makefile = (REPO / "Makefile").read_text()
    targets = {line.split(":")[0]: line.split(":", 1)[1].split() for line in makefile.splitlines()
               if line and not line.startswith(("\t", "#", ".", " ")) and ":" in line and "=" not in line}
    assert targets["demo"] == ["install"] and "browser" in targets["test"]
    assert "check_wheel.sh" in makefile
    for script in ("install.sh", "install_torch.sh"):
        text = (REPO / "scripts" / script).read_text()
        assert "apt-get" not in text and "chromium" not in text
    assert "apt-get install" in (REPO / "scripts" / "install_browser.sh").read_text()


_FAKE_PYTHON = """#!/usr/bin/env bash
# a stand-in python for scripts/install_torch.sh: records `pip install`, knows torch once installed
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  if [ "$3" = "install" ]; then shift 3; echo "$@" > "$STATE/pip_args"; touch "$STATE/installed"; exit 0; fi
  exit 1
fi
case "$2" in
  *version_info*) echo cp311 ;;
  "import torch") [ -f "$STATE/installed" ] ;;
  *) echo "9.9.9 CPU build" ;;
esac
"""


def _install_torch(tmp_path, gpu: bool, wheel_on_disk: bool, **env):
    """Run scripts/install_torch.sh with a stand-in python and nvidia-smi; (its output, the pip arguments)."""
    bin_dir, state, links = tmp_path / "bin", tmp_path / "state", tmp_path / "wheels"
    for d in (bin_dir, state, links):
        d.mkdir(parents=True)
    (bin_dir / "python").write_text(_FAKE_PYTHON)
    smi = "echo 'GPU 0: NVIDIA H200 (UUID: x)'\n" if gpu else "exit 9\n"     # present, but no GPU answers
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\n" + smi)
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    if wheel_on_disk:
        (links / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    run_env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "STATE": str(state), "PIP_FIND_LINKS": str(links), **env}
    res = subprocess.run(["bash", str(REPO / "scripts" / "install_torch.sh"), str(bin_dir / "python")],
                         capture_output=True, text=True, env=run_env, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout, (state / "pip_args").read_text().split()


@pytest.mark.skipif(sys.platform != "linux", reason="the choice below is Linux's (macOS takes PyPI's torch)")
def test_install_torch_chooses_by_the_machine_and_says_which(tmp_path):
    out, args = _install_torch(tmp_path / "gpu", gpu=True, wheel_on_disk=True)
    assert "NVIDIA GPU found (GPU 0: NVIDIA H200" in out and "CUDA build from PyPI" in out
    assert args[-1] == "torch>=2.1" and "--index-url" not in args
    out, args = _install_torch(tmp_path / "disk", gpu=False, wheel_on_disk=True)
    assert "installing the CPU build torch==2.13.0 (its wheel is on disk)" in out and args[-1] == "torch==2.13.0"
    out, args = _install_torch(tmp_path / "cpu", gpu=False, wheel_on_disk=False)
    assert "installing the CPU build from https://download.pytorch.org/whl/cpu" in out
    assert args[-3:] == ["torch>=2.1", "--index-url", "https://download.pytorch.org/whl/cpu"]
    out, args = _install_torch(tmp_path / "mine", gpu=True, wheel_on_disk=True, TORCH_SPEC="torch==2.5.1",
                               TORCH_INDEX="https://example.invalid/simple")
    assert "(TORCH_SPEC/TORCH_INDEX set)" in out
    assert args[-3:] == ["torch==2.5.1", "--index-url", "https://example.invalid/simple"]
