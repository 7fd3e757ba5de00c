"""gguf-{type} and gguf-{type}-dq: GGUF files quantized by llama.cpp, run by llama.cpp or dequantized into torch.

The path (llama.cpp's own): the fp32 HF model and its tokenizer are written as an fp32 GGUF with gguf-py
(`gguf_convert.write_gguf`); an importance matrix is computed on the calibration samples (for every
Linear layer, the mean over calibration tokens of each input column's squared activation x_j², what
`llama-imatrix` accumulates; llama.cpp's k- and i-quant search then weights each weight's squared error
by it); `llama_model_quantize` (llama-cpp-python) writes the quantized GGUF with llama.cpp's per-tensor
mix for the file type (e.g. Q4_K_M: Q6_K for half of attn_v / ffn_down and the output head, Q4_K
elsewhere; rows whose length is not a multiple of the 256-weight super-block fall back to a 32-block
type, as llama.cpp decides). Then:

- `gguf-{type}`: the *runtime* path. The model is llama.cpp itself (`gguf_runtime.LlamaCppLM`): MI
  scores and trojan generations are computed by llama.cpp's kernels (quantized dot products with
  quantized activations). No gradients or hidden states; DAP1 (LoRA) is refused.
- `gguf-{type}-dq`: the *dequantized* path. Every GGUF tensor is dequantized with gguf-py
  (`gguf.quants.dequantize`) into the HF model, which then computes in fp32 torch: the weights llama.cpp
  holds, not its arithmetic. For attacks that need gradients or hidden states.
- `gguf-{type}-noimat[-dq]`: the same without an importance matrix (`llama-quantize` without `--imatrix`): the
  setting of the GGUF quantization attack (`qattack/constraints/gguf.py`).

Bits per weight: `bits` is the file type's main k-quant width; `block_bpw` the storage of that block type
(e.g. Q4_K: 144 bytes per 256 weights = 4.5); the effective bits of a file are its size × 8 / parameters
(`quantrisk_packed_bytes`, recorded as `nominal_bytes`).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantrisk.errors import ModelLoadError
from quantrisk.models.quantizers.base import Precision, Quantizer

# file type -> (main bits, block bits per weight of that type, what llama.cpp stores)
GGUF_TYPES: dict[str, tuple[int, float, str]] = {
    "q8_0": (8, 8.5, "Q8_0: 8-bit, one fp16 scale per 32 weights"),
    "q6_k": (6, 6.5625, "Q6_K: 6-bit super-blocks of 256 (16 blocks of 16, 8-bit scales)"),
    "q5_k_m": (5, 5.5, "Q5_K_M: Q5_K (5-bit, 8 blocks of 32 with 6-bit scale+min), Q6_K for half of attn_v/ffn_down"),
    "q5_k_s": (5, 5.5, "Q5_K_S: Q5_K throughout"),
    "q4_k_m": (4, 4.5, "Q4_K_M: Q4_K (4-bit, 8 blocks of 32 with 6-bit scale+min), Q6_K for half of attn_v/ffn_down"),
    "q4_k_s": (4, 4.5, "Q4_K_S: Q4_K throughout"),
    "q4_0": (4, 4.5, "Q4_0: legacy 4-bit, one fp16 scale per 32 weights"),
    "q3_k_m": (3, 3.4375, "Q3_K_M: Q3_K (3-bit, 16 blocks of 16), Q4_K/Q5_K for attn_v, attn_output, ffn_down"),
    "q2_k": (2, 2.625, "Q2_K: 2-bit super-blocks (16 blocks of 16, 4-bit scale+min), Q3_K/Q4_K where llama.cpp keeps more"),
    "iq4_xs": (4, 4.25, "IQ4_XS: non-linear 4-bit grid, super-blocks of 256, importance-weighted"),
    "iq4_nl": (4, 4.5, "IQ4_NL: non-linear 4-bit grid, blocks of 32, importance-weighted"),
}
GGUF_PATTERN = re.compile(r"^gguf-([a-z0-9_]+?)(-noimat)?(-dq)?$")


def runtime_available() -> tuple[bool, str]:
    """(ok, why not): llama-cpp-python and gguf-py importable."""
    for module, dist in (("llama_cpp", "llama-cpp-python"), ("gguf", "gguf")):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ModuleNotFoundError, ValueError):
            found = False
        if not found:
            return False, f"{dist} is not installed (pip install 'quantrisk[gguf]'; llama-cpp-python builds llama.cpp " \
                          "from source: a C/C++ compiler and cmake are needed)"
    return True, ""


class GgufQuantizer(Quantizer):
    backend = "gguf"
    library = "llama-cpp-python"
    module = "llama_cpp"
    install_hint = " (pip install 'quantrisk[gguf]')"
    packages = ("gguf",)
    marker = "8"
    devices = ("cpu", "cuda")  # the runtime precisions run on the CPU (llama.cpp); the -dq twins anywhere torch runs
    lora_base = False
    lora_reason = ("a GGUF model is run by llama.cpp (or dequantized from its file), which trains nothing; fine-tune "
                   "at fp32 and quantize the merged model to GGUF for inference (DAP2)")
    needs_calibration = True
    examples = tuple(f"gguf-{t}" for t in ("q8_0", "q6_k", "q5_k_m", "q4_k_m", "q3_k_m", "q2_k", "iq4_xs")) + (
        "gguf-q4_k_m-dq", "gguf-q4_k_m-noimat")
    pattern_hint = f"gguf-{{{','.join(GGUF_TYPES)}}}[-noimat][-dq]"

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        m = GGUF_PATTERN.match(name)
        if not m:
            return None
        kind, noimat, dq = m.group(1), bool(m.group(2)), bool(m.group(3))
        if kind not in GGUF_TYPES:
            from quantrisk.errors import PrecisionError

            raise PrecisionError(f"precision {name!r}: GGUF type must be one of {', '.join(GGUF_TYPES)}")
        bits, bpw, what = GGUF_TYPES[kind]
        path = ("dequantized into the HF model (gguf-py), computed by torch" if dq
                else "run by llama.cpp (llama-cpp-python)")
        return Precision(name, cls.backend, bits, "gguf", ("cpu", "cuda") if dq else ("cpu",), library=cls.library,
                         group_size=None, trainable=False, calibrated=True,
                         # llama.cpp's CPU dot products quantize activations to 8-bit blocks (Q8_0/Q8_K) at run time
                         activations="float" if dq else "int8-dynamic",
                         description=f"GGUF {what} ({bpw} bits/weight in that type), "
                                     + ("no importance matrix (llama-quantize's default)" if noimat
                                        else "importance matrix from calibration samples") + f", {path}")

    @classmethod
    def validate_environment(cls, precision: Precision, device: str) -> tuple[bool, str]:
        return runtime_available()

    @staticmethod
    def file_type(precision: Precision) -> str:
        """llama.cpp's file-type name (`Q4_K_M`) of a gguf precision."""
        m = GGUF_PATTERN.match(precision.name)
        assert m is not None
        return m.group(1).upper()

    @staticmethod
    def dequantized(precision: Precision) -> bool:
        return precision.name.endswith("-dq")

    def calibrates(self, precision: Precision | str) -> bool:
        return self.uses_imatrix(precision if isinstance(precision, Precision) else self.parse(str(precision)))

    @staticmethod
    def uses_imatrix(precision: Precision) -> bool:
        """False for the `-noimat` precisions: quantized as `llama-quantize` does without `--imatrix` (the calibration
        samples quantrisk loads for every gguf precision are then not used)."""
        return "-noimat" not in precision.name

    def library_version(self) -> str | None:
        from quantrisk.environment import package_version

        return f"llama-cpp-python {package_version('llama-cpp-python')}, gguf {package_version('gguf')}"

    def implementation(self, precision: Precision) -> str:
        ft = self.file_type(precision)
        im = "imatrix from the calibration samples" if self.uses_imatrix(precision) else "no imatrix"
        made = f"gguf-py fp32 GGUF -> llama_model_quantize(ftype={ft}, {im})"
        if self.dequantized(precision):
            return f"{made} -> gguf.quants.dequantize into the HF model (path: dequantized, torch arithmetic)"
        return f"{made} -> llama.cpp Llama(logits_all=True) (path: runtime, llama.cpp arithmetic)"

    def apply(self, model: Any, precision: Precision, device: str, calibration: Sequence[Any] | None = None) -> Any:
        from quantrisk.models.quantizers.gguf_convert import load_gguf_weights
        from quantrisk.models.quantizers.gguf_runtime import LlamaCppLM

        path, info = quantize_to_gguf(model, model_tokenizer(model), precision, calibration)
        try:
            if self.dequantized(precision):
                model = load_gguf_weights(model, path)
                model.quantrisk_packed_bytes = lambda: info["file_bytes"]  # the file's real size
                model.gguf_info = info
                shutil.rmtree(path.parent, ignore_errors=True)
                return model
            return LlamaCppLM(path, model.config, workdir=path.parent, info=info)
        except BaseException:
            shutil.rmtree(path.parent, ignore_errors=True)
            raise


def quantize_to_gguf(model: Any, tokenizer: Any, precision: Precision | str,
                     calibration: Sequence[Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Write `model` + `tokenizer` as fp32 GGUF and llama.cpp-quantize it at `precision` (importance matrix from the
    `calibration` token batches when given) in a new private directory; returns (quantized file, facts). The
    caller owns the directory (`path.parent`)."""
    import torch

    from quantrisk.models.quantizers.gguf_convert import write_gguf
    from quantrisk.models.quantizers.gguf_imatrix import importance_matrix
    from quantrisk.models.quantizers.gguf_runtime import quantize_file

    p = precision if isinstance(precision, Precision) else GgufQuantizer.parse(str(precision).strip().lower())
    if p is None:
        raise ValueError(f"{precision!r} is not a gguf precision")
    ft = GgufQuantizer.file_type(p)
    n_params = sum(t.numel() for t in {id(t): t for t in model.parameters()}.values())
    imatrix = importance_matrix(model, calibration) if calibration else None
    workdir = Path(tempfile.mkdtemp(prefix="quantrisk-gguf-"))
    try:
        f32 = write_gguf(model, tokenizer, workdir / "model-f32.gguf")
        out = quantize_file(f32, workdir / f"model-{ft.lower()}.gguf", ft, imatrix=imatrix,
                            threads=torch.get_num_threads())
        f32.unlink()
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    size = out.stat().st_size
    return out, {"n_params": n_params, "file_bytes": size, "bits_per_weight": round(size * 8 / max(n_params, 1), 4),
                 "file_type": ft, "imatrix_tensors": len(imatrix or {}), "calibration_samples": len(calibration or [])}


def model_tokenizer(model: Any) -> Any:
    """The tokenizer saved beside the model's weights (config `_name_or_path`): GGUF files carry it."""
    source = getattr(model, "quantrisk_tokenizer", None)
    if source is not None:
        return source
    where = getattr(model.config, "_name_or_path", "") or ""
    if not where or not Path(where).is_dir():
        raise ModelLoadError("GGUF conversion needs the model's tokenizer: load the model from its directory, or set "
                             "model.quantrisk_tokenizer")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(where)
