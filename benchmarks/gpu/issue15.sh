#!/usr/bin/env bash
# Issue 15 GPU figures: run benchmarks/gpu/issue15.yaml (privacy at 6 precisions incl. bitsandbytes with the MIMIR
# attacks, trojan study at 5 inference precisions), then the report with its Findings. Budget: T seconds for the run
# (default 480); the store is resumable and the report is built from whatever cells finished, so a cut run still
# gives findings (those lacking data say "inconclusive" and why). Prints: cells per status, the headline (P1-P4,
# T1-T3 verdicts with effect / CI / p) and findings.json; everything else under $OUT/issue15.
. benchmarks/gpu/setup.sh
T=${T:-480}
RUN="$OUT/issue15"
set -x
timeout 60 python3 -m quantrisk.cli validate benchmarks/gpu/issue15.yaml --check-device
/usr/bin/time -f "run wall %e s" timeout "$T" python3 -m quantrisk.cli run benchmarks/gpu/issue15.yaml --out "$RUN" \
  > "$OUT/issue15_run.txt" 2>&1
tail -15 "$OUT/issue15_run.txt"
timeout 120 python3 -m quantrisk.cli status "$RUN"
timeout 180 python3 -m quantrisk.cli report "$RUN"
cat "$RUN/report/findings.json"
