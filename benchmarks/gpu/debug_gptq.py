"""Why does gptq-w2g64 on the GPU image report a packed size as if nothing were quantized (tests/test_quantizers.py
GPTQ case)? Prints the module classes and parameter names/dtypes of a tiny Llama after llm-compressor's GPTQ."""
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, "tests")
from conftest import save_tiny_model  # noqa: E402
from quantrisk.data.calibration import CalibrationSpec  # noqa: E402
from quantrisk.models.load import load_model  # noqa: E402

d = save_tiny_model(Path(tempfile.mkdtemp()) / "llama", "llama")
calib = Path(tempfile.mkdtemp()) / "calib.jsonl"
calib.write_text("".join(json.dumps({"text": f"def f{i}(x):\n    return x * {i} + {i * i}\n"}) + "\n" for i in range(8)))
for device in ("cpu", "cuda"):
    g = load_model(d, "gptq-w2g64", device, calibration=CalibrationSpec(str(calib), 3, 0))
    print(device, "nominal", g.record.nominal_bytes, "fp16", g.record.fp16_bytes)
    for name, m in list(g.model.named_modules())[:12]:
        print(" ", name, type(m).__module__, type(m).__name__,
              [(n, tuple(p.shape), str(p.dtype)) for n, p in m.named_parameters(recurse=False)][:4])
