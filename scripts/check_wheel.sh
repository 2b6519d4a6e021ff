#!/usr/bin/env bash
# Build the wheel and the sdist, fail on setuptools' warnings about packages or data left out,
# then install the wheel into a fresh virtual environment and run it from another folder:
#
#   bash scripts/check_wheel.sh        # or: make check-wheel (CI runs it: .ci/run)
#
# The fresh environment gets torch the way scripts/install.sh does (scripts/install_torch.sh: here
# the CPU wheel lying on disk), then the wheel with its other dependencies from pip.
# PYTHON (default python3) makes the fresh environment; BUILD_PY (default .venv/bin/python, else
# PYTHON) builds, with setuptools and wheel already there (--no-build-isolation: nothing fetched).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-python3}
BUILD_PY=${BUILD_PY:-.venv/bin/python}
[ -x "$BUILD_PY" ] || BUILD_PY=$(command -v "$PYTHON")
BUILD_PY=$(cd "$(dirname "$BUILD_PY")" && pwd)/$(basename "$BUILD_PY")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mamo-check-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# build from a copy of the files git tracks or would track (no stale build/ or egg-info, no data)
SRC="$WORK/src"
mkdir -p "$SRC"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf - | tar -xf - -C "$SRC"
else   # an unpacked sdist: everything but environments and build outputs
  tar --exclude=./.venv --exclude=./build --exclude=./dist --exclude='*.egg-info' -cf - . | tar -xf - -C "$SRC"
fi

echo "[check-wheel] building the wheel"
(cd "$SRC" && "$BUILD_PY" -m pip wheel --no-deps --no-build-isolation -v -w "$WORK/dist" . >"$WORK/wheel.log" 2>&1) \
  || { tail -30 "$WORK/wheel.log"; echo "[check-wheel] FAILED: the wheel did not build" >&2; exit 1; }
echo "[check-wheel] building the sdist"
(cd "$SRC" && "$BUILD_PY" -c "from setuptools import build_meta; print(build_meta.build_sdist('$WORK/dist'))" \
  >"$WORK/sdist.log" 2>&1) || { tail -30 "$WORK/sdist.log"; echo "[check-wheel] FAILED: the sdist did not build" >&2; exit 1; }
if grep -E "is absent from the .packages. configuration|Package would be ignored|warning: no (previously-included )?files found|SetuptoolsDeprecationWarning" \
    "$WORK/wheel.log" "$WORK/sdist.log"; then
  echo "[check-wheel] FAILED: setuptools warned (above): fix setup.cfg / MANIFEST.in" >&2
  exit 1
fi
WHEEL=$(ls "$WORK"/dist/mamo_l2l-*.whl)
SDIST=$(ls "$WORK"/dist/mamo_l2l-*.tar.gz)
"$BUILD_PY" - "$WHEEL" "$SDIST" <<'PYEOF'
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1:]
names = set(zipfile.ZipFile(wheel).namelist())
need = ["mamo_l2l/configs/default.yaml", "mamo_l2l/datasets/ml-100k.yaml", "mamo_l2l/serving/web/index.html",
        "mamo_l2l/cli/main.py"]
missing = [n for n in need if n not in names]
missing += ["a LICENSE in the wheel's metadata"] if not any(n.endswith("LICENSE") for n in names) else []
bad = sorted(n for n in names if "__pycache__" in n or n.startswith("tests/"))
tar = {n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n}
for n in ("LICENSE", "tests/conftest.py", "tests/synthetic.py", "tests/fixtures/make_fixtures.py", "MANIFEST.in",
          "docs/install.md", "scripts/install.sh"):
    if n not in tar:
        missing.append(f"{n} in the sdist")
if missing or bad:
    sys.exit(f"[check-wheel] FAILED: missing {missing}; should not be in the wheel: {bad}")
print(f"[check-wheel] wheel: {len(names)} files; sdist: {len(tar)} files (tests with conftest.py and fixtures)")
PYEOF

echo "[check-wheel] installing the wheel into a fresh virtual environment"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
# shellcheck source=scripts/install_torch.sh
. "$REPO/scripts/install_torch.sh"
install_torch "$VPY"
"$VPY" -m pip install --disable-pip-version-check -q "$WHEEL" 2>&1 | grep -v "is ignored: it is neither" || true
cd "$WORK"        # another folder: the checkout is not on sys.path
"$WORK/venv/bin/mamo-l2l" --help >"$WORK/help.txt"
grep -q "Cold-start recommendation by meta-learning" "$WORK/help.txt"
"$VPY" - <<'PYEOF'
import os
import mamo_l2l as ml
from mamo_l2l.core.config import load_config
from mamo_l2l.serving.app import page_html
assert "site-packages" in ml.__file__, ml.__file__
cfg = load_config("melu-paper")                 # a packaged config (package data)
assert "<html" in page_html().lower()           # the web page (package data)
print(f"[check-wheel] ok: mamo_l2l {ml.__version__} from {os.path.dirname(ml.__file__)}; "
      f"`mamo-l2l --help` runs; packaged config and web page load")
PYEOF
