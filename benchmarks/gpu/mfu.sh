#!/usr/bin/env bash
# Issue 13, GPU pretraining MFU: which change to the packed loop pays, measured alone on the GPU (nothing else
# running), each variant one process (~1 min each incl. compile): base with the model's own attention (the old
# loop: transformers materialises a causal mask under torch.compile), with packed causal attention (SDPA
# is_causal, no mask), + Liger fused linear cross-entropy, + 2x token batch, + max-autotune; then small and base
# with the new defaults. Rows -> $OUT/rows.md; logs -> $OUT/mfu_*.txt.
#   OUT=/tmp/mfu bash benchmarks/gpu/mfu.sh        (one H100: ~7 minutes)
. benchmarks/gpu/setup.sh
: "${OUT:?set OUT}"
mkdir -p "$OUT"
END=$(( $(date +%s) + ${BUDGET:-500} ))
B="python3 -m benchmarks pretraining --device cuda --repeats 1 --steps ${STEPS:-30} --warm-steps ${WARM:-10}"
variant() {  # variant NAME LIMIT ARGS...
  local name=$1 limit=$2; shift 2
  local left=$(( END - $(date +%s) )); [ "$left" -gt 20 ] || { echo "=== $name skipped: budget"; return; }
  [ "$limit" -lt "$left" ] || limit=$left
  echo "=== $name $(date +%T)"
  timeout -k 5 "$limit" $B "$@" > "$OUT/mfu_$name.txt" 2>&1
  echo "=== $name exit $? $(date +%T)"; grep -E "MFU|tokens/s|peak" "$OUT/mfu_$name.txt" | cut -c1-220
}
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>/dev/null
${VARIANTS:-true}
variant base-model-attention 120 --sizes base --attention model
variant base-packed-causal 120 --sizes base --attention packed-causal
variant base-packed-causal-liger 120 --sizes base --attention packed-causal --loss liger-fused
variant base-packed-causal-batch128 120 --sizes base --attention packed-causal --batch-size 128
variant base-packed-causal-autotune 200 --sizes base --attention packed-causal --compile-mode max-autotune-no-cudagraphs
variant small-packed-causal 100 --sizes small --attention packed-causal
