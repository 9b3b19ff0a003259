#!/usr/bin/env bash
# Set up llmrec in ./.venv (or the active virtualenv): the CPU build of torch first where there is
# no GPU (a bare `torch` requirement would pull a multi-GB CUDA build), then the package and dev extras.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    pip install -q "torch>=2.13"
  elif ls "${PIP_FIND_LINKS:-/opt/wheels}"/torch-2.13.0* >/dev/null 2>&1; then
    pip install -q "torch==2.13.0"            # the CPU wheel already on disk
  else
    pip install -q "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
  fi
fi
# the package and its extras again only when pyproject.toml changed since the last set-up (pip takes ~15 s to say so)
stamp="${VIRTUAL_ENV}/.llmrec-setup"
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ] || ! python -c "import llmrec" >/dev/null 2>&1; then
  pip install -q -e ".[dev]"
  echo "$wanted" > "$stamp"
fi
echo "llmrec set up in ${VIRTUAL_ENV}"
