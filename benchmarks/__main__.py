"""`python -m benchmarks <name> [--device D] [--repeats N] [--no-write]`: run a benchmark, append rows to BENCHMARKS.md.

Benchmarks: loading (load seconds and weight bytes per precision); scoring (MI scoring engine vs a
per-sample loop; the share of the measured matmul peak); generation (batched greedy vs one prompt
at a time); scaling (scoring seconds vs samples and model size); pretraining (tokens/s and MFU of the
packed pretraining loop per zoo size); verdicts (operating characteristics of the Findings' decision rules on
simulated rows, no model).
Others register themselves in BENCHMARKS below as they are written.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from benchmarks.harness import append_rows, print_rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__, allow_abbrev=False)
    parser.add_argument("name", choices=sorted(BENCHMARKS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default=None, help="model directory (default: a pretrained tiny zoo model)")
    parser.add_argument("--precisions", default=None, help="comma-separated precisions (default: all available)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-write", action="store_true", help="print only; do not append to BENCHMARKS.md")
    args, extra = parser.parse_known_args(argv)
    command = "python -m benchmarks " + " ".join(shlex.quote(a) for a in argv)
    rows = BENCHMARKS[args.name](args, extra, command)
    print_rows(rows)
    if not args.no_write:
        append_rows(rows)
    return 0


def _default_model(args: argparse.Namespace, arch: str = "pythia", size: str = "tiny") -> str:
    if args.model:
        return args.model
    from quantrisk.models.pretrain import ensure_pretrained

    return str(ensure_pretrained(arch, size, device=args.device, regime="memorise"))  # the recorded rows' model


def _loading(args: argparse.Namespace, extra: list[str], command: str) -> list[dict]:
    from benchmarks import loading

    precisions = args.precisions.split(",") if args.precisions else None
    return loading.run(_default_model(args), args.device, precisions, args.repeats, command)


def _scoring(args: argparse.Namespace, extra: list[str], command: str) -> list[dict]:
    from benchmarks import scoring

    p = argparse.ArgumentParser(prog="python -m benchmarks scoring", allow_abbrev=False)
    p.add_argument("--shape", default="pythia-20m", choices=sorted(scoring.SHAPES))
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--batch-tokens", type=int, default=None,
                   help="padded tokens per batch (default: 32768 on CUDA; on CPU the privacy study's 8192, "
                        "which scored the tiny model 1.7x faster than 32768 there)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--baseline-n", type=int, default=16)
    p.add_argument("--loop-forwards", type=int, default=len(scoring.DEFAULT_ATTACKS),
                   help="forwards per sample in the per-attack loop (default: the privacy study's 7 default attacks)")
    p.add_argument("--precision", default=None, help="load through a back-end instead of --dtype (bnb-int8, bnb-nf4, ...)")
    p.add_argument("--chunk", type=int, default=None, help="positions per output-head block (default: 4096 GPU, 256 CPU)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="cpu: time in process CPU seconds (for a shared CPU machine; the case says CPU-time)")
    o = p.parse_args(extra)
    if o.batch_tokens is None:
        o.batch_tokens = 32768 if args.device.startswith("cuda") else 8192
    return scoring.run(o.shape, args.device, o.dtype, o.n, o.length, args.repeats, command, o.batch_size,
                       o.batch_tokens, o.compile, o.baseline_n, o.loop_forwards, o.precision, o.chunk, o.clock)


def _generation(args: argparse.Namespace, extra: list[str], command: str) -> list[dict]:
    from benchmarks import generation

    p = argparse.ArgumentParser(prog="python -m benchmarks generation", allow_abbrev=False)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--n", type=int, default=64, help="prompts for the batched run")
    p.add_argument("--baseline-n", type=int, default=16, help="prompts for the one-at-a-time run (a prefix of the same)")
    p.add_argument("--gen-batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=48)
    o = p.parse_args(extra)
    return generation.run(args.model or "zoo:llama-tiny", args.device, o.precision, o.n, o.baseline_n,
                          o.gen_batch_size, o.max_new_tokens, args.repeats, command)


def _scaling(args: argparse.Namespace, extra: list[str], command: str) -> list[dict]:
    from benchmarks import scaling

    p = argparse.ArgumentParser(prog="python -m benchmarks scaling", allow_abbrev=False)
    p.add_argument("--shapes", default="tiny,small")
    p.add_argument("--ns", default="1000,2000,4000")
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    o = p.parse_args(extra)
    return scaling.run(o.shapes.split(","), [int(x) for x in o.ns.split(",")], o.length, args.device, o.dtype,
                       args.repeats, command)


def _pretraining(args: argparse.Namespace, extra: list[str], command: str) -> list[dict]:
    from benchmarks import pretraining

    p = argparse.ArgumentParser(prog="python -m benchmarks pretraining", allow_abbrev=False)
    p.add_argument("--sizes", default=None, help="zoo sizes (default: small,base on CUDA, tiny on CPU)")
    p.add_argument("--steps", type=int, default=None, help="steps per size (default 30 on CUDA, 8 on CPU)")
    p.add_argument("--warm-steps", type=int, default=None, help="untimed first steps (default 8 on CUDA, 2 on CPU)")
    p.add_argument("--batch-size", type=int, default=None, help="rows per step (default: the size's exposure regime)")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per row (default: the size's exposure regime)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="default: on CUDA only")
    p.add_argument("--compile-mode", default=None,
                   help="torch.compile mode (default: torch's default), or coordinate-descent (inductor kernel tuning)")
    p.add_argument("--attention", choices=["model", "packed-causal", "packed-causal-token-major"], default=None,
                   help="attention path (default: packed-causal-token-major when compiling, else the model's own)")
    p.add_argument("--loss", choices=["cross-entropy", "liger-fused"], default=None,
                   help="default: liger-fused on CUDA when liger-kernel is installed, else cross-entropy")
    p.add_argument("--arch", default="pythia")
    p.add_argument("--sdpa-backend", choices=["cudnn", "flash", "efficient"], default=None,
                   help="SDPA kernel tried first (default: PyTorch's order)")
    p.add_argument("--profile", default=None, help="write the top CUDA kernels of the last 3 steps to PATH-SIZE.txt")
    o = p.parse_args(extra)
    cuda = args.device.startswith("cuda")
    sizes = (o.sizes or ("small,base" if cuda else "tiny")).split(",")
    return pretraining.run(sizes, args.device, o.steps or (30 if cuda else 8), o.warm_steps or (8 if cuda else 2),
                           o.batch_size, o.seq_len, o.compile, command, arch=o.arch, attention=o.attention,
                           loss=o.loss, compile_mode=o.compile_mode, sdpa_backend=o.sdpa_backend, profile=o.profile)


def _verdicts(args: argparse.Namespace, extra: list[str], command: str) -> list[dict]:
    from benchmarks import verdicts
    from benchmarks.harness import machine, versions

    return verdicts.run(extra, command, machine("cpu"), versions())


def _gguf(args: argparse.Namespace, extra: list[str], command: str) -> list[dict]:
    from benchmarks import gguf

    return gguf.run(args, extra, command)


def _scale(args: argparse.Namespace, extra: list[str], command: str) -> list[dict]:
    from pathlib import Path

    from benchmarks import scale

    p = argparse.ArgumentParser(prog="python -m benchmarks scale", allow_abbrev=False)
    p.add_argument("--shape", default="llama-2-7b", choices=sorted(scale.SHAPES))
    p.add_argument("--work", default="/tmp/quantrisk-scale", help="where the random-weight checkpoint is built")
    p.add_argument("--score-n", type=int, default=64)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--batch-tokens", type=int, default=32768)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--gen-n", type=int, default=64, help="prompts per generation run")
    p.add_argument("--gen-batches", default="16,64", help="batch sizes of the grid (the trojan study's default is 16)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--single-n", type=int, default=4, help="prompts of the one-at-a-time HF anchor")
    p.add_argument("--qlora", default="bnb-nf4", help="precisions that also get the DAP1 LoRA step ('' for none)")
    p.add_argument("--qlora-steps", type=int, default=8)
    p.add_argument("--qlora-warm", type=int, default=2)
    p.add_argument("--qlora-batch", type=int, default=8)
    p.add_argument("--qlora-len", type=int, default=512)
    p.add_argument("--data", default=None, help="sqlqa JSONL (default: tests/data/sqlqa/sqlqa.jsonl)")
    p.add_argument("--json", default=None, help="also write every measured value to this JSON file")
    p.add_argument("--budget-s", type=float, default=None, help="start no further precision after this many seconds")
    o = p.parse_args(extra)
    precisions = (args.precisions or scale.DEFAULT_PRECISIONS).split(",")
    return scale.run(o.shape, args.device, precisions, Path(o.work), args.repeats, command, score_n=o.score_n,
                     length=o.length, batch_tokens=o.batch_tokens, compile=o.compile, gen_n=o.gen_n,
                     gen_batches=tuple(int(x) for x in o.gen_batches.split(",")), max_new=o.max_new_tokens,
                     single_n=o.single_n, qlora=tuple(x for x in o.qlora.split(",") if x),
                     qlora_steps=o.qlora_steps, qlora_warm=o.qlora_warm, qlora_batch=o.qlora_batch,
                     qlora_len=o.qlora_len, data=o.data, json_out=Path(o.json) if o.json else None,
                     budget_s=o.budget_s)


BENCHMARKS = {"gguf": _gguf, "loading": _loading, "scoring": _scoring, "generation": _generation,
              "scaling": _scaling, "pretraining": _pretraining, "verdicts": _verdicts, "scale": _scale}

if __name__ == "__main__":
    sys.exit(main())
