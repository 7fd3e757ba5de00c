#!/usr/bin/env bash
# Issue 17 "quiet long runs": one dask run (1 worker pinned to 1 GPU, nanny workers as in the 2-GPU testbed run that
# printed bitsandbytes' "MatMul8bitLt: inputs will be cast from torch.bfloat16 to float16" 169,134 times plus the
# workers' INFO logs) of a small spec with bnb-int8 / bnb-nf4 precisions; prints the terminal's line count, the
# MatMul8bitLt count on the terminal and in RUN/log.txt, and the warning-summary lines. Budget: under 2 minutes.
# NEEDS: one CUDA GPU, the wheels of .whl/ (setup.sh). CPU dry run: SKIP_SETUP=1 DEVICE=cpu PRECS=fp32,quanto-int8
# DAP2=quanto-int8 benchmarks/gpu/issue17.sh
if [ -z "$SKIP_SETUP" ]; then . benchmarks/gpu/setup.sh; else export PYTHONPATH=src; fi
OUT=${OUT:-/tmp/issue17}; mkdir -p "$OUT"
DEVICE=${DEVICE:-cuda}; PRECS=${PRECS:-bf16,bnb-int8,bnb-nf4}; DAP2=${DAP2:-bnb-int8,bnb-nf4}; T=${T:-110}
cat > "$OUT/issue17.yaml" <<SPEC
name: issue17-quiet
device: $DEVICE
seeds: [0]
models: [{zoo: llama, size: tiny}]
precisions: [$PRECS]
studies:
  privacy: {n: 100, completion_n: 4, max_new_tokens: 16, attacks: [loss, zlib], n_resamples: 100}
  trojan: {data: builtin, n_rows: 200, dap1: [fp32], dap2: [$DAP2], steps: 20, batch_size: 8, n_test: 16, max_new_tokens: 16}
executor: {kind: dask, n_workers: 1, gpus_per_worker: 1}
SPEC
rm -rf "$OUT/run"
start=$(date +%s)
timeout "$T" python3 -m quantrisk.cli run "$OUT/issue17.yaml" --out "$OUT/run" --quiet > "$OUT/terminal.txt" 2>&1
rc=$?
echo "issue17: run exit code $rc after $(( $(date +%s) - start )) s (device $DEVICE, precisions $PRECS, dap2 $DAP2)"
echo "issue17: terminal output lines: $(wc -l < "$OUT/terminal.txt")"
echo "issue17: MatMul8bitLt lines on the terminal: $(grep -c MatMul8bitLt "$OUT/terminal.txt")"
echo "issue17: dask log lines on the terminal: $(grep -c 'distributed\.' "$OUT/terminal.txt")"
echo "issue17: MatMul8bitLt lines in RUN/log.txt: $(grep -c MatMul8bitLt "$OUT/run/log.txt" 2>/dev/null || true)"
echo "issue17: RUN/log.txt lines: $(wc -l < "$OUT/run/log.txt" 2>/dev/null || true)"
echo "issue17: warning summaries (repeats counted, each shown once):"
grep -h "warning repeated" "$OUT/terminal.txt" "$OUT/run/log.txt" 2>/dev/null | sort | uniq -c | head -20
echo "issue17: compute dtype of the bnb loads (cell environments):"
python3 - "$OUT/run/results.sqlite" <<'PY' 2>/dev/null
import json, sqlite3, sys
c = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
for label, env in c.execute("SELECT label, environment FROM cells WHERE status='done' AND label LIKE '%bnb%'"):
    load = json.loads(env or "{}").get("load") or {}
    print(" ", label, {k: load.get(k) for k in ("precision", "compute_dtype", "library_version")})
PY
echo "--- terminal (last 25 lines)"; tail -25 "$OUT/terminal.txt"
