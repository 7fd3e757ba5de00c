"""`quantrisk scan`: check a full-precision model for behaviour that only appears once it is quantized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from quantrisk.commands._options import check_bounds, settings_from_cli, study_options
from quantrisk.commands._output import say
from quantrisk.qattack.options import ScanSettings


@study_options(ScanSettings)
def scan_cmd(
    model: str = typer.Argument(..., help="Model directory (config.json + *.safetensors) or a cached hub id."),
    precisions: str = typer.Option(..., help="Comma-separated precisions you would deploy (e.g. rtn-w4g64,quanto-int8)."),
    probes: Path = typer.Option(None, help="JSONL of extra probes: 'prompt', or 'question' + 'context' per line."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    **options: Any,
) -> None:
    """Compare the model with its quantized copies on probes and weight statistics; verdict clean / suspicious."""
    from quantrisk.commands._output import print_json
    from quantrisk.errors import UsageError, about
    from quantrisk.models.load import resolve_device, resolve_source
    from quantrisk.precision import parse_precisions, require_available
    from quantrisk.qattack.probes import PREFIXES, builtin_probes, load_probes
    from quantrisk.qattack.scan import scan_model

    check_bounds(ScanSettings, options)
    settings = settings_from_cli(ScanSettings, options)
    with about("--device"):
        dev = resolve_device(device)
    with about("--precisions"):
        names = [require_available(p, dev).name for p in parse_precisions(precisions.split(","))]
        if any(n == "fp32" for n in names):
            raise UsageError("fp32 is the reference every precision is compared with; list quantized precisions")
    with about("MODEL"):
        source = resolve_source(model)
    from quantrisk.commands.probe import calibration_for
    from quantrisk.data.calibration import CalibrationSpec

    with about("--calibration"):  # checked (found, readable) before any model loads
        cal = calibration_for(source, names, CalibrationSpec.parse(settings.calibration))
    probe_list = builtin_probes(settings.n_sql) + (load_probes(probes) if probes is not None else [])
    result = scan_model(source, names, probe_list, device=dev, max_new_tokens=settings.max_new_tokens,
                        prefixes=PREFIXES[:settings.n_prefixes], calibration=cal)
    if as_json:
        print_json(result)
        if result["verdict"] == "error":
            raise typer.Exit(1)
        return
    from quantrisk.commands.scan_view import scan_lines

    for line in scan_lines(result, model):
        say(line)
    if result["verdict"] == "error":  # fail closed: the model could not be evaluated, so no verdict
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `quantrisk scan` to `app`."""
    app.command("scan")(scan_cmd)
