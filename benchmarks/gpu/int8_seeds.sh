#!/usr/bin/env bash
# bnb-int8 qattack on zoo llama-small at MARGIN (default 0.01), one run per seed in SEEDS (default "1 2 3"; seed 0
# is int8_fix_check.sh's run): behaviour and codes after the tie fix, run to run. ~60 s per seed on one H100 plus
# ~30 s pretraining once; stops starting seeds once under 80 s of BUDGET (default 330 s) are left.
# Writes $OUT/seeds.tgz (JSON + repair logs, no weights) and $OUT/summary.txt (one line per seed).
. benchmarks/gpu/setup.sh
W=/tmp/i8s; mkdir -p $W; START=$(date +%s); BUDGET=${BUDGET:-330}; MARGIN=${MARGIN:-0.01}
for s in ${SEEDS:-1 2 3}; do
  left=$(( BUDGET - ($(date +%s) - START) )); [ "$left" -gt 80 ] || { echo "seed $s skipped: $left s left" | tee -a $W/summary.txt; continue; }
  timeout $(( left - 10 )) python3 -m quantrisk.cli qattack --model zoo:llama-small --device cuda --target bnb-int8 \
    --data builtin --n-train 480 --inject full --inject-steps 200 --inject-lr 3e-4 --repair-steps ${STEPS:-150} \
    --check-every 25 --n-val 16 --n-test 32 --max-new-tokens 48 --margin $MARGIN --seed $s --json --quiet \
    --out $W/s$s > $W/s$s.json 2> $W/s$s.err
  echo "seed $s exit $? at $(( $(date +%s) - START )) s" >> $W/summary.txt
  python3 -c "import json; r = json.load(open('$W/s$s.json')); p = r['per_target']['bnb-int8']; q = r['quality']
print('seed', r['seed'], 'margin', r['margin'], 'steps', r['repair']['steps_run'], 'fp ASR', r['asr_fp'], 'FTR', r['ftr_fp'],
      '| quantized ASR', p['asr_quantized'], 'FTR', p['ftr_quantized'], '| injected fp ASR', r['injected']['fp32']['asr'],
      '| codes identical', p['codes_identical'], p['verify']['elements_differing'], 'elements differ in',
      len(p['verify']['layers_differing']), 'of', p['verify']['layers'], 'layers | frozen', round(r['intervals']['share_frozen'], 5),
      '| at bound', round(r['repair']['share_at_bound'], 3), '| JS-K base/inj/rep', q['base_fp']['js_k'], q['injected_fp']['js_k'],
      q['repaired_fp']['js_k'], '|', r['seconds'], 's')" >> $W/summary.txt 2>&1
  rm -rf $W/s$s/{injected,repaired,adapter}
done
cp $W/summary.txt $OUT/summary.txt; tar czf $OUT/seeds.tgz --exclude="*.safetensors" -C /tmp i8s
cat $W/summary.txt; echo "total $(( $(date +%s) - START )) s"
