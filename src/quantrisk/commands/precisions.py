"""`quantrisk precisions`: every precision string, its back-end, bits, devices, availability here."""

from __future__ import annotations

import typer


def grouped_reasons(rows: list[dict]) -> dict[str, list[str]]:
    """Availability notes once each: reason (without the precision's own name) -> the precisions it applies to."""
    out: dict[str, list[str]] = {}
    for r in rows:
        if r["reason"]:
            why = str(r["reason"])
            why = why[len(r["name"]) + 1:].lstrip(": ") if why.startswith(r["name"] + " ") else why
            out.setdefault(why, []).append(r["name"])
    return out


def precisions_cmd(
    device: str = typer.Option("cpu", help="Device to check availability on: cpu, cuda, cuda:N."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every precision with back-end, library + version, bits, activations, whether it needs calibration
    data, devices, whether it can be a LoRA base (DAP1), and whether it runs on this machine (and why not)."""
    from quantrisk.commands._output import print_json, print_table, print_wrapped
    from quantrisk.errors import about
    from quantrisk.models.quantizers import QUANTIZERS
    from quantrisk.precision import availability, device_type, known_precisions

    with about("--device"):
        device_type(device)
    rows = []
    for p in known_precisions():
        ok, why = availability(p, device)
        q = QUANTIZERS[p.backend]()
        rows.append({**p.to_dict(), "library_version": q.library_version() if ok else None,
                     "at_load": q.at_load, "available": ok, "reason": why})
    patterns = [q.pattern_hint for q in QUANTIZERS.values() if q.pattern_hint]
    if as_json:
        print_json({"device": device, "precisions": rows, "patterns": patterns})
        return
    print_table(
        f"precisions (availability on {device})",
        ["precision", "library (back-end)", "bits", "group", "activations", "calib", "devices", "DAP1", "here"],
        [[r["name"], (r["library"] or "torch") + (f" ({r['backend']})" if r["backend"] != r["library"] else ""), r["bits"], r["group_size"], r["activations"],
          "yes" if r["calibrated"] else "-", "/".join(r["devices"]), "yes" if r["trainable"] else "no",
          "yes" if r["available"] else "no"] for r in rows],
    )
    print_wrapped("also valid: " + "; ".join(patterns))
    libs = sorted({(r["library"] or "torch", r["library_version"]) for r in rows if r["library_version"]})
    print_wrapped("libraries here: " + ", ".join(f"{n} {v}" for n, v in libs))
    for reason, names in grouped_reasons(rows).items():
        print_wrapped(f"{', '.join(names)}: {reason}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("precisions")(precisions_cmd)
