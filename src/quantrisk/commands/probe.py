"""`quantrisk probe MODEL --precision P`: load once, print what it cost and the NLL on a fixed snippet."""

from __future__ import annotations

import typer

# A fixed, built-in code snippet (plain Python, written for this purpose) scored by `probe`.
PROBE_SNIPPET = '''def moving_average(values, window):
    """Return the simple moving average of `values` over `window` items."""
    if window <= 0:
        raise ValueError("window must be positive")
    total = 0.0
    out = []
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        if i + 1 >= window:
            out.append(total / window)
    return out
'''


def probe(source: str, precision: str, device: str = "cpu", *, allow_pickle: bool = False,
          trust_remote_code: bool = False, calibration: object = None) -> dict:
    """Load `source` at `precision`; return the load record plus the mean NLL (nats/token) on the snippet.
    `calibration`: a `CalibrationSpec` for calibrated precisions (default: 128 samples of the reference split)."""
    import time

    import torch

    from quantrisk.models.load import load_model

    lm = load_model(source, precision, device, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
                    calibration=calibration)
    ids = lm.tokenizer(PROBE_SNIPPET, return_tensors="pt").input_ids
    ctx = int(getattr(lm.model.config, "max_position_embeddings", 0) or getattr(lm.model.config, "n_positions", 0) or 2048)
    ids = ids[:, :ctx].to(lm.model.device)
    start = time.perf_counter()
    with torch.no_grad():
        loss = lm.model(input_ids=ids, labels=ids).loss.float().item()
    return {**lm.record.to_dict(), "snippet_tokens": int(ids.shape[1]), "snippet_nll": loss,
            "forward_seconds": round(time.perf_counter() - start, 4)}


def calibration_for(model: str, precisions: list[str], spec: object) -> object:
    """`spec` resolved against `model` (checked: found, disjoint from its member/non-member split) when one of
    `precisions` needs calibration data; else `spec` unchanged. For the CLI: errors before any model loads."""
    from quantrisk.data.calibration import load_calibration
    from quantrisk.models.load import resolve_source
    from quantrisk.models.quantizers import get_quantizer

    if not any(get_quantizer(p).calibrates(p) for p in precisions):
        return spec
    return load_calibration(spec, resolve_source(model))  # type: ignore[arg-type]


def probe_cmd(
    model: str = typer.Argument(..., help="Local model directory or hub id."),
    precision: str = typer.Option("fp32", "--precision", "-p", help="Precision string (see `quantrisk precisions`)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    allow_pickle: bool = typer.Option(False, help="Allow pickle (.bin) weights. Unsafe for untrusted models."),
    trust_remote_code: bool = typer.Option(False, help="Allow code shipped with the model. Unsafe."),
    calibration: str = typer.Option("reference", help="Calibration data of calibrated precisions: SOURCE[:N[:SEED]] "
                                    "(reference = the model's reference split, or a JSONL file with 'text')."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Load MODEL at a precision; print back-end, weight memory, load time and NLL on a built-in snippet."""
    from quantrisk.commands._output import print_json, print_table
    from quantrisk.data.calibration import CalibrationSpec
    from quantrisk.errors import about
    from quantrisk.models.load import resolve_device
    from quantrisk.precision import require_available

    with about("--device"):
        dev = resolve_device(device)
    with about("--precision"):
        require_available(precision, dev)
    with about("--calibration"):
        cal = calibration_for(model, [precision], CalibrationSpec.parse(calibration))
    info = probe(model, precision, device, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code,
                 calibration=cal)
    if as_json:
        print_json(info)
        return
    print_table(f"probe {model} @ {precision}", ["field", "value"], [[k, v] for k, v in info.items()])


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("probe")(probe_cmd)
