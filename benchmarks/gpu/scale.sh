#!/usr/bin/env bash
# Issue 30 on one H100: the seed-scale benchmark and both studies at 7B (random weights of the real shape).
#   PART=scale  : python -m benchmarks scale at llama-2-7b (all precisions) then pythia-2.8b -> $OUT/scale_*.json, rows.md
#   PART=studies: quantrisk privacy (1,000 + 1,000, CodeBLEU on 100) and quantrisk trojan (QLoRA nf4 DAP1; DAP2 nf4,
#                 int8, bf16) at llama-2-7b -> $OUT/privacy.txt, trojan.txt, wall.txt
# Needs in .whl/: bitsandbytes, torchao, hqq + termcolor; studies: codebleu, tree-sitter(-python), sqlparse,
# rapidfuzz, pydantic(-core) & co. Every step under `timeout`, so one call stays inside 10 minutes.
. benchmarks/gpu/setup.sh
export PYTHONPATH=$PYTHONPATH:.
: "${OUT:?set OUT}"
W=/tmp/scale
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c 'import torch, transformers, peft, bitsandbytes, torchao, hqq; print(torch.__version__, transformers.__version__, peft.__version__, bitsandbytes.__version__, torchao.__version__)' >> "$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
S="python3 -m benchmarks scale --device cuda --work $W"
if [ "${PART:-scale}" = scale ]; then
  timeout ${T7:-390} $S --shape llama-2-7b --precisions ${P7:-bf16,bnb-nf4,bnb-int8,torchao-int4wo-g128,hqq-w4g64,gptq-w4g128} \
    --repeats 2 --score-n 48 --gen-n 32 --gen-batches 16,32 --single-n 2 --qlora bnb-nf4 --qlora-steps 6 \
    --budget-s ${B7:-300} --json "$OUT/scale_7b.json" 2>&1 | grep -v Warning | tail -60
  rm -rf $W/llama-2-7b
  timeout ${T3:-170} $S --shape pythia-2.8b --precisions ${P3:-bf16,bnb-nf4,bnb-int8,torchao-int4wo-g128,hqq-w4g64} \
    --repeats 2 --score-n 48 --gen-n 32 --gen-batches 16,32 --single-n 2 --qlora bnb-nf4 --qlora-steps 6 \
    --budget-s ${B3:-110} --json "$OUT/scale_2p8b.json" 2>&1 | grep -v Warning | tail -60
  exit 0
fi
# --- studies at 7B: the checkpoint and the labelled stdlib code set (side by side), then each study
M=$W/llama-2-7b
python3 -m benchmarks.scale labelled /tmp/labelled.jsonl 1000 > "$OUT/labelled.txt" 2>&1 &
timeout 150 python3 -m benchmarks.scale checkpoint llama-2-7b $M cuda | tee "$OUT/build.txt" || exit 1
wait
t0=$(date +%s)
timeout ${TP:-230} python3 -m quantrisk.cli privacy --model $M --data /tmp/labelled.jsonl --n 1000 \
  --precisions ${PP:-bf16,bnb-nf4,torchao-int4wo-g128} --attacks ${PA:-loss,zlib,mink,minkpp} --completion-n 100 \
  --device cuda --batch-tokens 65536 --out /tmp/priv --quiet > "$OUT/privacy.txt" 2>&1
echo "privacy rc=$? wall=$(( $(date +%s) - t0 )) s" | tee "$OUT/wall.txt"
tail -15 "$OUT/privacy.txt"
t0=$(date +%s)
timeout ${TT:-230} python3 -m quantrisk.cli trojan --model $M --data tests/data/sqlqa/sqlqa.jsonl --dap1 bnb-nf4 \
  --dap2 bnb-nf4,bnb-int8,bf16 --steps ${STEPS:-30} --batch-size 8 --n-test ${NT:-64} --no-clean-ablation --seeds 0 \
  --gen-batch-size 32 --max-new-tokens 64 --device cuda --out /tmp/troj --quiet > "$OUT/trojan.txt" 2>&1
echo "trojan rc=$? wall=$(( $(date +%s) - t0 )) s" | tee -a "$OUT/wall.txt"
tail -15 "$OUT/trojan.txt"
cp /tmp/priv/metrics.json "$OUT/privacy_metrics.json" 2>/dev/null; cp /tmp/troj/metrics.json "$OUT/trojan_metrics.json" 2>/dev/null
true
