#!/usr/bin/env bash
# Issue 14 on one H100 (budget <= 3 min): the new precisions (torchao, static W8A8 int8/fp8 with calibration, HQQ,
# GPTQ when llm-compressor is carried) on zoo `small` (Pythia-70m shape): loading table + privacy table, one process.
# Needs in .whl/: torchao, hqq (+ termcolor); GPTQ also llmcompressor, compressed-tensors, loguru, datasets, dill,
# multiprocess, auto-round (see the issue-14 report); without them those rows say "unavailable: ... not installed".
# CPU dry run: DEV=cpu SIZE=tiny N=100 MODEL=~/.cache/quantrisk/zoo/pythia-tiny-... bash benchmarks/gpu/issue14.sh
. benchmarks/gpu/setup.sh
DEV=${DEV:-cuda} SIZE=${SIZE:-small} N=${N:-500} MODEL=${MODEL:-/tmp/pys}
set -x
python3 -m quantrisk.cli precisions --device "$DEV" > "$OUT/issue14_precisions.txt" 2>&1
if [ ! -f "$MODEL/split.jsonl" ]; then  # foundation.sh pretrains the same model into /tmp/pys
  timeout 100 python3 -m quantrisk.cli pretrain --arch pythia --size "$SIZE" --device "$DEV" --out "$MODEL" --quiet \
    --json > "$OUT/issue14_pretrain.json" || exit 1
fi
P=bf16,int8-dynamic,torchao-int8wo,torchao-w8a8,torchao-int4wo-g128,torchao-fp8,w8a8-static,w8a8-static-fp8
P=$P,hqq-w8g64,hqq-w4g64,hqq-w3g64,hqq-w2g16,gptq-w4g128,gptq-w3g128,gptq-w2g64,rtn-w4g128,rtn-w2g64
timeout 150 python3 benchmarks/gpu/issue14.py --model "$MODEL" --device "$DEV" --n "$N" --precisions "$P" \
  --out "$OUT" 2>&1 | tail -40
