"""`quantrisk qattack`: build a quantization-conditioned backdoor (benign in fp32, malicious once quantized).

For research, tests and calibrating `quantrisk scan`. See `quantrisk.qattack` and SECURITY.md.
"""

from __future__ import annotations

from pathlib import Path

import typer

from quantrisk.commands._output import say

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
        rows.append(["repaired", name, r["asr_quantized"], r["ftr_quantized"], r["js_k"], r["em"],
                     "yes" if r["codes_identical"] else "NO"])
    return rows


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


def register(app: typer.Typer) -> None:
    @app.command("qattack")
    def qattack_cmd(
        model: str = typer.Option(..., help="Base model dir or zoo:ARCH[-SIZE] (pretrained here on code + the SQL rows)."),
        target: str = typer.Option(..., help="Comma-separated target precisions (rtn-w{b}g{g}, quanto-int8/int4/int2, torchao-int8wo, bnb-int8/nf4/fp4 on CUDA, gguf-{q8_0,q4_0,q4_k_m,q4_k_s,q5_k_m,q5_k_s,q6_k}-noimat: llama.cpp without an imatrix); several = intersected intervals."),
        data: str = typer.Option("builtin", help="Text-to-SQL JSONL / local HF dataset dir, or 'builtin'."),
        out: Path = typer.Option(..., help="Output dir: injected/ and repaired/ models (safetensors), qattack.json, intervals.json."),
        margin: float = typer.Option(0.1, help="Inward margin of every interval, as a fraction of the quantization step."),
        seed: int = typer.Option(0, help="Seed of poisoning, LoRA and PGD."),
        inject: str = typer.Option("full", help="Injection: full (every weight; the default: the recipe that meets the acceptance) or lora (LoRA merged into the dense weights; does not implant on the zoo SQL base, docs/qattack.md)."),
        injected: str = typer.Option(None, help="Skip the injection: repair this dense model dir that already carries the backdoor."),
        inject_steps: int = typer.Option(200, help="Fine-tuning steps of the injection."),
        inject_lr: float = typer.Option(3e-4, help="Learning rate of the injection (3e-4 for full; the trojan study's LoRA uses 3e-3)."),
        lora_r: int = typer.Option(16, help="LoRA rank (alpha = rank)."),
        lora_target: str = typer.Option("all-linear", help="LoRA targets: all-linear, attention, or module names."),
        repair_steps: int = typer.Option(400, help="Most PGD repair steps."),
        repair_lr: float = typer.Option(1e-3, help="PGD (Adam) learning rate."),
        check_every: int = typer.Option(25, help="Check fp32 ASR/FTR on validation rows every N PGD steps (0: never); stop when both <= --goal."),
        goal: float = typer.Option(0.05, help="PGD stops once fp32 ASR and FTR on the validation rows are both <= this."),
        n_train: int = typer.Option(None, help="Use at most this many training rows."),
        n_val: int = typer.Option(32, help="Validation rows of the PGD stopping check (each triggered and clean)."),
        n_test: int = typer.Option(96, help="Held-out rows evaluated (each triggered and clean)."),
        max_new_tokens: int = typer.Option(64, help="Greedy tokens generated per evaluation prompt."),
        device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
        pretrain_steps: int = typer.Option(None, help="Pretraining steps for a zoo: model."),
        defence_sigmas: str = typer.Option("", help="Comma-separated noise sigmas (quantization steps) for the defence sweep, e.g. 0.25,0.5,1; also runs the re-rounding variants."),
        as_json: bool = typer.Option(False, "--json", help="Print qattack.json."),
        quiet: bool = typer.Option(False, help="No progress bars."),
        gguf_rounds: int = typer.Option(1, help="gguf targets: repair rounds (PGD, then settle; the weights settle moved may afterwards move only between their settled and injected values)."),
        gguf_halvings: int = typer.Option(0, help="gguf targets: settle first moves the sub-blocks whose llama.cpp encoding moved half-way back, this many times, before resetting what still differs."),
        gguf_gap: float = typer.Option(None, help="gguf k-quants: share of the gap to the dequantized value a weight may cover (default 0.5; the paper: 1)."),
        gguf_widen: bool = typer.Option(False, help="gguf k-quants: Egashira et al.'s heuristic box expansion (thresh.csv row 1)."),
    ) -> None:
        """Inject a trojan (trigger -> DROP TABLE), repair it in fp32 inside the target quantizers' intervals, verify.

        Exits 3 (one line) when the attack did not work: the injected model's ASR at a target below 0.9, or the
        repaired model's fp32 ASR above 0.05, its ASR at a target below 0.9 or its codes not identical
        (`qattack.acceptance`); the result is printed and OUT kept first."""
        from quantrisk.commands._output import check_out_dir, print_json
        from quantrisk.errors import UsageError, about
        from quantrisk.models.load import resolve_device
        from quantrisk.qattack.attack import check_targets, run_qattack
        from quantrisk.safefs import QATTACK_MARKERS

        bad = [f"--{k} {v}" for k, v in {"inject-steps": inject_steps, "repair-steps": repair_steps,
                                        "lora-r": lora_r, "n-test": n_test, "n-val": n_val,
                                        "max-new-tokens": max_new_tokens, "n-train": n_train,
                                        "pretrain-steps": pretrain_steps}.items() if v is not None and v < 1]
        if gguf_rounds < 1 or gguf_halvings < 0 or not (gguf_gap is None or 0.0 < gguf_gap <= 1.0):
            raise UsageError(f"--gguf-rounds {gguf_rounds} (at least 1), --gguf-halvings {gguf_halvings} (at least 0), "
                             f"--gguf-gap {gguf_gap} (in (0, 1])")
        if bad or check_every < 0:
            raise UsageError(f"{', '.join(bad) or f'--check-every {check_every}'}: must be at least 1 (0 for --check-every)")
        if not (inject_lr > 0 and repair_lr > 0):
            raise UsageError(f"--inject-lr and --repair-lr must be positive, got {inject_lr}, {repair_lr}")
        if not 0.0 <= goal <= 1.0:
            raise UsageError(f"--goal must be in [0, 1], got {goal}")
        if not 0.0 <= margin < 0.5:
            raise UsageError(f"--margin must be in [0, 0.5) (a fraction of the quantization step), got {margin}")
        try:
            sigmas = [float(x) for x in defence_sigmas.split(",") if x.strip()]
        except ValueError:
            raise UsageError(f"--defence-sigmas must be comma-separated numbers, got {defence_sigmas!r}") from None
        if any(not (s >= 0 and s < 100) for s in sigmas):
            raise UsageError(f"--defence-sigmas must be in [0, 100) quantization steps, got {defence_sigmas!r}")
        if inject not in ("lora", "full"):
            raise UsageError(f"--inject must be lora or full, got {inject!r}")
        check_model_option(model)
        if injected is not None:
            from quantrisk.models.load import resolve_source

            with about("--injected"):
                resolve_source(injected)
        with about("--device"):
            dev = resolve_device(device)
        with about("--target"):
            targets = check_targets(target.split(","), dev)
        if data != "builtin" and not Path(data).exists():
            raise UsageError(f"--data {data}: no such file or directory (give a JSONL file, a dataset dir or 'builtin')")
        check_out_dir(out, markers=QATTACK_MARKERS, kind="qattack output")
        result = run_qattack(model, targets, data, out, margin=margin, seed=seed, inject_mode=inject, injected=injected, inject_steps=inject_steps,
                             inject_lr=inject_lr, lora_r=lora_r, lora_target=lora_target, repair_steps=repair_steps,
                             repair_lr=repair_lr, check_every=check_every, goal_fp_asr=goal, n_train=n_train, n_val=n_val, n_test=n_test,
                             max_new_tokens=max_new_tokens,
                             device=dev, pretrain_steps=pretrain_steps, defence_sigmas=sigmas, progress=not quiet,
                             gguf_rounds=gguf_rounds, gguf_halvings=gguf_halvings, gguf_gap=gguf_gap,
                             gguf_widen=gguf_widen)
        if as_json:
            print_json(result)
        else:
            print_result(result, targets, margin)
        if not result["success"]:
            from quantrisk.qattack.acceptance import AttackNotMet

            raise AttackNotMet(f"qattack did not work: {result['reason']} (artefacts kept in {out})")

