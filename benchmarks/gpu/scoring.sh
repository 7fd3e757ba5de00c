#!/usr/bin/env bash
# GPU scoring benchmark (issue 6): Pythia-160m and -1b shapes in bf16, eager and compiled.
. benchmarks/gpu/setup.sh
B="python3 -m benchmarks scoring --device cuda --repeats 3"
$B --shape pythia-160m --dtype bfloat16 --n 512 --length 512 --baseline-n 16
$B --shape pythia-160m --dtype bfloat16 --n 512 --length 512 --baseline-n 16 --compile
$B --shape pythia-1b --dtype bfloat16 --n 256 --length 512 --baseline-n 8
$B --shape pythia-1b --dtype bfloat16 --n 256 --length 512 --baseline-n 8 --compile
