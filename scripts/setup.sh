#!/usr/bin/env bash
# Installs ccr-1tok and its test extras into the current Python. torch goes first and pinned: an
# open range on a machine with no torch pulls a multi-GB CUDA build (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q "torch==${CCR_TORCH_VERSION:-2.13.0}"
python3 -m pip install -q -e ".[test]"
# The demo's browser test drives Debian's chromium (with CJK fonts, so Japanese and Chinese render).
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi "Noto Sans CJK"; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-noto-cjk
    else
        echo "setup: install chromium and fonts-noto-cjk (apt-get, as root) for the demo's browser test" >&2
    fi
fi
