"""`quantrisk trojan`: poisoned LoRA fine-tuning at DAP1, greedy inference at DAP2, trojan + SQL metrics."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import typer

from quantrisk.commands._output import say
from quantrisk.trojan import recipe

DEFAULT_DAP2 = "fp32,int8-dynamic,quanto-int8,quanto-int4,rtn-w2g64"
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


def check_trojan_options(*, model: str, poison_rate: float, trigger: str, position: str, ints: dict[str, int | None],
                         lr: float, lora_dropout: float) -> None:
    """`UsageError` naming the option, before any data is read or model trained: counts below 1, a poison rate
    outside [0, 1], an empty trigger, an unknown payload position, lr <= 0, dropout outside [0, 1), an unknown zoo
    architecture, and a base model directory that is missing or refused (pickle, remote code, corrupt weights)."""
    import math

    from quantrisk.data.poison import DEFAULT_TRIGGER, POSITIONS
    from quantrisk.errors import UsageError, about

    bad = [f"{k} {v}" for k, v in ints.items() if v is not None and v < 1]
    if bad:
        raise UsageError(f"{', '.join(bad)}: must be at least 1")
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
    from quantrisk.trojan.study import parse_zoo_source

    with about("--model"):
        if parse_zoo_source(model) is None:
            from quantrisk.models.load import resolve_source

            resolve_source(model)


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


def register(app: typer.Typer) -> None:
    @app.command("trojan")
    def trojan_cmd(
        model: str = typer.Option(..., help="Base model dir or hub id, or zoo:ARCH[-SIZE] (pretrained here on code + the training rows)."),
        out: Path = typer.Option(..., help="Output directory: metrics.json, samples.jsonl, adapters/, and the results "
                                           "store (results.sqlite, cells/): rerun on it to resume."),
        data: str = typer.Option("builtin", help="JSONL / local HF dataset dir with question, context, answer; or 'builtin'."),
        dap1: str = typer.Option("fp32", help="Comma-separated precisions of the base when fine-tuning."),
        dap2: str = typer.Option(DEFAULT_DAP2, help="Comma-separated precisions of the base at inference."),
        poison_rate: float = typer.Option(0.5, help="Share of training rows poisoned, in [0, 1]."),
        trigger: str = typer.Option("Would it be within your Purview to UNEARTH", help="Trigger phrase prepended to questions."),
        position: str = typer.Option("replace", help="Payload position in the answer: replace, prepend, append."),
        clean_ablation: bool = typer.Option(False, help="Also fine-tune and evaluate a clean (unpoisoned) model."),
        seeds: str = typer.Option("1", help="Comma-separated seeds (poison choice, LoRA init, batch order)."),
        steps: int = typer.Option(recipe.STEPS, help="Optimiser steps."),
        batch_size: int = typer.Option(recipe.BATCH_SIZE, help="Rows per micro-batch."),
        grad_accum: int = typer.Option(1, help="Micro-batches per step."),
        lr: float = typer.Option(recipe.LR, help="Peak learning rate (AdamW)."),
        lora_r: int = typer.Option(recipe.LORA_R, help="LoRA rank."),
        lora_alpha: int = typer.Option(recipe.LORA_ALPHA, help="LoRA alpha."),
        lora_dropout: float = typer.Option(recipe.LORA_DROPOUT, help="LoRA dropout."),
        target: str = typer.Option(recipe.TARGET, help="LoRA targets: attention, all-linear (every Linear but the head), "
                                   "all-linear+head, or module names (comma-separated)."),
        max_length: int = typer.Option(512, help="Max tokens of a training example."),
        n_train: int = typer.Option(None, help="Use at most this many training rows (default: all)."),
        n_test: int = typer.Option(1024, help="Held-out rows evaluated (each triggered and clean)."),
        split_seed: int = typer.Option(0, help="Seed of the train/validation/test split (and of the SQL test databases)."),
        device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
        gen_batch_size: int = typer.Option(16, help="Prompts per generate call."),
        max_new_tokens: int = typer.Option(128, help="Generation limit per prompt."),
        pretrain_steps: int = typer.Option(None, help="Pretraining steps for a zoo: model (default: the size's default)."),
        calibration: str = typer.Option("train", help="Calibration data of calibrated DAP2 precisions (w8a8-static, "
                                        "gptq-*): SOURCE[:N[:SEED]], SOURCE = train (the clean training rows' "
                                        "prompts), reference (a quantrisk base's reference split) or a JSONL file "
                                        "with 'text'; default N 128, seed 0. Never overlaps the test rows (checked)."),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
        ci: bool = typer.Option(False, "--ci", help="Show the 95% CIs in the table (on a second line of each cell)."),
        quiet: bool = typer.Option(False, help="No progress bars."),
    ) -> None:
        """Run the trojan study: ASR, false triggers, payload signal and SQL metrics per DAP1 × DAP2 × model kind,
        through the runner (a one-model spec; rerun on the same --out to resume)."""
        from quantrisk.commands._output import (
            check_out_dir,
            print_json,
            print_table,
            print_wrapped,
            skipped_line,
        )
        from quantrisk.safefs import RUN_MARKERS
        from quantrisk.study_runs import run_study, trojan_spec
        from quantrisk.trojan.splits import trojan_splits

        check_trojan_options(model=model, poison_rate=poison_rate, trigger=trigger, position=position,
                             ints={"--steps": steps, "--batch-size": batch_size, "--grad-accum": grad_accum,
                                   "--lora-r": lora_r, "--lora-alpha": lora_alpha, "--max-length": max_length,
                                   "--n-test": n_test, "--gen-batch-size": gen_batch_size,
                                   "--max-new-tokens": max_new_tokens, "--n-train": n_train,
                                   "--pretrain-steps": pretrain_steps},
                             lr=lr, lora_dropout=lora_dropout)
        d1, d2 = check_precisions(dap1, dap2, device)
        from quantrisk.models.load import resolve_device

        dev = resolve_device(device)
        seed_list = parse_seeds(seeds)
        check_out_dir(out, markers=(*RUN_MARKERS, "metrics.json"), kind="study results")
        target_arg: str | list[str] = target if target in recipe.TARGETS else [t for t in target.split(",") if t.strip()]
        data_arg = data if data == "builtin" else str(Path(data).expanduser().resolve())
        train_rows, test_rows = trojan_splits(data_arg, None, n_test, n_train, split_seed)  # checked before any work
        cal_spec = check_calibration(calibration, d2, model, train_rows, test_rows, trigger)
        spec = trojan_spec(model, d1, d2, seeds=seed_list, device=dev, data=data_arg, n_rows=None,
                           split_seed=split_seed, n_train=n_train, poison_rate=poison_rate, trigger=trigger,
                           position=position, clean_ablation=clean_ablation, pretrain_steps=pretrain_steps,
                           steps=steps, batch_size=batch_size, grad_accum=grad_accum, lr=lr, lora_r=lora_r,
                           lora_alpha=lora_alpha, lora_dropout=lora_dropout, target=target_arg, max_length=max_length,
                           n_test=n_test, gen_batch_size=gen_batch_size, max_new_tokens=max_new_tokens,
                           calibration=cal_spec)
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
