#!/usr/bin/env bash
# Issue 13 on one H100 (budget: 9 minutes wall in all; every step under `timeout`):
#   1. pretraining throughput of the packed loop for small and base: tokens/s, MFU against the bf16 matmul
#      peak measured in the same run (rows -> $OUT/rows.md)
#   2. base in the exposure regime (one pass, member groups seen 1, 2, 4, 8, 16 times) on the bigger corpus
#      (stdlib + permissively licensed site-packages) -> $OUT/pretrain_base.json (+ split, manifest sizes)
#   3. the privacy study on it at 6 precisions (builds the reference model: same filler, no members)
#      -> $OUT/privacy_base/metrics.json, and the AUC x exposure x precision table -> $OUT/auc_exposure_base.{md,json}
# CPU dry run (tiny settings, a few minutes on 2 cores):
#   OUT=/tmp/i13dry DEVICE=cpu SIZE=tiny BENCH_SIZES=tiny BENCH_ARGS="--steps 4 --warm-steps 1 --batch-size 4" \
#     CORPUS=stdlib MAXF=300 PER_EXP=8 PER_SPLIT=60 BATCH=2 N=40 PRECISIONS=fp32,int8-dynamic,rtn-w3g128,rtn-w2g64 \
#     SKIP_SETUP=1 TIMEOUT_SCALE=6 bash benchmarks/gpu/issue13.sh
if [ -z "$SKIP_SETUP" ]; then . benchmarks/gpu/setup.sh; else export PYTHONPATH=src:. QUANTRISK_BENCHMARKS_MD=${OUT:-/tmp}/rows.md; fi
: "${OUT:?set OUT}"
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-base}
BENCH_SIZES=${BENCH_SIZES:-small,base}
BENCH_ARGS=${BENCH_ARGS:---steps 40 --warm-steps 10}
CORPUS=${CORPUS:-stdlib,site-packages}
MAXF=${MAXF:-40000}          # filler cap (functions) so that corpus + pass + reference fit the budget
PER_EXP=${PER_EXP:-0}        # members per exposure group (0: per_split / 5 = 240, 1200 members)
PER_SPLIT=${PER_SPLIT:-1200} # non-members and reference samples
BATCH=${BATCH:-64}
N=${N:-1000}                 # privacy study: members and non-members each (200 per exposure)
PRECISIONS=${PRECISIONS:-bf16,bnb-int8,bnb-nf4,quanto-int4,rtn-w3g128,rtn-w2g64}
MODEL=${QUANTRISK_CACHE:-/tmp/qc}/issue13-$SIZE-exposure
X=${TIMEOUT_SCALE:-1}        # the CPU dry run on a busy machine needs longer limits
# SKIP_BENCH=1 skips step 1 (its rows already measured); T_PRETRAIN / T_PRIVACY override the step limits (s)
set -x
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$OUT/gpu.txt" 2>/dev/null || true
[ -n "${SKIP_BENCH:-}" ] || timeout $((140 * X)) python3 -m benchmarks pretraining --device "$DEVICE" --repeats 1 --sizes "$BENCH_SIZES" $BENCH_ARGS \
  2>&1 | tee "$OUT/pretraining_benchmark.txt"
timeout $((${T_PRETRAIN:-220} * X)) python3 -m quantrisk.cli pretrain --arch pythia --size "$SIZE" --regime exposure --exposures 1,2,4,8,16 \
  --corpus "$CORPUS" --max-filler "$MAXF" --per-exposure "$PER_EXP" --per-split "$PER_SPLIT" --batch-size "$BATCH" \
  --device "$DEVICE" --out "$MODEL" --quiet --json > "$OUT/pretrain_base.json"
python3 - "$OUT/pretrain_base.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print({k: d[k] for k in ("seconds", "tokens_seen", "tokens_per_second", "n_params", "auc_loss", "auc_by_exposure",
                         "members_by_exposure", "dropped", "stream")})
PY
cp "$MODEL/train_log.jsonl" "$OUT/train_log_base.jsonl" 2>/dev/null
wc -l "$MODEL/corpus_manifest.jsonl" > "$OUT/corpus_manifest_lines.txt" 2>/dev/null
timeout $((${T_PRIVACY:-160} * X)) python3 -m quantrisk.cli privacy --model "$MODEL" --precisions "$PRECISIONS" \
  --attacks "${ATTACKS:-loss,zlib,minkpp,reference}" --n "$N" --completion-n 0 --device "$DEVICE" --batch-tokens 65536 \
  --out "$OUT/privacy_base" > "$OUT/privacy_base.txt" 2>&1
tail -30 "$OUT/privacy_base.txt"
[ -f "$OUT/privacy_base/metrics.json" ] && python3 benchmarks/exposure_table.py "$OUT/privacy_base" --json "$OUT/auc_exposure_base.json" --md "$OUT/auc_exposure_base.md"
