#!/usr/bin/env bash
# The device check in one call (docs/performance.md, "GPU"); at most about 8 minutes on a GPU.
#   bash benchmarks/gpu_check.sh [--device cuda|cpu] [--quick] [--data-dir DIR] [gpu_check.py options]
# Installs the package into the active Python when it is missing (torch as the machine has it;
# scripts/install.sh otherwise), runs the CUDA tests (marker cuda; they skip without a GPU), then
# benchmarks/gpu_check.py, which prints one table with the command of every row.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
if ! "$PY" -c "import mamo_l2l, learn2learn, higher" 2>/dev/null; then
    bash scripts/install.sh
    PY=.venv/bin/python
fi
echo "== CUDA tests (python -m pytest -q -m cuda tests)"
"$PY" -m pytest -q -m cuda tests -p no:cacheprovider || { rc=$?; [[ $rc -eq 5 ]] || exit $rc; }
echo "== benchmarks/gpu_check.py $*"
"$PY" benchmarks/gpu_check.py "$@"
