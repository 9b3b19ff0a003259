#!/usr/bin/env bash
# The main job end to end on the embedded synthetic data, in about 5 minutes on 2 idle CPU cores: set up .venv, train
# the original, write 30 users to forget to runs/demo/forget_users.txt, unlearn them with E2URec, retrain without them,
# evaluate and audit, and print the story as a short table (runs/demo/summary.md). Each step prints the llmrec
# command it runs; a second run reuses every unchanged step. Options: key=value (python -m llmrec.demo --help), e.g.
#   bash scripts/demo.sh mixed_precision=no      # fp32 everywhere (what a CPU without AVX512-BF16/AMX runs anyway)
#   bash scripts/demo.sh method=neggrad          # another unlearning method
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. "${VIRTUAL_ENV:-.venv}/bin/activate" 2>/dev/null || . .venv/bin/activate
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
python -m llmrec.demo "$@"
