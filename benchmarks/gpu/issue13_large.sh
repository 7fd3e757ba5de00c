#!/usr/bin/env bash
# Issue 13's size ladder top: `large` (Pythia-410m shape) in the exposure regime on the same corpus and pass as
# base (issue13.sh), privacy at bf16 and two 4-bit/3-bit precisions (input to "is a larger quantized model better
# than a smaller full-precision one?"); no reference attack (it would pretrain a second large model). ~4 minutes.
SIZE=large SKIP_BENCH=1 ATTACKS=${ATTACKS:-loss,zlib,minkpp} PRECISIONS=${PRECISIONS:-bf16,bnb-nf4,rtn-w3g128} BATCH=${BATCH:-64} bash benchmarks/gpu/issue13.sh
