"""`quantrisk precisions`: every precision string, its back-end, bits, devices, availability here."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("precisions")
    def precisions_cmd(
        device: str = typer.Option("cpu", help="Device to check availability on: cpu, cuda, cuda:N."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List every precision with back-end, bits, devices, and whether it runs on this machine (and why not)."""
        from quantrisk.commands._output import print_json, print_table
        from quantrisk.precision import availability, known_precisions

        rows = []
        for p in known_precisions():
            ok, why = availability(p, device)
            rows.append({**p.to_dict(), "available": ok, "reason": why})
        if as_json:
            print_json({"device": device, "precisions": rows, "rtn": "any rtn-w{2..8}g{16..256}"})
            return
        print_table(
            f"precisions (availability on {device}; any rtn-w{{2..8}}g{{16..256}} is valid)",
            ["precision", "backend", "bits", "group", "devices", "library", "DAP1", "available", "note"],
            [[r["name"], r["backend"], r["bits"], r["group_size"], "/".join(r["devices"]), r["library"] or "torch",
              "yes" if r["trainable"] else "no", "yes" if r["available"] else "no", r["reason"]] for r in rows],
        )
