#!/usr/bin/env bash
# Issue 13's ladder top in the memorise regime: `large` (Pythia-410m shape) trained as small and base are
# (`--regime memorise`, the size's DEFAULTS: 1200 members, 300 steps of 64 x 1024 tokens), pretrain.json's
# member/non-member NLL and AUC. ~3 minutes on one H100.
. benchmarks/gpu/setup.sh
: "${OUT:?set OUT}"
mkdir -p "$OUT"
timeout -k 5 "${T:-220}" python3 -m quantrisk.cli pretrain --arch pythia --size large --regime memorise --device cuda \
  --out /tmp/qc/large-memorise --quiet --json > "$OUT/pretrain_large_memorise.json" 2> "$OUT/pretrain_large_memorise.err"
echo "pretrain exit $?"
python3 - "$OUT/pretrain_large_memorise.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print({k: v for k, v in d.items() if not isinstance(v, (list, dict)) or k in ("stream",)})
PY
tail -3 "$OUT/pretrain_large_memorise.err"
