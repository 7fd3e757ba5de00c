#!/usr/bin/env bash
# Issue 13, fourth MFU round: four exact formulations of GPT-NeoX's QKV split + partial rotary embedding timed as
# one attention block (fwd + bwd, compiled, base shape, 128 x 1024 tokens), then base pretraining MFU with the
# fastest (three runs, for a median) and with 192 x 1024-token steps. Alone on the GPU; ~6 minutes on one H100.
. benchmarks/gpu/setup.sh
: "${OUT:?set OUT}"
mkdir -p "$OUT"
V="python3 benchmarks/gpu/neox_variants.py"
timeout -k 5 200 $V --micro --batch 128 2>&1 | grep -v Warn | tee "$OUT/micro.txt"
best=$(awk '/^best/ {print $2}' "$OUT/micro.txt"); best=${best:-token-major}
mfu() { echo "=== mfu $* $(date +%T)"; timeout -k 5 110 $V --mfu "$@" > "$OUT/mfu_$1_$3_$(date +%s).txt" 2>&1;
        echo "=== exit $? $(date +%T)"; grep -hE "MFU|tokens/s|memory" "$OUT"/mfu_$1_$3_*.txt | tail -3 | cut -c1-200; }
if [ "$best" != token-major ]; then mfu "$best" --batch 128; mfu "$best" --batch 128; mfu "$best" --batch 128; fi
mfu "$best" --batch 192
[ "$best" != token-major ] || { mfu token-major --batch 160; mfu token-major --batch 192; }
