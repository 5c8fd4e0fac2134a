#!/usr/bin/env bash
# The main job on the bundled default model: install what is missing, build quench-cli (nothing else: the
# tests and the GUI are run-tests.sh's), then quantize every block's linear layers to 2.5 code bits per
# weight (2.617 bits per weight in all, with the row scales and the shared matrix) with LiftQuant
# (calibrated on TinyStories training text), record the run in a project file, export the packed checkpoint,
# reload it and report its KL divergence and perplexity against the full-precision model on held-out text.
set -euo pipefail
cd "$(dirname "$0")/.."
bash installer/install-deps.sh
QUENCH_TARGETS=quench-cli bash installer/build.sh
model=${QUENCH_MODEL:-../shared/data/tinystories-656k}
calib=${QUENCH_CALIB_TEXT:-../shared/data/tinystories-valid/tinystories_val.train.txt}
text=${QUENCH_EVAL_TEXT:-../shared/data/tinystories-valid/tinystories_val.eval.txt}
codec=${QUENCH_CODEC:-liftquant:D=20,d=8}
out=build/quickstart
mkdir -p "$out"
cli=./build/app/quench-cli

$cli info "$model"
echo
$cli quantize "$model" --codec "$codec" --calib "$calib" --eval "$text" --out "$out/study.h5"
echo
$cli export "$out/study.h5" --format packed --out "$out/packed" --replace
echo
echo "Reloaded from $out/packed:"
$cli eval "$out/packed" --ref "$model" --text "$text"
echo
echo "Runs recorded in $out/study.h5 (quench-cli show $out/study.h5 prints the newest):"
$cli runs "$out/study.h5"
