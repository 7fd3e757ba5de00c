#!/usr/bin/env bash
# Issue 13, third MFU round: GPT-NeoX attention token-major (`models/neox_attention.py`: QKV split and partial
# rotary in the projection's own layout, SDPA on transposed views, no head-major copies) against the packed-causal
# loop of mfu2.sh (Liger fused linear cross-entropy, 128 x 1024-token steps), a kernel profile, small, two more
# repeats of base for a median of 3, then the GPU tests of the loop. Alone on the GPU; ~8 minutes on one H100.
B="python3 -m benchmarks pretraining --device cuda --repeats 1 --loss liger-fused --batch-size 128"
. benchmarks/gpu/mfu_run.sh
MAJOR="--attention packed-causal-token-major"
run base-major-1 --sizes base $MAJOR --steps 30 --warm-steps 10
run base-packed --sizes base --attention packed-causal --steps 30 --warm-steps 10
run base-major-profile --sizes base $MAJOR --steps 14 --warm-steps 10 --profile "$OUT/profile" --no-write
run small-major --sizes small $MAJOR --steps 30 --warm-steps 10
run base-major-2 --sizes base $MAJOR --steps 30 --warm-steps 10
run base-major-3 --sizes base $MAJOR --steps 30 --warm-steps 10
echo "=== pytest $(date +%T)"
timeout -k 5 "${T_PYTEST:-150}" python3 -m pytest -q -p no:cacheprovider tests/test_trainloop_gpu.py tests/test_neox_attention.py \
  tests/test_causal_attention.py --junitxml "$OUT/pytest_gpu.xml" > "$OUT/pytest_gpu.txt" 2>&1
echo "=== pytest exit $? $(date +%T)"; tail -5 "$OUT/pytest_gpu.txt"
