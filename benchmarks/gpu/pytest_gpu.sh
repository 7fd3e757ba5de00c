#!/usr/bin/env bash
# The test suite's GPU tests (marked `gpu`; they skip on CPU) on the GPU machine, from source.
. benchmarks/gpu/setup.sh
: "${OUT:?set OUT}"
python3 -c "import pytest" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/pytest-*.whl .whl/pluggy-*.whl .whl/iniconfig-*.whl
timeout -k 5 "${T:-240}" python3 -m pytest -q -p no:cacheprovider -rs tests/test_load_gpu.py tests/test_trainloop_gpu.py tests/test_quantizers.py tests/test_config.py tests/test_causal_attention.py 2>&1 | tail -40 | tee "$OUT/pytest_gpu.txt"
