"""Step 4 of the attack: re-quantize both models and check that the quantized weights are the same.

Per target, for every quantized Linear, the tensors the back-end stores are compared bit for bit:
- rtn: integer codes and per-group scales (the formula of `models/quantizers/rtn.py`) and the dequantized
  weight that quantrisk's own `rtn_quantize` returns;
- quanto: `QLinear.qweight`'s codes (unpacked), scales and shifts, from optimum-quanto itself;
- torchao-int8wo: `Int8Tensor.qdata` and `.scale`, from torchao itself;
- bnb (CUDA): the models are loaded through `load_model` at the target and each `Linear8bitLt`'s int8 codes and
  row scales (`CB`, `SCB`) or `Linear4bit`'s packed codes and block absmax are compared.
- gguf: both models are loaded through `load_model` at the target, i.e. converted and quantized by llama.cpp's own
  `llama_model_quantize` (with the target's importance matrix, if any), and the stored bytes of every tensor of
  the two GGUF files are compared (block scales, mins and codes; the tensors nothing repaired included); also
  counted: the quantization blocks (k-quants: super-blocks of 256) whose bytes differ (`blocks_differing`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantrisk.precision import parse_precision


def _in_memory_states(model: Any, precision: Any) -> dict[str, dict[str, Any]]:
    from quantrisk.models.quantizers.base import quantizable_linears
    from quantrisk.models.quantizers.rtn import rtn_quantize
    from quantrisk.qattack.constraints import encode
    from quantrisk.qattack.constraints.quanto import quantized_state

    states = {}
    for name, m in quantizable_linears(model).items():
        w = m.weight.detach().float()
        if precision.backend == "torchao":
            from quantrisk.qattack.constraints.torchao import quantized_state as torchao_state

            states[name] = torchao_state(w)
        elif precision.backend == "rtn":
            states[name] = {**encode(w, precision).state,
                            "dequantized": rtn_quantize(w, precision.bits, precision.group_size)}
        else:
            states[name] = quantized_state(w, precision)
    return states


def _bnb_states(model_dir: str | Path, precision: Any, device: str) -> dict[str, dict[str, Any]]:
    from quantrisk.models.load import load_model

    lm = load_model(model_dir, precision, device)
    states = {}
    for name, m in lm.model.named_modules():
        w = getattr(m, "weight", None)
        if w is None:
            continue
        if hasattr(w, "quant_state") and w.quant_state is not None:  # Linear4bit
            states[name] = {"codes": w.data.detach().cpu().clone(), "scales": w.quant_state.absmax.detach().cpu().clone()}
        elif getattr(w, "SCB", None) is not None or getattr(m, "state", None) is not None and hasattr(m.state, "SCB"):
            scb = getattr(w, "SCB", None)
            if scb is None:
                scb = m.state.SCB
            states[name] = {"codes": w.data.detach().cpu().clone(), "scales": scb.detach().cpu().clone()}
    return states


def _gguf_states(model_dir: str | Path, precision: Any) -> dict[str, dict[str, Any]]:
    from quantrisk.models.load import load_model
    from quantrisk.qattack.constraints.gguf import file_blocks

    lm = load_model(model_dir, precision.name.replace("-dq", ""), "cpu")
    return {name: {"blocks": b} for name, b in file_blocks(lm.model.path).items()}


def compare_states(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """identical (bool), layers compared, layers and elements that differ."""
    import torch

    bad_layers, bad_elems = [], 0
    for name in a:
        for key, t in a[name].items():
            u = b.get(name, {}).get(key)
            if u is None or t.shape != u.shape:
                bad_layers.append(name)
                bad_elems += int(t.numel())
                continue
            diff = int((t != u).sum()) if not torch.equal(t, u) else 0
            if diff:
                bad_layers.append(name)
                bad_elems += diff
    return {"identical": not bad_layers and set(a) == set(b) and len(a) > 0, "layers": len(a),
            "layers_differing": sorted(set(bad_layers)), "elements_differing": bad_elems}


def blocks_differing(a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]]) -> dict[str, int]:
    """{blocks, blocks_differing, blocks_of_differing_tensors}: rows (dim 0: one quantization block each,
    `file_blocks`) of every tensor of `a`, those whose bytes differ in `b` (a tensor missing or of another shape in
    `b`: all its rows), and the rows of the tensors with at least one such block (the share that moved where
    anything moved, not diluted by the tensors nothing changed)."""
    total = bad = touched = 0
    for name in a:
        for key, t in a[name].items():
            rows = int(t.shape[0])
            u = b.get(name, {}).get(key)
            n = rows if u is None or t.shape != u.shape else int((t != u).reshape(rows, -1).any(dim=1).sum())
            total, bad, touched = total + rows, bad + n, touched + (rows if n else 0)
    return {"blocks": total, "blocks_differing": bad, "blocks_of_differing_tensors": touched}


def verify(injected_dir: str | Path, repaired_dir: str | Path, targets: Sequence[str],
           device: str = "cpu") -> dict[str, dict[str, Any]]:
    """target -> `compare_states` of the injected and repaired models re-quantized at that target."""
    from quantrisk.models.load import load_model

    out = {}
    fp = None
    for target in targets:
        p = parse_precision(target)
        if p.backend == "gguf":
            a, b = _gguf_states(injected_dir, p), _gguf_states(repaired_dir, p)
            out[p.name] = {**compare_states(a, b), **blocks_differing(a, b)}
            continue
        if p.backend == "bnb":
            out[p.name] = compare_states(_bnb_states(injected_dir, p, device), _bnb_states(repaired_dir, p, device))
            continue
        if fp is None:
            fp = (load_model(injected_dir, "fp32", "cpu").model, load_model(repaired_dir, "fp32", "cpu").model)
        out[p.name] = compare_states(_in_memory_states(fp[0], p), _in_memory_states(fp[1], p))
    return out
