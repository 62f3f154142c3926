#!/usr/bin/env bash
# Create .venv (if missing) and install llmrec with its dev extras. Idempotent; no network
# beyond the package index. Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24"
.venv/bin/python -m pip install -q --disable-pip-version-check \
  -c scripts/constraints.txt "torch==2.13.0"
.venv/bin/python -m pip install -q --disable-pip-version-check \
  -c scripts/constraints.txt -e ".[dev]"
