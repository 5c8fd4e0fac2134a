#!/usr/bin/env bash
# Configures and builds Quench into ./build (Release, Ninja, ccache when present). Extra arguments go to
# CMake's configure step, e.g. -DQUENCH_BUILD_GUI=OFF or -DCMAKE_PREFIX_PATH=/opt/libtorch. QUENCH_TARGETS
# (space-separated) builds only those targets, e.g. QUENCH_TARGETS=quench-cli; the default is everything.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
targets=()
for t in ${QUENCH_TARGETS:-}; do targets+=(--target "$t"); done
cmake --build build -j "$jobs" "${targets[@]}"
