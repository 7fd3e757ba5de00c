"""`quantrisk qattack`: build a quantization-conditioned backdoor (benign in fp32, malicious once quantized).

For research, tests and calibrating `quantrisk scan`. See `quantrisk.qattack` and SECURITY.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from quantrisk.commands._options import check_bounds, settings_from_cli, study_options
from quantrisk.commands._output import say
from quantrisk.qattack.options import QattackSettings

COLUMNS = ["model", "precision", "ASR", "FTR", "JS-K", "EM", "codes identical"]


def check_model_option(model: str) -> None:
    """`UsageError` naming --model for an unknown zoo architecture or a missing / refused model directory."""
    from quantrisk.errors import about
    from quantrisk.trojan.study import parse_zoo_source

    with about("--model"):
        if parse_zoo_source(model) is None:
            from quantrisk.models.load import resolve_source

            resolve_source(model)


def qattack_rows(result: dict) -> list[list[object]]:
    """Table rows: base / injected / repaired in fp32 and the injected / repaired models at every target."""
    rows: list[list[object]] = [["base", "fp32", result["base_fp"]["asr"], result["base_fp"]["ftr"],
                                 result["base_fp"]["js_k"], result["base_fp"]["em"], ""]]
    for name, r in result["injected"].items():
        rows.append(["injected", name, r["asr"], r["ftr"], r["js_k"], r["em"], ""])
    rep = result["repaired_fp"]
    rows.append(["repaired", "fp32", rep["asr"], rep["ftr"], rep["js_k"], rep["em"], ""])
    for name, r in result["per_target"].items():
        rows.append(["repaired", name, r["asr_quantized"], r["ftr_quantized"], r["js_k"], r["em"], codes_cell(r)])
    return rows


def codes_cell(r: dict[str, Any]) -> str:
    """yes; NO; or, where differing codes were accepted (--gguf-accept-moved), how many blocks differ."""
    if r["codes_identical"]:
        return "yes"
    if r.get("codes_required", True):
        return "NO"
    from quantrisk.qattack.acceptance import moved_blocks

    return f"no: {moved_blocks(r.get('verify') or {})} (accepted)"


def print_result(result: dict, targets: list[str], margin: float) -> None:
    """The result table, the defence table and the repaired model's path."""
    from quantrisk.commands._output import print_table

    print_table(f"qattack: targets {', '.join(targets)}, margin {margin}, {result['repair']['steps_run']} PGD steps "
                f"({result['n_test']} test rows, triggered + clean)", COLUMNS, qattack_rows(result))
    if result.get("defence"):
        print_table("defence: noise before quantizing (sigma in quantization steps) and re-rounding",
                    ["defence", "target", "sigma", "quantized at", "ASR", "FTR", "JS-K", "EM"],
                    [[r["defence"], r["target"], r["sigma"], r["precision"], r["asr"], r["ftr"], r["js_k"], r["em"]]
                     for r in result["defence"]])
    say(f"repaired model: {result['paths']['repaired']} ({result['seconds']:.0f} s)")
    say(f"acceptance: {'met' if result['success'] else 'NOT met'} ({result['reason']})")


@study_options(QattackSettings)
def qattack_cmd(
    model: str = typer.Option(..., help="Base model dir or zoo:ARCH[-SIZE] (pretrained here on code + the SQL rows)."),
    target: str = typer.Option(..., help="Comma-separated target precisions (rtn-w{b}g{g}, quanto-int8/int4/int2, "
                               "torchao-int8wo, bnb-int8/nf4/fp4 on CUDA, gguf-{q8_0,q4_0,q4_k_m,q4_k_s,q5_k_m,q5_k_s,"
                               "q6_k}-noimat: llama.cpp without an imatrix); several = intersected intervals."),
    out: Path = typer.Option(..., help="Output dir: injected/ and repaired/ models (safetensors), qattack.json, "
                             "intervals.json."),
    seed: int = typer.Option(0, help="Seed of poisoning, LoRA and PGD."),
    injected: str = typer.Option(None, help="Skip the injection: repair this dense model dir that already carries "
                                 "the backdoor."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    as_json: bool = typer.Option(False, "--json", help="Print qattack.json."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    **options: Any,
) -> None:
    """Inject a trojan (trigger -> DROP TABLE), repair it in fp32 inside the target quantizers' intervals, verify.
    Every option of the spec's studies.qattack is an option here, with the same default.

    Exits 3 (one line) when the attack did not work: the injected model's ASR at a target below 0.9, or the
    repaired model's fp32 ASR above 0.05, its ASR at a target below 0.9 or its codes not identical (not required
    at gguf targets with --gguf-accept-moved) (`qattack.acceptance`); the result is printed and OUT kept first."""
    from quantrisk.commands._output import check_out_dir, print_json
    from quantrisk.errors import UsageError, about
    from quantrisk.models.load import resolve_device
    from quantrisk.qattack.attack import check_targets, run_qattack
    from quantrisk.safefs import QATTACK_MARKERS

    check_bounds(QattackSettings, options)
    text = options["defence_sigmas"]
    try:
        sigmas = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--defence-sigmas must be comma-separated numbers, got {text!r}") from None
    settings = settings_from_cli(QattackSettings, options, defence_sigmas=sigmas)
    check_model_option(model)
    if injected is not None:
        from quantrisk.models.load import resolve_source

        with about("--injected"):
            resolve_source(injected)
    with about("--device"):
        dev = resolve_device(device)
    with about("--target"):
        targets = check_targets(target.split(","), dev)
    data = settings.data
    if data != "builtin" and not Path(data).exists():
        raise UsageError(f"--data {data}: no such file or directory (give a JSONL file, a dataset dir or 'builtin')")
    check_out_dir(out, markers=QATTACK_MARKERS, kind="qattack output")
    result = run_qattack(model, targets, data, out, seed=seed, injected=injected, device=dev, progress=not quiet,
                         **settings.attack_kwargs())
    if as_json:
        print_json(result)
    else:
        print_result(result, targets, settings.margin)
    if not result["success"]:
        from quantrisk.qattack.acceptance import AttackNotMet

        raise AttackNotMet(f"qattack did not work: {result['reason']} (artefacts kept in {out})")


def register(app: typer.Typer) -> None:
    """Add `quantrisk qattack` to `app`."""
    app.command("qattack")(qattack_cmd)
