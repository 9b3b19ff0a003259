#!/usr/bin/env bash
# Set up, then run the default test suite (slow and bnb markers stay off). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. "${VIRTUAL_ENV:-.venv}/bin/activate" 2>/dev/null || . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
python -m pytest "$@"
