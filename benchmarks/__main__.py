"""`python -m benchmarks <name> [--device D] [--repeats N] [--no-write]`: run a benchmark, append rows to BENCHMARKS.md.

Benchmarks: loading (load seconds and weight bytes per precision).
Others register themselves in BENCHMARKS below as they are written.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from benchmarks.harness import append_rows, print_rows


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
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

    return str(ensure_pretrained(arch, size, device=args.device))


def _loading(args: argparse.Namespace, extra: list[str], command: str) -> list[dict]:
    from benchmarks import loading

    precisions = args.precisions.split(",") if args.precisions else None
    return loading.run(_default_model(args), args.device, precisions, args.repeats, command)


BENCHMARKS = {"loading": _loading}

if __name__ == "__main__":
    sys.exit(main())
