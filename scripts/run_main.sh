#!/usr/bin/env bash
# Install everything, then run the main job on MovieLens-100k (offline but for the package index).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/python eval/ml100k_main.py "$@"
