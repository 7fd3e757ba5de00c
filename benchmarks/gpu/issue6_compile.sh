#!/usr/bin/env bash
# Compiled scoring on the GPU with torch.compile's default mode and with max-autotune on static shapes
# (QUANTRISK_COMPILE_MODE / QUANTRISK_COMPILE_DYNAMIC, see quantrisk.scoring._compiled).
# SHAPES="pythia-160m:512 pythia-1b:256" (shape:n) and MODES="default max-autotune-no-cudagraphs" pick the rows.
. benchmarks/gpu/setup.sh
T=${T:-280}
set -x
for sn in ${SHAPES:-pythia-160m:512 pythia-1b:256}; do
  shape=${sn%%:*}; n=${sn##*:}
  for mode in ${MODES:-default max-autotune-no-cudagraphs}; do
    if [ "$mode" = default ]; then unset QUANTRISK_COMPILE_MODE QUANTRISK_COMPILE_DYNAMIC
    else export QUANTRISK_COMPILE_MODE=$mode QUANTRISK_COMPILE_DYNAMIC=0; fi
    timeout $T python3 -m benchmarks scoring --device cuda --repeats 5 --shape "$shape" --dtype bfloat16 \
      --n "$n" --length 512 --baseline-n 8 --batch-tokens 32768 --compile
  done
done
