#!/usr/bin/env bash
# Issue 13, third MFU round: the default loop (packed causal attention + Liger) at 128 x 1024-token steps with
# inductor's coordinate-descent tuning of its generated kernels (elementwise/norm/rotary were ~35% of the step
# in mfu2's profile). Alone on the GPU, ~2 minutes.
. benchmarks/gpu/setup.sh
: "${OUT:?set OUT}"; mkdir -p "$OUT"
timeout -k 5 ${T:-150} python3 -m benchmarks pretraining --device cuda --repeats 1 --sizes base --batch-size 128 \
  --steps 30 --warm-steps 10 --compile-mode coordinate-descent > "$OUT/mfu_base-b128-coordinate-descent.txt" 2>&1
echo "exit $?"; grep -E "MFU|tokens/s|warm-up" "$OUT/mfu_base-b128-coordinate-descent.txt" | cut -c1-230
