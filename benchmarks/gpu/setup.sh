# Source on the GPU machine: installs the carried wheels (.whl/) and sets the environment.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:src QUANTRISK_CACHE=/tmp/qc PYTHONUNBUFFERED=1 QUANTRISK_BENCHMARKS_MD=${OUT:-/tmp}/rows.md
