#!/usr/bin/env bash
# The README's test command: set-up, then the whole suite offline with a throw-away HF_HOME.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export GRADIO_ANALYTICS_ENABLED=False
HF_HOME="$(mktemp -d)"
export HF_HOME
rc=0
python3 -m pytest -q "$@" || rc=$?
# pytest exits 5 when it collected no test: that is a failure of the suite, not a pass.
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$rc"
