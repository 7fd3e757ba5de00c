#!/usr/bin/env bash
# The test suite's GPU paths on the GPU machine, from source: the CUDA-marked tests and the files whose cases
# depend on CUDA or on GPU-only extras (bitsandbytes, liger-kernel, llm-compressor). Full log -> $OUT/pytest_gpu.txt.
. benchmarks/gpu/setup.sh
: "${OUT:?set OUT}"
python3 -c "import pytest" 2>/dev/null || python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/pytest-*.whl .whl/pluggy-*.whl .whl/iniconfig-*.whl
timeout -k 5 "${T:-240}" python3 -m pytest -q -p no:cacheprovider -p no:warnings -rs --junitxml="$OUT/pytest_gpu.xml" \
  tests/test_load_gpu.py tests/test_trainloop_gpu.py tests/test_quantizers.py tests/test_config.py tests/test_causal_attention.py \
  > "$OUT/pytest_gpu.txt" 2>&1
echo "pytest exit $?"; grep -E "passed|failed|^FAILED|^ERROR|^SKIPPED" "$OUT/pytest_gpu.txt" | tail -20
