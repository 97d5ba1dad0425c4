#!/usr/bin/env bash
# Installs ccr-1tok and its test extras into the current Python. torch goes first and pinned: an
# open range on a machine with no torch pulls a multi-GB CUDA build (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q "torch==${CCR_TORCH_VERSION:-2.13.0}"
python3 -m pip install -q -e ".[test]"
