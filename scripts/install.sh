#!/usr/bin/env bash
# One install path for mamo_l2l: a virtual environment with torch, the project and learn2learn.
#
#   bash scripts/install.sh            # creates ./.venv (override with VENV=path)
#
# Order matters:
#  1. torch first, the build chosen by what the machine has (scripts/install_torch.sh, which says
#     which it chose): an NVIDIA GPU -> PyPI's CUDA build; otherwise the CPU build (on disk where
#     the project's machines keep it, else from https://download.pytorch.org/whl/cpu). TORCH_SPEC /
#     TORCH_INDEX override it. A torch that is already importable in the environment is kept.
#  2. the project (pip install -e .[EXTRAS], EXTRAS without l2l); its torch>=2.1 requirement is
#     then already satisfied. EXTRAS defaults to test,higher,l2l: what the tests need (both optional
#     backends); e.g. EXTRAS=test,higher,l2l,plot adds matplotlib, EXTRAS=test the func backend alone.
#  3. with l2l in EXTRAS, learn2learn 0.2.0 without its dependencies: it has no wheel for Python 3.11 and its sdist's
#     pre-generated C does not compile there, so it is rebuilt with Cython. Its package __init__
#     imports torchvision/gym, which mamo_l2l never uses; mamo_l2l.backends.compat loads learn2learn's
#     algorithms and utils without them when they cannot be imported (docs/install.md).
# No browser: the one the web page test drives comes from scripts/install_browser.sh, which only
# `make test` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-test,higher,l2l}
# pip cannot build learn2learn's sdist on Python 3.11: step 3 does; the other extras go to pip
PIP_EXTRAS=$(echo ",$EXTRAS," | sed -e 's/,l2l,/,/g' -e 's/^,//' -e 's/,$//')
WANT_L2L=$(case ",$EXTRAS," in *,l2l,*) echo 1;; *) echo 0;; esac)

if [ ! -x "$VENV/bin/python" ]; then
  echo "[install] creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
pip_q() { "$PY" -m pip install --disable-pip-version-check -q "$@" 2>&1 | grep -v "is ignored: it is neither" || true; }

# shellcheck source=scripts/install_torch.sh
. scripts/install_torch.sh
install_torch "$PY"

SPEC="."
if [ -n "$PIP_EXTRAS" ]; then SPEC=".[$PIP_EXTRAS]"; fi
echo "[install] installing mamo_l2l from $SPEC (editable)"
pip_q -e "$SPEC"

if [ "$WANT_L2L" != "1" ]; then
  echo "[install] l2l not in EXTRAS: skipping learn2learn"
elif "$PY" -c "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('learn2learn') else 1)"; then
  echo "[install] learn2learn already present"
else
  echo "[install] building learn2learn 0.2.0 with Cython (about 30 s)"
  pip_q cython
  pip_q --no-deps learn2learn==0.2.0 --config-settings=--build-option=build_ext
fi

# Fail loudly here rather than at the first training step.
"$PY" - <<'PYEOF'
import torch, mamo_l2l
from mamo_l2l.backends import BACKENDS
ready = [name for name, info in BACKENDS.items() if info.missing_dependency() is None]
if "l2l" in ready:
    from mamo_l2l.backends.compat import import_learn2learn
    import_learn2learn()
print("[install] ok: torch", torch.__version__, "| mamo_l2l", mamo_l2l.__version__, "| backends:", ", ".join(ready))
PYEOF
