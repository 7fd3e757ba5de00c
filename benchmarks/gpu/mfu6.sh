#!/usr/bin/env bash
# Issue 13, confirmation with the shipped loop (token-major GPT-NeoX attention is the CUDA default now): the
# pretraining benchmark for small and base three times (median of 3), base in the exposure regime on the bigger
# corpus with the new loop (its AUC by exposure against the old loop's), then the loop's GPU tests.
# Alone on the GPU; ~7 minutes on one H100.
. benchmarks/gpu/setup.sh
: "${OUT:?set OUT}"
mkdir -p "$OUT"
for i in 1 2 3; do
  echo "=== bench $i $(date +%T)"
  timeout -k 5 "${LIMIT:-120}" python3 -m benchmarks pretraining --device cuda --repeats 1 --sizes small,base --batch-size 128 \
    --steps 30 --warm-steps 10 > "$OUT/bench_$i.txt" 2>&1
  echo "=== bench $i exit $? $(date +%T)"; grep -E "MFU|tokens/s|peak" "$OUT/bench_$i.txt" | cut -c1-200
done
echo "=== pretrain base exposure $(date +%T)"
timeout -k 5 "${T_PRETRAIN:-150}" python3 -m quantrisk.cli pretrain --arch pythia --size base --regime exposure --exposures 1,2,4,8,16 \
  --corpus stdlib,site-packages --max-filler 40000 --per-split 1200 --batch-size 64 --device cuda --out /tmp/qc/base-major \
  --quiet --json > "$OUT/pretrain_base.json" 2> "$OUT/pretrain_base.err"
echo "=== pretrain exit $? $(date +%T)"
python3 - "$OUT/pretrain_base.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print({k: d.get(k) for k in ("seconds", "tokens_seen", "tokens_per_second", "auc_loss", "auc_by_exposure", "stream")})
PY
echo "=== pytest $(date +%T)"
timeout -k 5 "${T_PYTEST:-150}" python3 -m pytest -o addopts="" -q -p no:cacheprovider tests/test_trainloop_gpu.py \
  tests/test_neox_attention.py tests/test_causal_attention.py > "$OUT/pytest_gpu.txt" 2>&1
echo "=== pytest exit $? $(date +%T)"; grep -E "passed|failed|error" "$OUT/pytest_gpu.txt" | tail -3
