#!/usr/bin/env bash
# Set up, then train the tiny default recommender on the embedded synthetic data and evaluate it.
# Outputs land in runs/demo (model/, evaluation.md, config.yaml). Extra args are recipe overrides.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. "${VIRTUAL_ENV:-.venv}/bin/activate" 2>/dev/null || . .venv/bin/activate
export HF_HUB_OFFLINE=1
llmrec train recipes/train/default.yaml output_dir=runs/demo "$@"
llmrec evaluate recipes/train/default.yaml output_dir=runs/demo "$@"
