#!/usr/bin/env bash
# GPU rows of issue 6 beyond scoring.sh: generation (batched vs one at a time), scoring through
# bitsandbytes (int8, nf4) and the eager profile split, scaling with samples and model size, and a
# kernel profile of compiled scoring. Each step has its own time limit (T seconds).
. benchmarks/gpu/setup.sh
T=${T:-150}
set -x
G="timeout $T python3 -m benchmarks generation --device cuda --repeats 5"
$G --precision bf16 --n 512 --baseline-n 32 --gen-batch-size 128
$G --precision fp32 --n 128 --baseline-n 64 --gen-batch-size 64
S="timeout $T python3 -m benchmarks scoring --device cuda --repeats 5"
$S --shape pythia-160m --dtype bfloat16 --n 512 --length 512 --baseline-n 8 --batch-tokens 32768
$S --shape pythia-160m --precision bnb-int8 --n 512 --length 512 --baseline-n 8 --batch-tokens 32768
$S --shape pythia-160m --precision bnb-nf4 --n 512 --length 512 --baseline-n 8 --batch-tokens 32768
timeout $T python3 -m benchmarks scaling --device cuda --repeats 5 --shapes tiny,small --ns 1000,2000,4000 --dtype bfloat16
timeout $T python3 benchmarks/gpu/profile_scoring.py --shape pythia-160m --n 256 > "$OUT/profile_160m.txt" 2>&1
tail -40 "$OUT/profile_160m.txt"
