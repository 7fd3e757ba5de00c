"""w8a8-static / w8a8-static-fp8: weights AND activations quantized, activation scales calibrated once.

Static quantization as deployed (e.g. the privacy study's "static" setting): N calibration samples
run through the fp model, an observer per nn.Linear (all but the output head) records the range of
its input, and the layer is then frozen with that one activation scale for every later input.

    w8a8-static       torchao `Int8StaticActivationInt8WeightConfig`: int8 weights per output row
                      (symmetric) + int8 activations with one per-tensor symmetric scale per layer,
                      s = max|x| / 127.5 over the calibration set (torchao's `AffineQuantizedMinMaxObserver`,
                      symmetric: (qmax - qmin) / 2 = 127.5);
                      inputs beyond the calibrated range are clipped. CPU and CUDA.
    w8a8-static-fp8   torchao `Float8StaticActivationFloat8WeightConfig` through its own observer flow
                      (step="prepare", calibrate, step="convert"): float8 e4m3 weights and activations,
                      per-tensor scales. CUDA with compute capability >= 8.9.

Why torchao: it is PyTorch's maintained quantization library (monthly releases, the replacement
of torch.ao), its static configs run on this CPU machine, and it is already the back-end of the
torchao-* precisions. optimum-quanto's activation quantization (its `Calibration` context) also
runs on CPU, but quanto has had no release since 0.2.7; llm-compressor needs transformers <= 5.17.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quantrisk.models.quantizers.base import Precision, Quantizer, quantizable_linears, quiet_import
from quantrisk.models.quantizers.torchao import fp8_on_cuda_check

_FIXED = {
    "w8a8-static": (8, "int", ("cpu", "cuda"), "int8-static",
                    "int8 weights per row + int8 activations, one per-tensor scale per layer calibrated on N samples (torchao)"),
    "w8a8-static-fp8": (8, "fp", ("cuda",), "fp8-static",
                        "float8 e4m3 weights + float8 activations, per-tensor scales calibrated on N samples (torchao)"),
}


def run_calibration(model: Any, calibration: Sequence[Any]) -> None:
    """Forward every calibration batch (token ids (1, T)) through `model` without gradients."""
    import torch

    device = next(model.parameters()).device
    with torch.no_grad():
        for ids in calibration:
            model(input_ids=ids.to(device))


def int8_input_scales(model: Any, linears: dict[str, Any], calibration: Sequence[Any]) -> dict[str, Any]:
    """name -> per-tensor symmetric int8 scale (max|x| / 127.5, torchao's convention) of each Linear's input over the calibration set."""
    import torch

    with quiet_import():
        from torchao.quantization.granularity import PerTensor
        from torchao.quantization.observer import AffineQuantizedMinMaxObserver
        from torchao.quantization.quant_primitives import MappingType

    observers = {n: AffineQuantizedMinMaxObserver(MappingType.SYMMETRIC, torch.int8, PerTensor(),
                                                  eps=torch.finfo(torch.float32).eps, scale_dtype=torch.float32,
                                                  zero_point_dtype=torch.int32) for n in linears}
    def observe(obs: Any) -> Any:
        def hook(_module: Any, args: tuple[Any, ...]) -> None:
            # returns None: a pre-hook's return value would replace the layer's input (the observer returns its
            # float32 argument, which on a bf16 model (CUDA) broke the next matmul: "mat1 and mat2 must have the
            # same dtype, but got Float and BFloat16", seen on an H100)
            obs(args[0].float())
        return hook

    hooks = [m.register_forward_pre_hook(observe(observers[n])) for n, m in linears.items()]
    try:
        run_calibration(model, calibration)
    finally:
        for h in hooks:
            h.remove()
    missing = [n for n, o in observers.items() if not hasattr(o, "min_val")]
    if missing:
        raise RuntimeError(f"calibration never reached {len(missing)} Linear layers (e.g. {missing[0]})")
    return {n: o.calculate_qparams()[0].float().reshape(-1)[:1] for n, o in observers.items()}


class StaticQuantizer(Quantizer):
    backend = "static"
    marker = "p"
    library = "torchao"
    module = "torchao"
    min_version = "0.14"
    install_hint = " (pip install 'torchao>=0.14')"
    lora_base = False
    lora_reason = "its activations are quantized with frozen calibrated scales (inference-only torchao tensors)"
    needs_calibration = True
    quantize_on_device = True
    examples = tuple(_FIXED)

    @classmethod
    def parse(cls, name: str) -> Precision | None:
        if name not in _FIXED:
            return None
        bits, kind, devices, acts, desc = _FIXED[name]
        return Precision(name, cls.backend, bits, kind, devices, library=cls.library, trainable=False,
                         activations=acts, calibrated=True, description=desc)

    @classmethod
    def validate_environment(cls, precision: Precision, device: str) -> tuple[bool, str]:
        return fp8_on_cuda_check(super().validate_environment(precision, device), precision, device)

    def implementation(self, precision: Any) -> str:
        if precision.kind == "fp":
            return "torchao Float8StaticActivationFloat8WeightConfig (prepare / calibrate / convert)"
        return "torchao Int8StaticActivationInt8WeightConfig, per-layer scales from AffineQuantizedMinMaxObserver"

    def apply(self, model: Any, precision: Any, device: str, calibration: Sequence[Any] | None = None) -> Any:
        if not calibration:
            raise ValueError(f"{precision.name} needs calibration samples")
        with quiet_import():
            import torchao.quantization as tq

        linears = quantizable_linears(model)
        targets = set(linears.values())
        if precision.kind == "fp":
            def only(m: Any, _fqn: str) -> bool:
                return m in targets or type(m).__name__ == "Float8ObservedLinear"

            tq.quantize_(model, tq.Float8StaticActivationFloat8WeightConfig(step="prepare"), filter_fn=only)
            run_calibration(model, calibration)
            tq.quantize_(model, tq.Float8StaticActivationFloat8WeightConfig(step="convert"), filter_fn=only)
            return model
        scales = int8_input_scales(model, linears, calibration)
        with quiet_import():
            from torchao.quantization.granularity import PerRow, PerTensor
        # activations: one scale per tensor (shape (1, 1, 1) for the (batch, seq, hidden) inputs); weights per row
        configs = {n: tq.Int8StaticActivationInt8WeightConfig(act_quant_scale=s.reshape(1, 1, 1),
                                                              granularity=[PerTensor(), PerRow()])
                   for n, s in scales.items()}
        tq.quantize_(model, tq.FqnToConfig(configs), filter_fn=None)
        return model
