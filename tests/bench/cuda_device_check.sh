#!/usr/bin/env bash
# Builds tests/bench/cuda_device_check.cu with the packed kernels using nvcc and g++ alone (no CMake, no
# LibTorch: a lent GPU machine has only CUDA), runs it under compute-sanitizer's memcheck without timings,
# then plainly for correctness and timings. Run from the repository root:  OUT=dir bash tests/bench/cuda_device_check.sh
set -euo pipefail
OUT=${OUT:-build/cuda-device-check}
B=$(mktemp -d)
mkdir -p "$OUT"
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
ARCH=${ARCH:-"-gencode arch=compute_90,code=sm_90"}
FLAGS="-std=c++17 -O3 -I kernels/include -DQUENCH_HAVE_CUDA=1"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
$NVCC --version | tail -2
pids=()
for f in kernels/cuda/*.cu tests/bench/cuda_device_check.cu; do
    $NVCC $FLAGS $ARCH -c "$f" -o "$B/$(basename "$f").o" & pids+=($!)
done
for f in kernels/cpu/*.cpp; do
    g++ $FLAGS -I /usr/local/cuda/include -c "$f" -o "$B/$(basename "$f").o" & pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
CUBLAS_DIR=/usr/local/cuda/lib64
[ -e $CUBLAS_DIR/libcublas.so ] || CUBLAS_DIR=$(dirname "$(find / -name 'libcublas.so*' 2>/dev/null | head -1)")
$NVCC $ARCH -o "$B/cuda_device_check" "$B"/*.o -L"$CUBLAS_DIR" -lcublas -lpthread -Xlinker -rpath="$CUBLAS_DIR"
if command -v compute-sanitizer >/dev/null; then
    timeout 180 compute-sanitizer --tool memcheck --error-exitcode 3 --print-limit 20 "$B/cuda_device_check" --no-timing \
        >"$OUT/sanitizer.txt" 2>&1 || { tail -20 "$OUT/sanitizer.txt"; echo "compute-sanitizer: FAILED"; exit 1; }
    tail -3 "$OUT/sanitizer.txt"
fi
"$B/cuda_device_check" 2>&1 | tee "$OUT/device_check.txt"
