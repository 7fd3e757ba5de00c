"""`quantrisk scan`: check a full-precision model for behaviour that only appears once it is quantized."""

from __future__ import annotations

from pathlib import Path

import typer

from quantrisk.commands._output import say


def register(app: typer.Typer) -> None:
    @app.command("scan")
    def scan_cmd(
        model: str = typer.Argument(..., help="Model directory (config.json + *.safetensors) or a cached hub id."),
        precisions: str = typer.Option(..., help="Comma-separated precisions you would deploy (e.g. rtn-w4g64,quanto-int8)."),
        probes: Path = typer.Option(None, help="JSONL of extra probes: 'prompt', or 'question' + 'context' per line."),
        device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
        max_new_tokens: int = typer.Option(48, help="Greedy tokens generated per probe."),
        n_sql: int = typer.Option(24, help="Built-in text-to-SQL probes (0 or more; the 4 code probes are always used)."),
        n_prefixes: int = typer.Option(8, help="Trigger-like prefixes tried, the first N of the built-in 8 (0-8)."),
        calibration: str = typer.Option("reference", help="Calibration data of calibrated precisions (w8a8-static...): "
                                        "SOURCE[:N[:SEED]], SOURCE = reference (the model's reference split) or a "
                                        "JSONL file with 'text' (how a downloaded model is scanned at them)."),
        as_json: bool = typer.Option(False, "--json", help="Print the full result as JSON."),
    ) -> None:
        """Compare the model with its quantized copies on probes and weight statistics; verdict clean / suspicious."""
        from quantrisk.commands._output import print_json
        from quantrisk.errors import UsageError, about
        from quantrisk.models.load import resolve_device, resolve_source
        from quantrisk.precision import parse_precisions, require_available
        from quantrisk.qattack.probes import PREFIXES, builtin_probes, load_probes
        from quantrisk.qattack.scan import scan_model

        if max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
        if n_sql < 0:
            raise UsageError(f"--n-sql must be 0 or more, got {n_sql}")
        if not 0 <= n_prefixes <= len(PREFIXES):
            raise UsageError(f"--n-prefixes must be in 0..{len(PREFIXES)}, got {n_prefixes}")
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
            cal = calibration_for(source, names, CalibrationSpec.parse(calibration))
        probe_list = builtin_probes(n_sql) + (load_probes(probes) if probes is not None else [])
        result = scan_model(source, names, probe_list, device=dev, max_new_tokens=max_new_tokens,
                            prefixes=PREFIXES[:n_prefixes], calibration=cal)
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
