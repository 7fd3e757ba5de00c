#!/usr/bin/env bash
# Runs the GPU scripts of several issues in one call of a 2-GPU machine: stream A on GPU 0, stream B on GPU 1.
# Each stream's output goes to $OUT/<stream>.log; each script's $OUT is its own folder, tarred at the end
# (the device tool returns at most 8 files). Usage: A="issue13" B="issue14 issue16 issue15" bash benchmarks/gpu/batch.sh
set -u
. benchmarks/gpu/setup.sh   # install the wheels once, before the two streams
ROOT=$OUT
END=$(( $(date +%s) + ${BUDGET:-540} ))   # every script ends by then, so the results are packed before the call's limit
stream() {  # stream NAME GPU SCRIPTS...
  local name=$1 gpu=$2; shift 2
  for s in "$@"; do
    left=$(( END - $(date +%s) )); [ "$left" -gt 10 ] || { echo "=== $s not started: budget spent"; continue; }
    mkdir -p "/tmp/res/$s"
    echo "=== $s start $(date +%T)"
    CUDA_VISIBLE_DEVICES=$gpu OUT="/tmp/res/$s" QUANTRISK_CACHE="/tmp/qc$gpu" timeout -k 5 "$left" bash "benchmarks/gpu/$s.sh"
    echo "=== $s exit $? $(date +%T)"
  done > "$ROOT/$name.log" 2>&1
}
stream A 0 ${A:-} &
stream B 1 ${B:-} &
wait
cd /tmp/res && for d in *; do tar czf "$ROOT/$d.tgz" --exclude="*.safetensors" --exclude="*.bin" --exclude="*.pt" "$d"; done
ls -la "$ROOT"
tail -5 "$ROOT"/A.log "$ROOT"/B.log
