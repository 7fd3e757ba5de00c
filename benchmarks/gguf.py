"""GGUF / llama.cpp: conversion + quantization time per zoo size, runtime scoring tokens/s vs torch, fidelity.

Timing cases build an (untrained, seeded) zoo model of each size: time does not depend on the weights.
`gguf-f32 write` is gguf-py's conversion, `quantize` llama.cpp's `llama_model_quantize` (with an
importance matrix from 16 random-token calibration rows), `score` the scoring engine over 16 texts of
256 random tokens on llama.cpp (`gguf-<type>`) and on torch fp32 CPU, as tokens scored per second.
Fidelity (`--model DIR`, a trained model): `gguf_fidelity` per precision on 32 texts of its reference split.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import machine, time_it, versions


def _versions() -> str:
    from quantrisk.environment import package_version

    return f"{versions()} llama-cpp-python {package_version('llama-cpp-python')} gguf {package_version('gguf')}"


def _row(case: str, metric: str, values: list[float], command: str, device: str = "cpu") -> dict[str, Any]:
    import statistics

    return {"benchmark": "gguf", "case": case, "metric": metric, "median": statistics.median(values),
            "low": min(values), "high": max(values), "repeats": len(values), "machine": machine(device),
            "versions": _versions(), "command": command}


def timing(arch: str, size: str, precision: str, repeats: int, command: str) -> list[dict[str, Any]]:
    import torch

    from quantrisk.models.quantizers.gguf import GgufQuantizer
    from quantrisk.models.quantizers.gguf_convert import write_gguf
    from quantrisk.models.quantizers.gguf_imatrix import importance_matrix
    from quantrisk.models.quantizers.gguf_runtime import LlamaCppLM, quantize_file
    from quantrisk.models.tokenizer import train_tokenizer
    from quantrisk.models.zoo import build_model
    from quantrisk.precision import parse_precision
    from quantrisk.scoring import score_token_ids

    tok = train_tokenizer([Path(torch.__file__).read_text()] * 2, 4096)
    model = build_model(arch, size, len(tok)).eval()
    gen = torch.Generator().manual_seed(0)
    cal = [torch.randint(0, len(tok), (1, 256), generator=gen) for _ in range(16)]
    texts = [torch.randint(0, len(tok), (256,), generator=gen).tolist() for _ in range(16)]
    ft = GgufQuantizer.file_type(parse_precision(precision))
    case = f"{arch}-{size} {precision}"
    work = Path(tempfile.mkdtemp(prefix="quantrisk-gguf-bench-"))
    try:
        f32 = work / "f32.gguf"
        write = time_it(lambda: write_gguf(model, tok, f32), repeats=repeats, warmup=0)
        imat = importance_matrix(model, cal)
        out = work / "q.gguf"
        quant = time_it(lambda: quantize_file(f32, out, ft, imatrix=imat, threads=torch.get_num_threads()),
                        repeats=repeats, warmup=0)
        n = sum(p.numel() for p in model.parameters())
        lm = LlamaCppLM(out, model.config, info={"n_params": n})
        tokens = sum(len(t) - 1 for t in texts)
        rt = time_it(lambda: score_token_ids(lm, texts), repeats=repeats, warmup=1)
        fp = time_it(lambda: score_token_ids(model, texts), repeats=repeats, warmup=1)
        bpw = out.stat().st_size * 8 / n
        return [
            _row(case, "gguf-py f32 write seconds", write.values, command),
            _row(case, "llama.cpp quantize seconds", quant.values, command),
            _row(case, "file bits per weight", [bpw], command),
            _row(case, "score tokens/s llama.cpp", [tokens / v for v in rt.values], command),
            _row(f"{arch}-{size} fp32", "score tokens/s torch", [tokens / v for v in fp.values], command),
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fidelity(model_dir: str, precisions: list[str], command: str, n_texts: int = 32) -> list[dict[str, Any]]:
    from quantrisk.data.calibration import CalibrationSpec, load_calibration, token_batches
    from quantrisk.data.corpus import load_split
    from quantrisk.models.load import load_model
    from quantrisk.models.quantizers.gguf_fidelity import gguf_fidelity

    fp = load_model(model_dir, "fp32")
    cal = load_calibration(CalibrationSpec(), model_dir)
    batches = token_batches(fp.tokenizer, cal.texts, max_tokens=256)
    used = set(cal.texts)
    texts = [s.text for s in sorted(load_split(Path(model_dir)), key=lambda s: s.id)
             if s.split == "nonmember" and s.text not in used][:n_texts // 2]
    texts += [s.text for s in sorted(load_split(Path(model_dir)), key=lambda s: s.id) if s.split == "member"][:n_texts // 2]
    rows = []
    for p in precisions:
        start = time.perf_counter()
        r = gguf_fidelity(fp.model, fp.tokenizer, p, texts, calibration=batches, max_tokens=256)
        case = f"{Path(model_dir).name} {p}"
        for key, value in r.flat().items():
            if key not in ("precision",):
                rows.append(_row(case, f"fidelity {key}", [float(value)], command))
        rows.append(_row(case, "fidelity seconds", [time.perf_counter() - start], command))
    return rows


def run(args: argparse.Namespace, extra: list[str], command: str) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(prog="python -m benchmarks gguf", allow_abbrev=False)
    p.add_argument("--sizes", default="tiny,small")
    p.add_argument("--archs", default="llama,pythia")
    p.add_argument("--precision", default="gguf-q4_k_m", help="the file type timed")
    p.add_argument("--fidelity-only", action="store_true")
    o = p.parse_args(extra)
    rows: list[dict[str, Any]] = []
    if not o.fidelity_only:
        for arch in o.archs.split(","):
            for size in o.sizes.split(","):
                rows += timing(arch, size, o.precision, args.repeats, command)
    if args.model:
        precisions = (args.precisions or "gguf-q8_0,gguf-q6_k,gguf-q5_k_m,gguf-q4_k_m,gguf-q3_k_m,gguf-q2_k,"
                      "gguf-iq4_xs").split(",")
        rows += fidelity(args.model, precisions, command)
    return rows
