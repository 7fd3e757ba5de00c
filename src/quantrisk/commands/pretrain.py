"""`quantrisk pretrain`: train an embedded zoo model from scratch on code (the standard library by default)."""

from __future__ import annotations

from pathlib import Path

import typer


def pretrain_cmd(
    arch: str = typer.Option(..., help="Architecture: pythia, codegen, gptneo, llama."),
    out: Path = typer.Option(..., help="Output model directory."),
    size: str = typer.Option("tiny", help="tiny (CPU), small (Pythia-70m shape), base (Pythia-160m shape), "
                                          "large (Pythia-410m shape)."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    seed: int = typer.Option(0, help="Seed of the split, the initialisation and the batches."),
    unit: str = typer.Option("function", help="Sample unit: function or file."),
    steps: int = typer.Option(None, help="Optimizer steps (default: the size's)."),
    batch_size: int = typer.Option(None, help="Sequences per step (default: the size's)."),
    lr: float = typer.Option(None, help="Peak learning rate (default: the size's)."),
    per_split: int = typer.Option(None, help="Samples kept per split (default: the size's)."),
    vocab_size: int = typer.Option(None, help="BPE vocabulary size (default: the size's)."),
    seq_len: int = typer.Option(None, help="Longest training sequence in tokens, <= the model's context (default: the size's)."),
    corpus: str = typer.Option("stdlib", help="'stdlib', 'stdlib,site-packages[:dist,...]' (permissively licensed "
                                              "installed distributions), a folder of .py files, or a JSONL with a text field."),
    regime: str = typer.Option(None, help="exposure (default): one pass over filler code with each member group "
                                          "inserted exactly k times; memorise: --steps over the members (they are "
                                          "memorised). A reference model takes the target's."),
    exposures: str = typer.Option(None, help="Exposure regime: comma-separated k of the member groups (default 1,2,4,8,16)."),
    per_exposure: int = typer.Option(None, help="Exposure regime: members per exposure group (default: the size's)."),
    max_filler: int = typer.Option(None, help="Exposure regime: at most this many filler samples, 0 = all (default: the size's)."),
    compile: bool = typer.Option(None, "--compile/--no-compile", help="torch.compile the exposure regime's loop (default: on CUDA)."),
    role: str = typer.Option("target", help="target, or reference (needs --tokenizer-from)."),
    tokenizer_from: Path = typer.Option(None, help="Target model dir whose tokenizer and split a reference model uses."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Pretrain a zoo model; writes model (safetensors), tokenizer, split.jsonl, train_log.jsonl, pretrain.json."""
    from quantrisk.commands._output import print_json, print_table
    from quantrisk.errors import UsageError, about
    from quantrisk.models.pretrain import pretrain
    from quantrisk.models.zoo import check_arch, check_size
    from quantrisk.safefs import check_model_out

    check_model_out(out)  # before any work: never train for an hour, then find --out unusable
    with about("--arch"):
        check_arch(arch)
    with about("--size"):
        check_size(size)
    if role not in ("target", "reference"):
        raise UsageError(f"unknown role {role!r}; valid: target, reference")
    if (role == "reference") != (tokenizer_from is not None):
        raise UsageError("--role reference needs --tokenizer-from TARGET_DIR (and --tokenizer-from needs --role reference)")
    ks = None
    if exposures is not None:
        with about("--exposures"):
            try:
                ks = tuple(int(x) for x in exposures.split(",") if x.strip())
            except ValueError:
                raise UsageError(f"--exposures must be comma-separated integers, got {exposures!r}") from None
    if regime is not None and regime not in ("memorise", "exposure"):
        raise UsageError(f"unknown regime {regime!r}; valid: exposure, memorise")
    if tokenizer_from is not None and regime is not None:
        raise UsageError("a reference model takes its regime from the target's pretrain.json; use --role reference "
                         "without --regime")
    regime = regime or ("memorise" if tokenizer_from is not None else "exposure")
    if regime == "memorise" and (ks or per_exposure is not None or max_filler is not None):
        raise UsageError("--exposures, --per-exposure and --max-filler need --regime exposure")
    if regime == "exposure" and steps is not None:
        raise UsageError("--steps is for --regime memorise (the exposure regime makes one pass over its data)")
    target_settings = _target_settings(tokenizer_from) if tokenizer_from is not None else None
    if target_settings is not None and target_settings.get("regime") == "exposure":
        from dataclasses import replace

        from quantrisk.models.pretrain import PretrainSettings

        given = {"seed": seed if seed else None, "unit": unit if unit != "function" else None, "batch_size": batch_size,
                 "lr": lr, "seq_len": seq_len, "compile": compile}
        settings = replace(PretrainSettings(**{**target_settings, "train_split": "reference"}),
                           **{k: v for k, v in given.items() if v is not None})
        report = pretrain(arch, size, out, device=device, settings=settings, tokenizer_from=tokenizer_from,
                          progress=not quiet)
    else:
        report = pretrain(
            arch, size, out, device=device, seed=seed, unit=unit, steps=steps, batch_size=batch_size, lr=lr,
            per_split=per_split, vocab_size=vocab_size, seq_len=seq_len, corpus=corpus,
            train_split="member" if role == "target" else "reference", tokenizer_from=tokenizer_from,
            progress=not quiet, regime=regime, exposures=ks, per_exposure=per_exposure, max_filler=max_filler,
            compile=compile,
        )
    info = report.to_dict()
    if as_json:
        print_json(info)
        return
    keys = ["out_dir", "device", "seconds", "tokens_seen", "tokens_per_second", "n_params", "n_train_samples",
            "final_loss", "member_nll", "nonmember_nll", "nll_gap", "eval_samples", "auc_loss", "auc_zlib"]
    rows = [[k, info[k]] for k in keys]
    rows += [[f"auc_loss k={k} ({info['members_by_exposure'][k]} members)", v] for k, v in info["auc_by_exposure"].items()]
    rows += [[f"dropped: {k}", v] for k, v in info["dropped"].items()]
    print_table(f"pretrained {arch}-{size} ({role}, {info['settings']['regime']})", ["field", "value"], rows)


def register(app: typer.Typer) -> None:
    """Add this module's commands to `app`."""
    app.command("pretrain")(pretrain_cmd)


def _target_settings(target: Path) -> dict | None:
    """The settings in a target model's pretrain.json (None if it has none)."""
    import json

    meta = Path(target) / "pretrain.json"
    if not meta.is_file():
        return None
    try:
        return json.loads(meta.read_text(encoding="utf-8")).get("settings")
    except (OSError, ValueError):
        return None
