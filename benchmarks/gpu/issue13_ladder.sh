#!/usr/bin/env bash
# Issue 13's size ladder on one stream: tiny and small in the exposure regime on the same corpus, filler cap, split
# and one-pass rule as base and large (issue13.sh / issue13_large.sh), then the privacy study at the same
# precisions and attacks as large (no reference attack). Results per size under $OUT/<size>/. ~5 minutes on one H100.
: "${OUT:?set OUT}"
ROOT=$OUT
for size in ${SIZES:-tiny small}; do
  echo "=== ladder $size $(date +%T)"
  OUT="$ROOT/$size" SIZE=$size SKIP_BENCH=1 ATTACKS=${ATTACKS:-loss,zlib,minkpp} \
    PRECISIONS=${PRECISIONS:-bf16,bnb-int8,bnb-nf4,quanto-int4,rtn-w3g128,rtn-w2g64} T_PRETRAIN=${T_PRETRAIN:-150} \
    T_PRIVACY=${T_PRIVACY:-150} bash benchmarks/gpu/issue13.sh > "$ROOT/ladder_$size.log" 2>&1
  echo "=== ladder $size exit $? $(date +%T)"; grep -E "auc_by_exposure|seconds" "$ROOT/ladder_$size.log" | head -2 | cut -c1-400
done
