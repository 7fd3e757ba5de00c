#!/usr/bin/env bash
# bnb-int8: bitsandbytes' CUDA int8 arithmetic against ours on crafted fp16 rows (int8_kernel_check.py, ~10 s),
# then a short bnb-int8 qattack (25 PGD steps, models kept in /tmp/q8) and debug_int8.py on its models
# (~100 s on one H100). MARGIN: the qattack's --margin (default 0.1). Writes kernel_check.json, q8.json,
# debug_int8.json (+ .err) under $OUT and prints their heads.
. benchmarks/gpu/setup.sh
MARGIN=${MARGIN:-0.1}
timeout ${T0:-60} python3 benchmarks/gpu/int8_kernel_check.py > "$OUT/kernel_check.json" 2> "$OUT/kernel_check.err"
echo "kernel check exit $?"; cat "$OUT/kernel_check.json"; tail -3 "$OUT/kernel_check.err"
timeout ${T:-75} python3 -m quantrisk.cli qattack --model zoo:llama-small --device cuda --target bnb-int8 --data builtin \
  --n-train 480 --inject full --inject-steps 200 --inject-lr 3e-4 --repair-steps 25 --check-every 25 --n-val 8 \
  --n-test 8 --margin "$MARGIN" --json --quiet --out /tmp/q8 > "$OUT/q8.json" 2> "$OUT/q8.err"; echo "qattack exit $?"
timeout ${T2:-60} python3 benchmarks/gpu/debug_int8.py /tmp/q8 "$MARGIN" > "$OUT/debug_int8.json" 2> "$OUT/debug_int8.err"
echo "debug exit $?"; head -c 5000 "$OUT/debug_int8.json"; tail -3 "$OUT/debug_int8.err"; tail -3 "$OUT/q8.err"
python3 -c "import json; r = json.load(open('$OUT/q8.json')); print({k: r[k] for k in ('asr_fp', 'margin', 'seconds')}, r['per_target'])" 2>&1 | tail -2
