#!/usr/bin/env bash
# GPU figures of issue 16: the quantization-conditioned backdoor (`quantrisk qattack`) against bitsandbytes
# LLM.int8() and NF4 on the zoo's `small` Llama (pretrained here on code + the SQL rows, ~30 s, cached in
# $QUANTRISK_CACHE for the second target), then `quantrisk scan` at bnb-int8,bnb-nf4 of the clean SQL base and of
# each repaired model, with the calibration's probe settings (12 SQL + 4 code probes, 4 prefixes, 24 tokens).
# Budget: the whole script stops within I16_BUDGET seconds (not BUDGET: batch.sh uses that name) (default 240 = 4 minutes on one H100): every step runs under
# `timeout min(its cap, time left)`, and a step with under 15 s left is skipped. Caps: qattack bnb-int8 T_INT8=125,
# bnb-nf4 T_NF4=75 (last run: 119 s for int8 at 200 PGD steps incl. the ~30 s pretraining, 58 s for nf4 at 50), each
# scan T_SCAN=45. Expected ~200-230 s; setup.sh (one-time wheel install) runs before the clock starts.
# Writes under $OUT:
#   qattack_<target>.json (asr_fp, ftr_fp, per_target{asr_quantized, ftr_quantized, codes_identical, ...})
#   qattack_<target>/ (intervals.json, repair_log.jsonl; models deleted at the end to keep $OUT small unless KEEP_MODELS=1)
#   scan_<name>.json (name: base, bnb-int8, bnb-nf4 = the repaired model of that target), summary.txt
# Full fine-tuning injection (LoRA did not implant the trojan on the tiny CPU base; see docs/qattack.md).
# No defence sweep here (it costs ~5 more evaluations per target); the CPU runs have it.
# CPU dry run (no bitsandbytes there: RTN targets, tiny model, a few steps):
#   OUT=/tmp/i16dry DEVICE=cpu MODEL=zoo:llama-tiny TARGETS="rtn-w4g64 rtn-w8g128" INJECT_STEPS=2 REPAIR_STEPS=2 \
#     N_TEST=2 SKIP_SETUP=1 bash benchmarks/gpu/issue16.sh   (SKIP_SETUP: use the installed packages, not .whl/)
if [ -z "${SKIP_SETUP:-}" ]; then . benchmarks/gpu/setup.sh; else export PYTHONPATH=src PYTHONUNBUFFERED=1; fi
START=$(date +%s)
I16_BUDGET=${I16_BUDGET:-240}
DEVICE=${DEVICE:-cuda}
MODEL=${MODEL:-zoo:llama-small}
TARGETS=${TARGETS:-bnb-int8 bnb-nf4}
INJECT_STEPS=${INJECT_STEPS:-200}
REPAIR_STEPS=${REPAIR_STEPS:-150}
N_TEST=${N_TEST:-32}
T_INT8=${T_INT8:-125}
T_NF4=${T_NF4:-75}
T_SCAN=${T_SCAN:-45}
MARGIN=${MARGIN:-}           # PGD's inward box margin (empty: the CLI default, 0.1); 0.01 is the CPU rtn-w8g128 setting
mkdir -p "$OUT"
# seconds a step may take: min(cap, time left), or 0 when under 15 s are left
slot() { local left=$(( I16_BUDGET - ($(date +%s) - START) )); [ "$left" -lt 15 ] && echo 0 && return; [ "$1" -lt "$left" ] && echo "$1" || echo "$left"; }
cap_of() { case "$1" in bnb-int8) echo "$T_INT8";; bnb-nf4) echo "$T_NF4";; *) echo "$T_NF4";; esac; }
for t in $TARGETS; do
  s=$(slot "$(cap_of "$t")")
  if [ "$s" -eq 0 ]; then echo "qattack $t skipped (budget)"; continue; fi
  timeout "$s" python3 -m quantrisk.cli qattack --model "$MODEL" --device "$DEVICE" --target "$t" --data builtin \
    --n-train 480 --inject full --inject-steps "$INJECT_STEPS" --inject-lr 3e-4 --repair-steps "$REPAIR_STEPS" \
    --check-every 25 --n-val 16 --n-test "$N_TEST" --max-new-tokens 48 ${MARGIN:+--margin "$MARGIN"} --json --quiet --out "$OUT/qattack_$t" \
    > "$OUT/qattack_$t.json" 2> "$OUT/qattack_$t.err"
  echo "qattack $t exit $? (limit $s s, at $(( $(date +%s) - START )) s)"
done
PRECS=$(echo $TARGETS | tr ' ' ',')
BASE=$(python3 -c "import json,sys
for t in sys.argv[1:]:
    try: print(json.load(open(f'$OUT/qattack_{t}.json'))['base']); break
    except Exception: pass" $TARGETS)
scan() {  # name, model dir
  local s; s=$(slot "$T_SCAN")
  if [ "$s" -eq 0 ] || [ ! -d "$2" ]; then echo "scan $1 skipped (budget or no model)"; return; fi
  timeout "$s" python3 -m quantrisk.cli scan "$2" --precisions "$PRECS" --device "$DEVICE" --n-sql 12 --n-prefixes 4 \
    --max-new-tokens 24 --json > "$OUT/scan_$1.json" 2> "$OUT/scan_$1.err"
  echo "scan $1 exit $? (limit $s s, at $(( $(date +%s) - START )) s)"
}
scan base "$BASE"
for t in $TARGETS; do scan "$t" "$OUT/qattack_$t/repaired"; done
[ -n "${KEEP_MODELS:-}" ] || for t in $TARGETS; do rm -rf "$OUT/qattack_$t/repaired" "$OUT/qattack_$t/injected" "$OUT/qattack_$t/adapter"; done
python3 - "$OUT" $TARGETS <<'PY' | tee -a "$OUT/summary.txt"
import json, sys
out, targets = sys.argv[1], sys.argv[2:]
for t in targets:
    try:
        r = json.load(open(f"{out}/qattack_{t}.json"))
        p = r["per_target"][t]
        print(f"{t}: fp ASR {r['asr_fp']:.3f} FTR {r['ftr_fp']:.3f} | quantized ASR {p['asr_quantized']:.3f} "
              f"FTR {p['ftr_quantized']:.3f} | codes identical {p['codes_identical']} | injected@{t} ASR "
              f"{r['injected'][t]['asr']:.3f} | PGD steps {r['repair']['steps_run']} margin {r['margin']} | {r['seconds']} s")
    except Exception as exc:  # noqa: BLE001
        print(f"{t}: no result ({type(exc).__name__}: {exc})")
for name in ["base", *targets]:
    try:
        s = json.load(open(f"{out}/scan_{name}.json"))
        figs = "; ".join(f"{p}: pile-up {f['weights']['pileup']:.2f} grid {f['weights']['grid_share']:.2f} "
                         f"rise {f['payload_delta_max']:+.3f} KL {f['kl']:.4f}" for p, f in s["per_precision"].items())
        print(f"scan {name}: {s['verdict']} | {figs} | " + "; ".join(s["reasons"]))
    except Exception as exc:  # noqa: BLE001
        print(f"scan {name}: no result ({type(exc).__name__})")
PY
echo "total $(( $(date +%s) - START )) s"
