#!/usr/bin/env bash
# Issue 14 on one H100: the new precisions (torchao, static W8A8 int8/fp8 with calibration, HQQ, GPTQ when
# llm-compressor is carried) on zoo `small` (Pythia-70m shape): loading table + privacy table, one process.
# About 2.5 min when /tmp/pys exists (foundation.sh pretrains it); at most 30 + 60 + 170 s.
# Needs in .whl/: torchao, hqq (+ termcolor); GPTQ also llmcompressor, compressed-tensors, loguru, datasets, dill,
# multiprocess, auto-round (see the issue-14 report); without them those rows say "unavailable: ... not installed".
# CPU dry run: DEV=cpu SIZE=tiny N=100 MODEL=~/.cache/quantrisk/zoo/pythia-tiny-... bash benchmarks/gpu/issue14.sh
. benchmarks/gpu/setup.sh
DEV=${DEV:-cuda} SIZE=${SIZE:-small} N=${N:-500} MODEL=${MODEL:-/tmp/pys}
set -x
timeout 30 python3 -m quantrisk.cli precisions --device "$DEV" > "$OUT/issue14_precisions.txt" 2>&1
if [ ! -f "$MODEL/split.jsonl" ]; then  # foundation.sh pretrains the same model into /tmp/pys
  timeout ${T_PRETRAIN:-120} python3 -m quantrisk.cli pretrain --arch pythia --size "$SIZE" --device "$DEV" --out "$MODEL" --quiet \
    --json > "$OUT/issue14_pretrain.json" || exit 1
fi
# most informative first: a run cut short by its timeout keeps the rows it finished (OUT/issue14.jsonl)
P=bf16,w8a8-static,torchao-w8a8,torchao-fp8,w8a8-static-fp8,gptq-w4g128,gptq-w2g64,hqq-w4g64,hqq-w2g16,rtn-w2g64
P=$P,torchao-int8wo,torchao-int4wo-g128,hqq-w8g64,hqq-w3g64,gptq-w3g128,rtn-w4g128
timeout 170 python3 benchmarks/gpu/issue14.py --model "$MODEL" --device "$DEV" --n "$N" --precisions "$P" \
  --out "$OUT" 2>&1 | tail -40
