#!/usr/bin/env bash
. benchmarks/gpu/setup.sh
timeout ${T:-120} python3 benchmarks/gpu/debug_gptq.py > "$OUT/debug_gptq.txt" 2>&1; tail -40 "$OUT/debug_gptq.txt"
