#!/usr/bin/env bash
# Issue 13, second MFU round (after mfu.sh): the changes that paid, together (packed causal attention + Liger
# fused linear cross-entropy + 128 x 1024-token steps), cuDNN attention first, a kernel profile of the last 3
# steps, and small with the same settings. Alone on the GPU; ~4 minutes on one H100.
B="python3 -m benchmarks pretraining --device cuda --repeats 1 --attention packed-causal --loss liger-fused --batch-size 128"
. benchmarks/gpu/mfu_run.sh
run base-liger-b128 --sizes base --steps 30 --warm-steps 10
run base-liger-b128-cudnn --sizes base --steps 30 --warm-steps 10 --sdpa-backend cudnn
run base-liger-b128-profile --sizes base --steps 14 --warm-steps 10 --profile "$OUT/profile" --no-write
run small-liger-b128 --sizes small --steps 30 --warm-steps 10
