#!/usr/bin/env bash
# Issue 14 on one H100, two parts (every step under `timeout`):
#   A. w8a8-static on zoo `small` (Pythia-70m shape, memorise regime, /tmp/pys as foundation.sh makes it) after the
#      bf16 calibration-hook fix: its loading-table row + privacy row beside bf16, one process (issue14.py)
#      -> $OUT/issue14.md / issue14.jsonl. ~20 s when /tmp/pys and its reference exist; cold (pretrain small 73 s
#      on the H100 + its reference model) about 2.5 min; limits 30 + 120 + 150 s.
#      P=... reruns other precisions (ALL=1: every new precision, as the first GPU run did).
#   B. (EXPOSURE=1, the default) the demo's exposure table for the GPU-only precisions: a Pythia `small` in the
#      exposure regime (members seen 1, 4, 16 times; 200 per k; one pass over 2000 filler functions, batches of
#      8 x 1024 tokens as the demo's tiny model), privacy study
#      at bf16, torchao-int4wo-g128, torchao-fp8, w8a8-static-fp8, bnb-int8, bnb-nf4, w8a8-static with LOSS, zlib,
#      Min-K%++, reference, all members, paired ΔAUC vs bf16 -> $OUT/privacy_expo/metrics.json and
#      $OUT/auc_exposure_small.{md,json} (benchmarks/exposure_table.py). Limits 120 + 240 s (not measured on a GPU
#      yet: a step cut short by its limit leaves what it finished; the privacy study resumes on its --out).
# Needs in .whl/: torchao, hqq (+ termcolor), bitsandbytes (B); GPTQ rows (ALL=1) also llmcompressor & co.
# CPU dry run (no GPU-only precisions; tiny sizes, a few minutes on 2 shared cores):
#   OUT=/tmp/i14dry SKIP_SETUP=1 DEV=cpu SIZE=tiny N=100 MODEL=~/.cache/quantrisk/zoo/pythia-tiny-target-s0-3ec296dc8f \
#     P=fp32,w8a8-static EXPO_P=fp32,w8a8-static,torchao-w8a8 EXPO_ARGS="--per-split 60 --max-filler 300 --batch-size 2" X=4 \
#     EXPO_MODEL=/tmp/i14dry-expo bash benchmarks/gpu/issue14.sh
if [ -z "${SKIP_SETUP:-}" ]; then . benchmarks/gpu/setup.sh; else export PYTHONPATH=src:. PYTHONUNBUFFERED=1; fi
: "${OUT:?set OUT}"
DEV=${DEV:-cuda} SIZE=${SIZE:-small} N=${N:-500} MODEL=${MODEL:-/tmp/pys} X=${X:-1}
P=${P:-bf16,w8a8-static}
if [ -n "${ALL:-}" ]; then  # most informative first: a run cut short keeps the rows it finished
  P=bf16,w8a8-static,torchao-w8a8,torchao-fp8,w8a8-static-fp8,gptq-w4g128,gptq-w2g64,hqq-w4g64,hqq-w2g16,rtn-w2g64
  P=$P,torchao-int8wo,torchao-int4wo-g128,hqq-w8g64,hqq-w3g64,gptq-w3g128,rtn-w4g128
fi
EXPO_P=${EXPO_P:-bf16,w8a8-static,torchao-int4wo-g128,torchao-fp8,w8a8-static-fp8,bnb-int8,bnb-nf4}
EXPO_ARGS=${EXPO_ARGS:---per-split 600 --max-filler 2000 --batch-size 8}  # ~8k tokens a step, as the demo: >= 32 steps
EXPO_MODEL=${EXPO_MODEL:-${QUANTRISK_CACHE:-/tmp/qc}/issue14-$SIZE-exposure}
mkdir -p "$OUT"
set -x
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>/dev/null || true
timeout $((30 * X)) python3 -m quantrisk.cli precisions --device "$DEV" > "$OUT/issue14_precisions.txt" 2>&1
# --- A: w8a8-static (and bf16) on zoo small
if [ ! -f "$MODEL/split.jsonl" ]; then  # foundation.sh pretrains the same model into /tmp/pys
  timeout $((${T_PRETRAIN:-120} * X)) python3 -m quantrisk.cli pretrain --arch pythia --size "$SIZE" --device "$DEV" \
    --out "$MODEL" --regime memorise --quiet --json > "$OUT/issue14_pretrain.json" || exit 1
fi
timeout $((${T_ROWS:-150} * X)) python3 benchmarks/gpu/issue14.py --model "$MODEL" --device "$DEV" --n "$N" \
  --precisions "$P" --out "$OUT" 2>&1 | tail -20
# --- B: exposure table of the GPU-only precisions on a Pythia small in the exposure regime
[ "${EXPOSURE:-1}" = 1 ] || exit 0
timeout $((${T_EXPO_PRETRAIN:-120} * X)) python3 -m quantrisk.cli pretrain --arch pythia --size "$SIZE" \
  --regime exposure --exposures 1,4,16 $EXPO_ARGS --device "$DEV" --out "$EXPO_MODEL" --quiet --json \
  > "$OUT/pretrain_expo.json" || exit 1
python3 - "$OUT/pretrain_expo.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print({k: d.get(k) for k in ("seconds", "tokens_seen", "n_params", "auc_loss", "auc_by_exposure", "members_by_exposure")})
PY
timeout $((${T_EXPO_PRIVACY:-240} * X)) python3 -m quantrisk.cli privacy --model "$EXPO_MODEL" --precisions "$EXPO_P" \
  --attacks loss,zlib,minkpp,reference --n all --completion-n 0 --device "$DEV" --batch-tokens ${BATCH_TOKENS:-65536} \
  --out "$OUT/privacy_expo" \
  > "$OUT/privacy_expo.txt" 2>&1
tail -25 "$OUT/privacy_expo.txt"
# a run stopped by a failing cell still has its finished cells in results.sqlite (no paired ΔAUC then)
[ -f "$OUT/privacy_expo/metrics.json" ] || [ -f "$OUT/privacy_expo/results.sqlite" ] && python3 benchmarks/exposure_table.py "$OUT/privacy_expo" \
  --json "$OUT/auc_exposure_$SIZE.json" --md "$OUT/auc_exposure_$SIZE.md"
