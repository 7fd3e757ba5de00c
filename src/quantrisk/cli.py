"""The `quantrisk` command line. Thin: each sub-command lives in `quantrisk.commands.<name>`,
parses its options and calls a library function. Heavy imports (torch, transformers) happen
inside the command bodies so that `quantrisk --help` is instant.

Errors: a `QuantriskError` prints one line and exits 2 (usage/data) or 1 (runtime); a bad option,
argument or command prints one line and exits 2; any other exception prints one line naming it and
exits 1; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings

import click
import typer

from quantrisk.errors import QuantriskError
from quantrisk.quiet import install_warning_dedup, repeat_summary

app = typer.Typer(
    name="quantrisk",
    help="Start with `quantrisk demo`: both studies on tiny CPU models, then a report.\n\n"
         "quantrisk measures what quantization does to a code LM: quality, membership-inference leakage, trojans.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

def version_text() -> str:
    """`quantrisk 0.1.0 (git 1efb7c45560b)`: the installed version and, from a git checkout, the commit."""
    from quantrisk.environment import code_version

    v = code_version()
    commit = f" (git {v['git_commit'][:12]}{', uncommitted changes' if v['git_dirty'] else ''})" if v["git_commit"] else ""
    return f"quantrisk {v['quantrisk'] or 'unknown version'}{commit}"


def _version(value: bool) -> None:
    if value:
        click.echo(version_text())
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version (and git commit) and exit.")) -> None:
    """quantrisk measures what quantization does to a code LM: quality, membership-inference leakage, trojans."""


# One module per command group; each defines `register(app)`. Add a line to add a command.
COMMAND_MODULES: tuple[str, ...] = (
    "quantrisk.commands.precisions",
    "quantrisk.commands.probe",
    "quantrisk.commands.pretrain",
    "quantrisk.commands.privacy",
    "quantrisk.commands.trojan",
    "quantrisk.commands.qattack",
    "quantrisk.commands.scan",
    "quantrisk.commands.experiments",
    "quantrisk.commands.compare",
)

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:  # a command group not built yet in this checkout
        if _exc.name != _name:
            raise
        continue
    _module.register(app)


def _reflow(doc: str) -> str:
    """A docstring with each paragraph on one line, so the help never breaks a sentence where the source did."""
    import inspect

    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n") if p.strip())


for _info in app.registered_commands:
    _doc = _info.help or (_info.callback.__doc__ if _info.callback else None)
    if _doc:
        _info.help = _reflow(_doc)


def _error(message: str) -> None:
    """Print `error: MESSAGE` on stderr: one line (a spec with several problems lists them indented below)."""
    from quantrisk.sanitize import terminal_message

    click.echo(f"error: {terminal_message(message)}", err=True)


# Recent typer vendors click: its usage errors are `typer._click` exceptions (typer.TyperException), not `click` ones.
_USAGE_ERRORS: tuple[type[Exception], ...] = (click.exceptions.ClickException,
                                              getattr(typer, "TyperException", click.exceptions.ClickException))
_ABORTS: tuple[type[BaseException], ...] = (click.exceptions.Abort, getattr(typer, "Abort", click.exceptions.Abort))


def _usage_message(exc: Exception) -> str:
    """One line for a bad option/argument/command: what is wrong, and where to read the usage."""
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None) or "quantrisk"
    text = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    return f"{path}: {text.rstrip('.')} (see `{path} --help`)"


PATH_OPTIONS: tuple[str, ...] = ("--out", "--data", "--model", "--nonmembers", "--reference")


def _empty_path_option(args: list[str]) -> str | None:
    """The first path option given an empty (or blank) value, e.g. `--out ""` or `--out=`."""
    for i, a in enumerate(args):
        name, eq, value = a.partition("=")
        if name in PATH_OPTIONS and (value.strip() == "" if eq else i + 1 < len(args) and args[i + 1].strip() == ""):
            return name
    return None


def _library_bars_off() -> None:
    """Turn off the bars of transformers / huggingface_hub when they were imported before `main` (a caller in the
    same process): both read HF_HUB_DISABLE_PROGRESS_BARS once, at import."""
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # transformers' / huggingface_hub's own bars ("Loading weights", "Writing model shards") would interleave
    # with ours on every load and save; the user can turn them back on with HF_HUB_DISABLE_PROGRESS_BARS=0
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1":
        _library_bars_off()
    # peft asks transformers 5 a deprecated question on every adapter load; nothing for the user to do
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    install_warning_dedup()  # a library warning repeated in a long run is shown once, then counted
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    empty = _empty_path_option(args)
    if empty:  # Path("") is ".": an empty --out would silently write into the working directory
        _error(f"{empty} is empty; pass a directory or file path (see `quantrisk --help`)")
        return 2
    try:
        if "torch" not in sys.modules:  # thread defaults for shared machines (quantrisk.threads); torch reads them once
            from quantrisk.threads import configure_threads

            configure_threads()
        from quantrisk.allocator import configure_allocator

        configure_allocator()  # large torch temporaries stay in the heap (quantrisk.allocator)
        result = app(args=args, prog_name="quantrisk", standalone_mode=False)
        for line in repeat_summary():
            click.echo(line, err=True)
        return int(result) if isinstance(result, int) else 0
    except _USAGE_ERRORS as exc:  # bad option, argument or command: one line, exit 2
        if debug:
            raise
        _error(_usage_message(exc))
        return int(getattr(exc, "exit_code", 2) or 2)
    except _ABORTS:
        _error("aborted")
        return 130
    except QuantriskError as exc:
        if debug:
            raise
        _error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, no traceback
        if debug:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        _error(f"{type(exc).__name__}: {first} (run again with --debug for the traceback)")
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
