#!/usr/bin/env bash
# Peak resident set of the real-size jobs on a synthetic Llama-2-7B-shaped BF16 checkpoint, at several depths
# (issue 19: flat in depth, <= 4 GB for quantize, eval --ref and export on all 32 layers). Each command runs
# under /usr/bin/time -v; the table goes to stdout and to $OUT/memory.md. Run from the repository root:
#   LAYERS="2 8 32" OUT=/tmp/mem bash tests/bench/memory_real_shapes.sh
# Needs about 1.1 x the largest checkpoint on disk in $OUT (13.5 GB for 32 layers).
set -euo pipefail
CLI=${CLI:-build/app/quench-cli}
OUT=${OUT:-build/memory-bench}
LAYERS=${LAYERS:-"2 4 8"}
SHAPE=${SHAPE:-llama2-7b}
TEXT=${TEXT:-../shared/data/tinystories-valid/tinystories_val.eval.txt}
mkdir -p "$OUT"
peak() {  # peak RSS in MiB and wall seconds of one command; its output goes to $OUT/log.txt
    /usr/bin/time -f "%M %e" -o "$OUT/time.txt" "$@" >>"$OUT/log.txt" 2>&1 || { tail -5 "$OUT/log.txt"; exit 1; }
    read -r kb secs <"$OUT/time.txt"
    echo "$((kb / 1024)) MiB, ${secs} s"
}
{
    echo "| blocks | synth | quantize rtn:b=4,g=128 | export packed | export hf bf16 | eval --ref (512 tokens, ctx 256) |"
    echo "|---|---|---|---|---|---|"
} | tee "$OUT/memory.md"
for n in $LAYERS; do
    m="$OUT/$SHAPE-$n"
    rm -rf "$m" "$OUT/run-$n.h5" "$OUT/run-$n.h5.d" "$OUT/packed-$n" "$OUT/hf-$n"
    s=$(peak "$CLI" synth --shape "$SHAPE" --dtype bf16 --layers "$n" --out "$m" -q)
    q=$(peak "$CLI" quantize "$m" --codec rtn:b=4,g=128 --out "$OUT/run-$n.h5" -q)
    p=$(peak "$CLI" export "$OUT/run-$n.h5" --format packed --out "$OUT/packed-$n" -q)
    h=$(peak "$CLI" export "$OUT/run-$n.h5" --format hf --dtype bf16 --out "$OUT/hf-$n" -q)
    e=$(peak "$CLI" eval "$OUT/packed-$n" --ref "$m" --text "$TEXT" --max-tokens 512 --ctx 256 -q)
    echo "| $n | $s | $q | $p | $h | $e |" | tee -a "$OUT/memory.md"
    rm -rf "$m" "$OUT/run-$n.h5" "$OUT/run-$n.h5.d" "$OUT/packed-$n" "$OUT/hf-$n"
done
