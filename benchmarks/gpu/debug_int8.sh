#!/usr/bin/env bash
# bnb-int8 attack with a short repair, models kept, then debug_int8.py on them (~90 s on one H100).
. benchmarks/gpu/setup.sh
timeout ${T:-75} python3 -m quantrisk.cli qattack --model zoo:llama-small --device cuda --target bnb-int8 --data builtin \
  --n-train 480 --inject full --inject-steps 200 --inject-lr 3e-4 --repair-steps 25 --check-every 25 --n-val 8 \
  --n-test 8 --json --quiet --out /tmp/q8 > "$OUT/q8.json" 2> "$OUT/q8.err"; echo "qattack exit $?"
timeout ${T2:-30} python3 benchmarks/gpu/debug_int8.py /tmp/q8 > "$OUT/debug_int8.json" 2> "$OUT/debug_int8.err"; echo "debug exit $?"
head -c 6000 "$OUT/debug_int8.json"; tail -3 "$OUT/debug_int8.err"; tail -3 "$OUT/q8.err"
