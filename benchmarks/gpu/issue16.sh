#!/usr/bin/env bash
# GPU figures of issue 16: the quantization-conditioned backdoor (`quantrisk qattack`) against bitsandbytes
# LLM.int8() and NF4 on the zoo's `small` Llama (pretrained here on code + the SQL rows, ~30 s, cached in
# $QUANTRISK_CACHE for the second target), then `quantrisk scan` of the repaired model at its target.
# Budget: <= 4 minutes on one H100 (each step under `timeout $T`). Writes under $OUT:
#   qattack_<target>.json (asr_fp, ftr_fp, per_target{asr_quantized, ftr_quantized, codes_identical, ...})
#   qattack_<target>/ (intervals.json, repair_log.jsonl; models deleted to keep $OUT small)
# Full fine-tuning injection (LoRA did not implant the trojan on the tiny CPU base; see docs/qattack.md).
# No defence sweep here (it costs ~5 more evaluations per target); the CPU runs have it.
#   scan_<target>.json, summary.txt (one line per target)
. benchmarks/gpu/setup.sh
T=${T:-95}
for t in bnb-int8 bnb-nf4; do
  timeout $T python3 -m quantrisk.cli qattack --model zoo:llama-small --device cuda --target "$t" --data builtin \
    --n-train 480 --inject full --inject-steps 200 --inject-lr 3e-4 --repair-steps 200 --check-every 50 --n-val 16 \
    --n-test 48 --json --quiet --out "$OUT/qattack_$t" > "$OUT/qattack_$t.json" 2> "$OUT/qattack_$t.err"
  echo "qattack $t exit $?"
  if [ -d "$OUT/qattack_$t/repaired" ]; then
    timeout 90 python3 -m quantrisk.cli scan "$OUT/qattack_$t/repaired" --precisions "$t" --device cuda --json \
      > "$OUT/scan_$t.json" 2> "$OUT/scan_$t.err"
    echo "scan $t exit $?"
  fi
  rm -rf "$OUT/qattack_$t/repaired" "$OUT/qattack_$t/injected" "$OUT/qattack_$t/adapter"
  python3 - "$t" "$OUT" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
t, out = sys.argv[1], sys.argv[2]
try:
    r = json.load(open(f"{out}/qattack_{t}.json"))
    p = r["per_target"][t]
    print(f"{t}: fp ASR {r['asr_fp']:.3f} FTR {r['ftr_fp']:.3f} | quantized ASR {p['asr_quantized']:.3f} "
          f"FTR {p['ftr_quantized']:.3f} | codes identical {p['codes_identical']} | injected@{t} ASR "
          f"{r['injected'][t]['asr']:.3f} | PGD steps {r['repair']['steps_run']} margin {r['margin']} | {r['seconds']} s")
except Exception as exc:  # noqa: BLE001
    print(f"{t}: no result ({type(exc).__name__}: {exc})")
try:
    s = json.load(open(f"{out}/scan_{t}.json"))
    print(f"  scan: {s['verdict']}; " + "; ".join(s["reasons"]))
except Exception as exc:  # noqa: BLE001
    print(f"  scan: no result ({type(exc).__name__})")
PY
done
