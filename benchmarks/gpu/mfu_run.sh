# Sourced by the MFU scripts (mfu2.sh, mfu4.sh): `run NAME ARGS...` runs the pretraining benchmark command in $B with
# ARGS under a LIMIT-second timeout, its log in $OUT/mfu_NAME.txt, and prints the MFU and tokens/s rows.
. benchmarks/gpu/setup.sh
: "${OUT:?set OUT}"
mkdir -p "$OUT"
run() { local name=$1; shift; echo "=== $name $(date +%T)"; timeout -k 5 "${LIMIT:-110}" $B "$@" > "$OUT/mfu_$name.txt" 2>&1
        echo "=== $name exit $? $(date +%T)"; grep -E "MFU|tokens/s" "$OUT/mfu_$name.txt" | cut -c1-230; }
