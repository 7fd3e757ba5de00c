"""`quantrisk trojan`: poisoned LoRA fine-tuning at DAP1, greedy inference at DAP2, trojan + SQL metrics."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import typer

from quantrisk.commands._options import study_options
from quantrisk.commands._output import say
from quantrisk.trojan import recipe
from quantrisk.trojan.options import DEFAULT_DAP1, DEFAULT_DAP2, TrojanSettings

KEY_COLUMNS = ["DAP1", "DAP2", "kind"]


def trojan_columns() -> list[str]:
    """The terminal table's header: the cell keys, then the registered trojan metrics that declare a short column
    (`trojan.metrics.table_columns`, registry order; what fits 100 columns). Every metric is in metrics.json and
    `--json`."""
    from quantrisk.trojan.metrics import table_columns

    return [*KEY_COLUMNS, *(title for title, _, _ in table_columns())]


def parse_seeds(text: str) -> list[int]:
    """`"1,2"` -> [1, 2]; `UsageError` for anything that is not a comma-separated list of integers."""
    from quantrisk.errors import UsageError

    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds must be comma-separated integers, e.g. 1,2 (got {text!r})") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UsageError(f"--seeds must list at least one seed, each once (got {text!r})")
    return seeds


def check_trojan_options(*, model: str, options: dict[str, Any]) -> TrojanSettings:
    """The study's options from the CLI's (`--target` a preset or module names, `--data` a resolved path), or
    `UsageError` naming the option, before any data is read or model trained: a poison rate outside [0, 1], an
    empty trigger, an unknown payload position, lr <= 0, dropout outside [0, 1), any other option outside its
    `TrojanSettings` bound (counts below 1, ...) or refused by it (a payload without '{table}'), an unknown zoo
    architecture, and a base model directory that is missing or refused (pickle, remote code, corrupt weights)."""
    import math

    from quantrisk.commands._options import check_bounds, settings_from_cli
    from quantrisk.data.poison import DEFAULT_TRIGGER, POSITIONS
    from quantrisk.errors import UsageError, about

    poison_rate, trigger, position = options["poison_rate"], options["trigger"], options["position"]
    lr, lora_dropout = options["lr"], options["lora_dropout"]
    if not (0.0 <= poison_rate <= 1.0):  # also rejects nan
        raise UsageError(f"--poison-rate: poison rate must be in [0, 1] (the share of training rows poisoned), "
                         f"got {poison_rate}")
    if not trigger.strip():
        raise UsageError(f"--trigger: poison trigger is empty; give the phrase that starts a poisoned question "
                         f"(default: {DEFAULT_TRIGGER!r})")
    if position not in POSITIONS:
        raise UsageError(f"--position: poison position {position!r} is unknown; valid: {', '.join(POSITIONS)}")
    if not (lr > 0 and math.isfinite(lr)):
        raise UsageError(f"--lr must be a positive number, got {lr}")
    if not (0.0 <= lora_dropout < 1.0):
        raise UsageError(f"--lora-dropout must be in [0, 1), got {lora_dropout}")
    check_bounds(TrojanSettings, options)
    target, data = options["target"], options["data"]
    settings = settings_from_cli(
        TrojanSettings, options, data=data if data == "builtin" else str(Path(data).expanduser().resolve()),
        target=target if target in recipe.TARGETS else [t for t in target.split(",") if t.strip()])
    from quantrisk.trojan.study import parse_zoo_source

    with about("--model"):
        if parse_zoo_source(model) is None:
            from quantrisk.models.load import resolve_source

            resolve_source(model)
    return settings


def check_precisions(dap1: str, dap2: str, device: str) -> tuple[list[str], list[str]]:
    """The DAP1 and DAP2 precision names, each checked (known, runs on `device` here, DAP1 trainable); errors name
    the option."""
    from quantrisk.errors import about
    from quantrisk.models.load import resolve_device
    from quantrisk.precision import parse_precisions, require_available
    from quantrisk.trojan.finetune import check_trainable

    with about("--device"):
        dev = resolve_device(device)
    with about("--dap1"):
        d1 = [require_available(p, dev).name for p in parse_precisions(dap1.split(","))]
        for p in d1:
            check_trainable(p)
    with about("--dap2"):
        d2 = [require_available(p, dev).name for p in parse_precisions(dap2.split(","))]
    return d1, d2


def check_calibration(text: str, dap2: list[str], model: str, train_rows: Any, test_rows: Any, trigger: str) -> Any:
    """`--calibration` parsed (a `CalibrationSpec`) and, when a DAP2 precision needs calibration, resolved once here:
    found, and disjoint from the test rows' prompts (`trojan.calibration`); errors name the option. Source `reference`
    of a `zoo:` base is checked by the cell (the base is pretrained there)."""
    from quantrisk.data.calibration import CalibrationSpec
    from quantrisk.errors import about
    from quantrisk.precision import parse_precision
    from quantrisk.trojan.calibration import trojan_calibration
    from quantrisk.trojan.study import parse_zoo_source

    with about("--calibration"):
        spec = CalibrationSpec.parse(text)
        if any(parse_precision(p).calibrated for p in dap2) and not (
                spec.source == "reference" and parse_zoo_source(model) is not None):
            from quantrisk.models.load import resolve_source

            base = resolve_source(model) if spec.source == "reference" else None
            trojan_calibration(spec, train_rows, test_rows, trigger=trigger, base_dir=base)
    return spec


def trojan_table(result: Any, ci: bool = False) -> list[list[Any]]:
    """Rows (DAP1 × DAP2 × kind, means over seeds) for `trojan_columns()`: per registered column (metric, input set)
    the mean over seeds; a rate stored with its CI (ASR, FTR: Wilson) as 2 decimals, with `ci` and one seed its 95%
    interval on a second line; other metrics as numbers."""
    from quantrisk.trojan.metrics import TROJAN_METRICS, table_columns

    by_cell: dict[tuple[str, str, str], list[Any]] = {}
    for m in result.metrics:
        if m.name in TROJAN_METRICS and {"dap1", "dap2", "kind"} <= m.labels.keys():
            by_cell.setdefault((m.labels["dap1"], m.labels["dap2"], m.labels["kind"]), []).append(m)

    def column(rows: list[Any], name: str, input_set: str) -> Any:
        label = TROJAN_METRICS[name].input_label
        got = [m for m in rows if m.name == name and (not label or m.labels.get("input") == input_set)]
        if not got:
            return None
        value = statistics.fmean(m.value for m in got)
        if got[0].ci_low is None:
            return value
        if not ci or len(got) != 1:
            return f"{value:.2f}"
        return f"{value:.2f}\n[{got[0].ci_low:.2f},{got[0].ci_high:.2f}]"

    return [[*cell, *(column(rows, name, inp) for _, name, inp in table_columns())] for cell, rows in by_cell.items()]


@study_options(TrojanSettings)
def trojan_cmd(
    model: str = typer.Option(..., help="Base model dir or hub id, or zoo:ARCH[-SIZE] (pretrained here on code + the training rows)."),
    out: Path = typer.Option(..., help="Output directory: metrics.json, samples.jsonl, adapters/, and the results "
                                       "store (results.sqlite, cells/): rerun on it to resume."),
    dap1: str = typer.Option(",".join(DEFAULT_DAP1), help="Comma-separated precisions of the base when fine-tuning."),
    dap2: str = typer.Option(",".join(DEFAULT_DAP2), help="Comma-separated precisions of the base at inference."),
    seeds: str = typer.Option("1", help="Comma-separated seeds (poison choice, LoRA init, batch order)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    calibration: str = typer.Option("train", help="Calibration data of calibrated DAP2 precisions (w8a8-static, "
                                    "gptq-*): SOURCE[:N[:SEED]], SOURCE = train (the clean training rows' "
                                    "prompts), reference (a quantrisk base's reference split) or a JSONL file "
                                    "with 'text'; default N 128, seed 0. Never overlaps the test rows (checked)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    ci: bool = typer.Option(False, "--ci", help="Show the 95% CIs in the table (on a second line of each cell)."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    **options: Any,
) -> None:
    """Run the trojan study: ASR, false triggers, payload signal and SQL metrics per DAP1 × DAP2 × model kind,
    through the runner (a one-model spec; rerun on the same --out to resume). Every option of the spec's
    studies.trojan is an option here, with the same default."""
    from quantrisk.commands._output import (
        check_out_dir,
        print_json,
        print_table,
        print_wrapped,
        skipped_line,
    )
    from quantrisk.models.load import resolve_device
    from quantrisk.safefs import RUN_MARKERS
    from quantrisk.study_runs import run_study, trojan_spec
    from quantrisk.trojan.splits import split_seed_for, trojan_splits

    o = check_trojan_options(model=model, options=options)
    d1, d2 = check_precisions(dap1, dap2, device)
    dev = resolve_device(device)
    seed_list = parse_seeds(seeds)
    check_out_dir(out, markers=(*RUN_MARKERS, "metrics.json"), kind="study results")
    cal_spec = None
    for s in seed_list:  # every replicate's split (its own seed unless --split-seed), checked before any work
        train_rows, test_rows = trojan_splits(o.data, o.n_rows, o.n_test, o.n_train, split_seed_for(s, o.split_seed))
        cal_spec = check_calibration(calibration, d2, model, train_rows, test_rows, o.trigger)
    spec = trojan_spec(model, d1, d2, seeds=seed_list, device=dev, calibration=cal_spec, **dict(o))
    result = run_study(spec, out, progress=not quiet and not as_json)
    if as_json:
        print_json({k: v for k, v in result.to_dict().items() if k != "samples"})
        return
    n_seeds = len({m.labels.get("seed") for m in result.metrics if m.name == "asr"})
    print_table(f"trojan study: {result.environment['n_test']} test rows, triggered + clean, {n_seeds} seed(s); "
                "SQL metrics on clean inputs" + ("; 95% Wilson CIs" if ci else " (--ci: 95% CIs)"),
                trojan_columns(), trojan_table(result, ci))
    if result.skipped:
        print_wrapped(skipped_line(result.skipped))
    say(f"results written to {out} ({result.seconds:.1f} s)")


def register(app: typer.Typer) -> None:
    """Add `quantrisk trojan` to `app`."""
    app.command("trojan")(trojan_cmd)
