#!/usr/bin/env bash
# GPU figures of issues 2 and 3: pretrain the `small` Pythia-shaped model, load it at every GPU
# precision, run the privacy study with 1,000 + 1,000 samples.
. benchmarks/gpu/setup.sh
set -x
python3 -m quantrisk.cli pretrain --arch pythia --size small --device cuda --out /tmp/pys --regime memorise --quiet --json > "$OUT/pretrain_small.json"
python3 -m benchmarks loading --device cuda --model /tmp/pys --repeats 3 \
  --precisions bf16,fp16,bnb-int8,bnb-nf4,bnb-fp4,quanto-int8,quanto-int4,rtn-w2g64
time python3 -m quantrisk.cli privacy --model /tmp/pys --device cuda --n 1000 --completion-n 100 --quiet \
  --precisions bf16,bnb-int8,bnb-nf4,bnb-fp4,quanto-int4,rtn-w2g64 --out "$OUT/privacy_small" > "$OUT/privacy_small.txt" 2>&1
tail -30 "$OUT/privacy_small.txt"
