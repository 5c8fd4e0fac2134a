#!/usr/bin/env bash
# Issue 19's goals at full depth: peak resident set and wall time of every real-size job on one synthetic
# checkpoint of LAYERS blocks (default all 32 of Llama-2-7B), then `eval` of a Llama-3-8B-shaped checkpoint
# (vocab 128256) at ctx 8192. Each command runs under /usr/bin/time; rows go to stdout and $OUT/goals.md.
# memory_real_shapes.sh shows the peaks are flat in depth; this script shows the full model's numbers.
#   OUT=/data/goals nice -n 19 bash tests/bench/memory_goals.sh
# Needs about 40 GB free in $OUT for 32 layers (checkpoint, run, packed, GGUF and one HF export at a time)
# and, on 2 cores, about two hours (the KL evaluation of 8192 tokens through two 7B models is most of it).
set -euo pipefail
CLI=${CLI:-build/app/quench-cli}
OUT=${OUT:-build/memory-goals}
LAYERS=${LAYERS:-32}
TEXT=${TEXT:-../shared/data/tinystories-valid/tinystories_val.eval.txt}
TRAIN=${TRAIN:-../shared/data/tinystories-valid/tinystories_val.train.txt}
EXPORTS=${EXPORTS:-"packed gguf hf"}  # packed is always written: eval --ref reads it
LLAMA3=${LLAMA3:-1}                   # 0: skip the Llama-3-8B part
mkdir -p "$OUT"
peak() {  # "what | peak MiB | seconds" of one command; its output goes to $OUT/log.txt
    local what=$1
    shift
    echo "== $what: $*" >>"$OUT/log.txt"
    /usr/bin/time -f "%M %e" -o "$OUT/time.txt" "$@" >>"$OUT/log.txt" 2>&1 || { tail -5 "$OUT/log.txt"; exit 1; }
    read -r kb secs <"$OUT/time.txt"
    echo "| $what | $((kb / 1024)) MiB | ${secs} s |" | tee -a "$OUT/goals.md"
}
m="$OUT/llama2-7b-$LAYERS"
echo "| job (llama2-7b shape, $LAYERS blocks, bf16) | peak RSS | wall |" | tee "$OUT/goals.md"
echo "|---|---|---|" | tee -a "$OUT/goals.md"
[ -f "$m/config.json" ] || peak "synth" "$CLI" synth --shape llama2-7b --dtype bf16 --layers "$LAYERS" --out "$m" -q
rm -rf "$OUT/run.h5" "$OUT/run.h5.d" "$OUT/packed" "$OUT/model.gguf" "$OUT/hf"
peak "quantize rtn:b=4,g=128" "$CLI" quantize "$m" --codec rtn:b=4,g=128 --out "$OUT/run.h5" -q
peak "export packed" "$CLI" export "$OUT/run.h5" --format packed --out "$OUT/packed" -q
if [[ " $EXPORTS " == *" gguf "* ]]; then
    peak "export gguf" "$CLI" export "$OUT/run.h5" --format gguf --out "$OUT/model.gguf" -q
    rm -f "$OUT/model.gguf"
fi
if [[ " $EXPORTS " == *" hf "* ]]; then
    peak "export hf bf16" "$CLI" export "$OUT/run.h5" --format hf --dtype bf16 --out "$OUT/hf" -q
    rm -rf "$OUT/hf"
fi
peak "eval --ref (KL, 8192 tokens, ctx 2048)" "$CLI" eval "$OUT/packed" --ref "$m" --text "$TEXT" --max-tokens 8192 --ctx 2048 -q
peak "qat block 0 (block-wise, paretoq:b=2, 2 steps of 1 x 512)" "$CLI" qat "$m" --codec paretoq:b=2 \
    --layers 'model.layers.0.*' --mode block --train "$TRAIN" --tokens 1024 --ctx 512 --batch 1 --calib-tokens 2048 \
    --eval "$TEXT" --eval-tokens 512 --eval-ctx 512 -q
rm -rf "$OUT/run.h5" "$OUT/run.h5.d" "$OUT/packed"
[ "$LLAMA3" = 1 ] || exit 0
l3="$OUT/llama3-8b-2"
echo "| job (llama3-8b shape, 2 blocks, bf16) | peak RSS | wall |" | tee -a "$OUT/goals.md"
[ -f "$l3/config.json" ] || peak "synth" "$CLI" synth --shape llama3-8b --dtype bf16 --layers 2 --out "$l3" -q
peak "eval (8192 tokens, ctx 8192)" "$CLI" eval "$l3" --text "$TEXT" --max-tokens 8192 --ctx 8192 -q
