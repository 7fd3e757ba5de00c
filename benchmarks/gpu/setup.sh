# Source on the GPU machine: installs the carried wheels (.whl/) once and sets the environment.
# QUANTRISK_CACHE is kept when set (benchmarks/gpu/batch.sh gives each GPU its own cache).
if [ ! -f /tmp/site/.installed ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  touch /tmp/site/.installed
fi
export PYTHONPATH=/tmp/site:src QUANTRISK_CACHE=${QUANTRISK_CACHE:-/tmp/qc} PYTHONUNBUFFERED=1 \
  QUANTRISK_BENCHMARKS_MD=${OUT:-/tmp}/rows.md
