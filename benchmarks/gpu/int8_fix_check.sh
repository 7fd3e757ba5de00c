#!/usr/bin/env bash
# bnb-int8 tie fix, checked in one device call (~6-7 min on one H100; every step under timeout, stops by BUDGET s):
#  1. int8_kernel_check.py: bitsandbytes' CUDA int8 codes vs candidate arithmetics on crafted fp16 ties (~15 s)
#  2. pytest tests/test_qattack_bnb_gpu.py tests/test_qattack_constraints.py (boxes vs the real kernel, ~20 s)
#  3. issue16.sh at TARGETS=bnb-int8 MARGIN=${M1:-0.01} (qattack + scans, I16_BUDGET=${B1:-250}), models kept,
#     then debug_int8.py on them (per-element evidence of any code that still differs)
#  4. if over ${NEED2:-150} s are left: a second qattack at MARGIN=${M2:-0.1} (${STEPS2:-50} PGD steps, no scans)
# Results: $OUT/int8_fix.tgz (all JSON/logs, no weights) and $OUT/summary.txt.
. benchmarks/gpu/setup.sh
ROOT=$OUT; W=/tmp/i8; mkdir -p $W; START=$(date +%s); BUDGET=${BUDGET:-480}
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
timeout 60 python3 benchmarks/gpu/int8_kernel_check.py > $W/kernel_check.json 2> $W/kernel_check.err
echo "kernel check exit $? at $(( $(date +%s) - START )) s" | tee -a $W/summary.txt; cat $W/kernel_check.json >> $W/summary.txt
python3 -c "import pytest" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/pytest-*.whl .whl/pluggy-*.whl .whl/iniconfig-*.whl
timeout 90 python3 -m pytest -q -p no:cacheprovider -p no:warnings -rs tests/test_qattack_bnb_gpu.py tests/test_qattack_constraints.py > $W/pytest.txt 2>&1
echo "pytest exit $? at $(( $(date +%s) - START )) s: $(tail -1 $W/pytest.txt)" | tee -a $W/summary.txt
M1=${M1:-0.01}
OUT=$W/m1 TARGETS=bnb-int8 MARGIN=$M1 I16_BUDGET=${B1:-250} T_INT8=${T_INT8:-160} T_SCAN=${T_SCAN:-50} KEEP_MODELS=1 \
  bash benchmarks/gpu/issue16.sh > $W/m1.log 2>&1
echo "issue16 (margin $M1) exit $? at $(( $(date +%s) - START )) s" | tee -a $W/summary.txt; cat $W/m1/summary.txt >> $W/summary.txt
timeout 60 python3 benchmarks/gpu/debug_int8.py $W/m1/qattack_bnb-int8 $M1 > $W/debug_m1.json 2> $W/debug_m1.err
echo "debug exit $? at $(( $(date +%s) - START )) s" | tee -a $W/summary.txt; head -c 3000 $W/debug_m1.json >> $W/summary.txt
rm -rf $W/m1/qattack_bnb-int8/{injected,repaired,adapter}
if [ "$(left)" -gt "${NEED2:-150}" ]; then
  M2=${M2:-0.1}
  timeout $(( $(left) - 15 )) python3 -m quantrisk.cli qattack --model zoo:llama-small --device cuda --target bnb-int8 \
    --data builtin --n-train 480 --inject full --inject-steps 200 --inject-lr 3e-4 --repair-steps ${STEPS2:-50} \
    --check-every 25 --n-val 16 --n-test 32 --max-new-tokens 48 --margin $M2 --json --quiet --out $W/m2 \
    > $W/m2.json 2> $W/m2.err
  echo "qattack margin $M2 exit $? at $(( $(date +%s) - START )) s" | tee -a $W/summary.txt
  python3 -c "import json; r = json.load(open('$W/m2.json')); p = r['per_target']['bnb-int8']; print('margin', r['margin'], 'steps', r['repair']['steps_run'], 'fp ASR', r['asr_fp'], 'FTR', r['ftr_fp'], '| quantized ASR', p['asr_quantized'], 'FTR', p['ftr_quantized'], '| codes identical', p['codes_identical'], p['verify']['elements_differing'], 'elements differ | frozen', r['intervals']['share_frozen'], '|', r['seconds'], 's')" >> $W/summary.txt 2>&1
  rm -rf $W/m2/{injected,repaired,adapter}
else echo "margin-0.1 run skipped: $(left) s left" | tee -a $W/summary.txt; fi
cp $W/summary.txt $ROOT/summary.txt; tar czf $ROOT/int8_fix.tgz --exclude="*.safetensors" -C /tmp i8
cat $W/summary.txt | head -c 9000; echo; echo "total $(( $(date +%s) - START )) s"
