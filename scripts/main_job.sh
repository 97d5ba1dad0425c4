#!/usr/bin/env bash
# The README's main job: set-up, then build, train and evaluate the embedded default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TRANSFORMERS_OFFLINE=1
ccr main-job --output "${1:-runs/main}" "${@:2}"  # further flags (--overwrite, --resume, ...) pass through
