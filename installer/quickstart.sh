#!/usr/bin/env bash
# The main job on the bundled default model: install what is missing, build, then print the model's
# summary and its perplexity on held-out TinyStories text.
set -euo pipefail
cd "$(dirname "$0")/.."
bash installer/install-deps.sh
bash installer/build.sh
model=${QUENCH_MODEL:-../shared/data/tinystories-656k}
text=${QUENCH_EVAL_TEXT:-../shared/data/tinystories-valid/tinystories_val.eval.txt}
./build/app/quench-cli info "$model"
echo
./build/app/quench-cli eval "$model" --text "$text"
