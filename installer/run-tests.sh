#!/usr/bin/env bash
# Installs what is missing, builds everything (CUDA kernels too when nvcc is found) and runs the whole
# test suite. GPU tests skip themselves when no GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash installer/install-deps.sh
bash installer/build.sh
cd build
ctest --output-on-failure -j "$(nproc 2>/dev/null || echo 2)" --timeout 1200
