#!/usr/bin/env bash
# Runs several scripts of benchmarks/gpu/ in one device call: each stream is GPU:SCRIPT[,SCRIPT...] and runs its scripts in turn
# on that GPU; streams run side by side (several may share one GPU: the zoo models are small). Each stream's output
# goes to $OUT/<n>.log; each script's $OUT is its own folder, tarred at the end without weights (the device tool
# returns at most 8 files). One deadline (BUDGET seconds) for all, so the results are packed before the call's limit.
#   STREAMS="0:scoring 1:pytest_gpu" BUDGET=540 bash benchmarks/gpu/batch.sh
set -u
. benchmarks/gpu/setup.sh   # install the wheels once, before the streams
ROOT=$OUT
END=$(( $(date +%s) + ${BUDGET:-540} ))
stream() {  # stream GPU SCRIPT...
  local gpu=$1; shift
  for s in "$@"; do
    left=$(( END - $(date +%s) )); [ "$left" -gt 10 ] || { echo "=== $s not started: budget spent"; continue; }
    mkdir -p "/tmp/res/$s"
    echo "=== $s start $(date +%T)"
    local envname="ENV_$s"   # e.g. ENV_scoring="QUANTRISK_THREADS=4": settings for that script alone
    CUDA_VISIBLE_DEVICES=$gpu OUT="/tmp/res/$s" QUANTRISK_CACHE="/tmp/qc-$s" timeout -k 5 "$left" \
      env ${!envname:-} bash "benchmarks/gpu/$s.sh"
    echo "=== $s exit $? $(date +%T)"
  done
}
n=0
for spec in ${STREAMS:?set STREAMS}; do
  n=$((n + 1))
  stream "${spec%%:*}" $(echo "${spec#*:}" | tr ',' ' ') > "$ROOT/stream$n.log" 2>&1 &
done
wait
cd /tmp/res && for d in *; do tar czf "$ROOT/$d.tgz" --exclude="*.safetensors" --exclude="*.bin" --exclude="*.pt" "$d"; done
ls -la "$ROOT"
for f in "$ROOT"/stream*.log; do echo "--- $f"; tail -n 8 "$f"; done
