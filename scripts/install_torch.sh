#!/usr/bin/env bash
# Install torch into a Python environment, choosing the build by what the machine has, and say
# which it chose (docs/install.md, "Which torch"):
#
#   bash scripts/install_torch.sh [PYTHON]     # PYTHON: the environment's python (default .venv/bin/python)
#   . scripts/install_torch.sh; install_torch "$PY"   # what scripts/install.sh and check_wheel.sh do
#
#  * a torch already importable there is kept;
#  * TORCH_SPEC (e.g. "torch==2.5.1") and/or TORCH_INDEX (an index URL) override the choice;
#  * an NVIDIA GPU (nvidia-smi answers): PyPI's default torch, a CUDA build (~2.7 GB more);
#  * macOS: PyPI's default torch (CPU / Apple GPU; there is no CUDA build);
#  * otherwise the CPU build: a torch-*+cpu wheel lying in pip's find-links folder (this project's
#    machines: torch==2.13.0 on disk), else from the CPU index https://download.pytorch.org/whl/cpu.
CPU_INDEX=https://download.pytorch.org/whl/cpu

_torch_say() { echo "[install] torch: $*"; }

# the find-links folders pip is configured with (PIP_FIND_LINKS, pip config), one per line
_torch_find_links() {
  local py=$1
  { echo "${PIP_FIND_LINKS:-}" | tr ' ' '\n'
    "$py" -m pip config get global.find-links 2>/dev/null | tr ' ' '\n'; } | sed -e 's#^file://##' | grep -v '^$' || true
}

# the CPU torch wheel on disk for this Python, if any: prints its version (e.g. 2.13.0)
_torch_cpu_wheel_on_disk() {
  local py=$1 tag dir whl
  tag=$("$py" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
  while read -r dir; do
    [ -d "$dir" ] || continue
    for whl in "$dir"/torch-*+cpu-"$tag"-"$tag"-*.whl; do
      [ -f "$whl" ] || continue
      basename "$whl" | sed -e 's/^torch-//' -e 's/+cpu-.*$//'
      return 0
    done
  done < <(_torch_find_links "$py")
  return 1
}

install_torch() {
  local py=${1:-.venv/bin/python} spec index version
  if "$py" -c "import torch" 2>/dev/null; then
    _torch_say "$("$py" -c 'import torch; print(torch.__version__, "already present,", "CUDA " + torch.version.cuda + " build" if torch.version.cuda else "CPU build")' 2>/dev/null), kept"
    return 0
  fi
  spec=${TORCH_SPEC:-}
  index=${TORCH_INDEX:-}
  if [ -n "$spec" ] || [ -n "$index" ]; then
    spec=${spec:-torch}
    _torch_say "installing $spec${index:+ from $index} (TORCH_SPEC/TORCH_INDEX set)"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    spec="torch>=2.1"
    _torch_say "NVIDIA GPU found ($(nvidia-smi -L | head -1)): installing the CUDA build from PyPI ($spec, ~2.7 GB more than a CPU build)"
  elif [ "$(uname -s)" = "Darwin" ]; then
    spec="torch>=2.1"
    _torch_say "macOS: installing PyPI's torch ($spec; CPU and Apple GPU, no CUDA build exists)"
  elif version=$(_torch_cpu_wheel_on_disk "$py"); then
    spec="torch==$version"
    _torch_say "no NVIDIA GPU (nvidia-smi not found): installing the CPU build $spec (its wheel is on disk)"
  else
    spec="torch>=2.1"
    index=$CPU_INDEX
    _torch_say "no NVIDIA GPU (nvidia-smi not found): installing the CPU build from $CPU_INDEX"
  fi
  # shellcheck disable=SC2086
  "$py" -m pip install --disable-pip-version-check -q $spec ${index:+--index-url "$index"} 2>&1 \
    | grep -v "is ignored: it is neither" || true
  "$py" -c "import torch" 2>/dev/null || { echo "[install] error: torch did not install ($spec)" >&2; return 1; }
  _torch_say "$("$py" -c 'import torch; print(torch.__version__, "CUDA " + torch.version.cuda + " build" if torch.version.cuda else "CPU build")' 2>/dev/null) installed"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  install_torch "${1:-.venv/bin/python}"
fi
