"""`quantrisk pretrain`: train an embedded zoo model from scratch on code (the standard library by default)."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command("pretrain")
    def pretrain_cmd(
        arch: str = typer.Option(..., help="Architecture: pythia, codegen, gptneo, llama."),
        out: Path = typer.Option(..., help="Output model directory."),
        size: str = typer.Option("tiny", help="tiny (CPU), small (Pythia-70m shape), base (Pythia-160m shape)."),
        device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
        seed: int = typer.Option(0, help="Seed of the split, the initialisation and the batches."),
        unit: str = typer.Option("function", help="Sample unit: function or file."),
        steps: int = typer.Option(None, help="Optimizer steps (default: the size's)."),
        batch_size: int = typer.Option(None, help="Sequences per step (default: the size's)."),
        lr: float = typer.Option(None, help="Peak learning rate (default: the size's)."),
        per_split: int = typer.Option(None, help="Samples kept per split (default: the size's)."),
        vocab_size: int = typer.Option(None, help="BPE vocabulary size (default: the size's)."),
        seq_len: int = typer.Option(None, help="Longest training sequence in tokens, <= the model's context (default: the size's)."),
        corpus: str = typer.Option("stdlib", help="'stdlib', a folder of .py files, or a JSONL with a text field."),
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

        with about("--arch"):
            check_arch(arch)
        with about("--size"):
            check_size(size)
        if role not in ("target", "reference"):
            raise UsageError(f"unknown role {role!r}; valid: target, reference")
        if (role == "reference") != (tokenizer_from is not None):
            raise UsageError("--role reference needs --tokenizer-from TARGET_DIR (and --tokenizer-from needs --role reference)")
        report = pretrain(
            arch, size, out, device=device, seed=seed, unit=unit, steps=steps, batch_size=batch_size, lr=lr,
            per_split=per_split, vocab_size=vocab_size, seq_len=seq_len, corpus=corpus, train_split="member" if role == "target" else "reference",
            tokenizer_from=tokenizer_from, progress=not quiet,
        )
        info = report.to_dict()
        if as_json:
            print_json(info)
            return
        keys = ["out_dir", "device", "seconds", "tokens_seen", "tokens_per_second", "n_params", "n_train_samples",
                "final_loss", "member_nll", "nonmember_nll", "nll_gap", "eval_samples", "auc_loss", "auc_zlib"]
        print_table(f"pretrained {arch}-{size} ({role})", ["field", "value"], [[k, info[k]] for k in keys])
