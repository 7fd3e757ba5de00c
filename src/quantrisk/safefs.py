"""File-safety primitives: quantrisk never deletes, truncates, replaces or writes through a link to anything it did
not create (SECURITY.md, "Files quantrisk writes").

- `check_out`: before any work, an output directory must be new, empty, or quantrisk's own output of that kind
  (it holds one of the kind's marker files); anything else, a file, a link or an unwritable place is refused.
- `refuse_link`: a planted symlink (run lock, store, report/export target) is refused, never followed.
- `write_atomic`: a file is written to a fresh temporary file in its own directory (`O_EXCL`) and renamed onto
  its name; the target, if it exists, must be a regular file (a rename replaces a link, never writes through it).
- `open_private`: `os.open` with `O_NOFOLLOW` and a check that what was opened is a regular file.
- `install_dir`: a finished temporary directory takes the place of `out` by rename; `out` may only be absent,
  empty, or a directory holding nothing but files of `own` names (quantrisk's earlier output), which are unlinked
  one by one (never `rmtree`).
- `remove_created`: removes a directory tree this process created (a failed command's partial output), without
  following links.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

from quantrisk.errors import UsageError

NAME_MAX = 255  # bytes in one path component (Linux, macOS)
PATH_MAX = 4096

# marker files by output kind: a non-empty directory holding one of them is quantrisk's own output of that kind
RUN_MARKERS = ("results.sqlite", "run.lock")
REPORT_MARKERS = ("report.md", "report.html", "findings.json")
EXPORT_MARKERS = ("cells.csv", "metrics.csv", "samples.csv", "cells.parquet", "metrics.parquet", "samples.parquet")
QATTACK_MARKERS = ("qattack.json", "intervals.json")
# every name `pretrain` / `finetune` / `qattack` write into a model or adapter directory (save_pretrained + quantrisk's
# files)
MODEL_FILES = ("config.json", "generation_config.json", "model.safetensors", "model-*-of-*.safetensors",
               "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
               "vocab.json", "merges.txt", "chat_template.jinja", "added_tokens.json", "split.jsonl",
               "train_log.jsonl", "pretrain.json", "corpus_manifest.jsonl", "adapter_config.json",
               "adapter_model.safetensors", "finetune.json", "README.md", "poison_manifest.jsonl")
MODEL_MARKERS = ("pretrain.json", "finetune.json")


def check_name(path: Path, option: str = "--out") -> None:
    """`UsageError` when a component of `path` is longer than the file system allows (NAME_MAX bytes)."""
    if len(os.fsencode(str(path))) > PATH_MAX:
        raise UsageError(f"{option}: the path is {len(os.fsencode(str(path)))} bytes long, more than the bound of "
                         f"{PATH_MAX}; pass a shorter {option}")
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise UsageError(f"{option}: the name {part[:40]!r}... is {len(os.fsencode(part))} bytes long, more than "
                             f"the file system's bound of {NAME_MAX}; pass a shorter {option}")


def refuse_link(path: Path, what: str) -> None:
    """`UsageError` when `path` is a symbolic link (quantrisk never writes or locks through one)."""
    if os.path.islink(path):
        raise UsageError(f"{what} {path} is a symbolic link; refused (quantrisk never writes through a link). Remove "
                         "the link or pass another --out")


def _is_owned(path: Path, markers: Iterable[str]) -> bool:
    return any(os.path.lexists(path / m) and not os.path.islink(path / m) for m in markers)


def check_out(out: Path, option: str = "--out", *, markers: Iterable[str] = (), kind: str = "output") -> None:
    """`UsageError` before any work unless `out` can become quantrisk's output directory: absent (and creatable),
    an empty directory, or a directory that holds `kind` output quantrisk wrote (one of `markers`). Refused: a file,
    a symbolic link, a non-empty directory quantrisk did not write, a place that is not writable. Creates nothing."""
    if str(out) == "":
        raise UsageError(f"{option} is empty; pass a directory or file path (see `quantrisk --help`)")
    path = Path(out).expanduser()
    check_name(path, option)
    refuse_link(path, option)
    probe = path
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "is a file" if probe == path else f"cannot be created: {probe} is a file"
        raise UsageError(f"{option} {out} {where}, not a directory; pass another {option}")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "is not writable" if probe == path else f"cannot be created: {probe} is not writable"
        raise UsageError(f"{option} {out} {where}; pass another {option} (or fix the permissions)")
    if probe == path:
        try:
            entries = sorted(os.listdir(path))
        except OSError as exc:
            raise UsageError(f"{option} {out} cannot be read ({exc.strerror or exc}); pass another {option}") from None
        markers = tuple(markers)
        if entries and not _is_owned(path, markers):
            shown = ", ".join(repr(e) for e in entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3
                                                                else "")
            raise UsageError(f"{option} {out} already holds files quantrisk did not write ({shown}); quantrisk writes "
                             f"its {kind} only into a new or empty directory (or one holding its earlier {kind}) and "
                             f"never replaces anything else; pass another {option}")


def check_model_out(out: Path, option: str = "--out") -> None:
    """`check_out` for a model directory: besides new or empty, only an earlier quantrisk model whose every entry is
    a file quantrisk writes there (it is replaced, file by file, when the new one is complete)."""
    check_out(out, option, markers=MODEL_MARKERS, kind="model")
    path = Path(out).expanduser()
    if path.is_dir():
        foreign = _foreign_entries(path, MODEL_FILES)
        if foreign:
            raise UsageError(f"{option} {out} holds a model but also {', '.join(repr(f) for f in foreign[:3])}, which "
                             f"quantrisk did not write; refused (it would be lost). Pass another {option}")


def _foreign_entries(path: Path, own: Iterable[str]) -> list[str]:
    own = tuple(own)
    return [e.name for e in sorted(path.iterdir()) if e.is_symlink() or not e.is_file()
            or not any(fnmatch.fnmatchcase(e.name, p) for p in own)]


def install_dir(tmp: Path, out: Path, own: Iterable[str] = MODEL_FILES) -> None:
    """Put the finished directory `tmp` (a sibling of `out`) in the place of `out`: `out` absent or an empty
    directory (renamed onto), or quantrisk's earlier output holding only files named in `own` (moved aside, then
    unlinked file by file). Anything else: `UsageError`, `tmp` left for the caller to remove."""
    own = tuple(own)
    out = Path(out)
    if os.path.islink(out):
        refuse_link(out, "output directory")
    if out.is_dir() and any(out.iterdir()):
        foreign = _foreign_entries(out, own)
        if foreign:
            raise UsageError(f"{out} holds {', '.join(repr(f) for f in foreign[:3])}, which quantrisk did not write; "
                             "refused (it would be lost); pass another --out")
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.rename(out, old)  # onto the empty directory just made: atomic
        os.rename(tmp, out)
        for e in old.iterdir():
            if not e.is_symlink() and e.is_file() and any(fnmatch.fnmatchcase(e.name, p) for p in own):
                e.unlink()
        try:
            old.rmdir()
        except OSError:  # something appeared in the meantime: keep it
            pass
        return
    os.rename(tmp, out)  # onto nothing, or onto an empty directory


def open_private(path: Path, flags: int, mode: int = 0o644) -> int:
    """`os.open(path, flags | O_NOFOLLOW)`; `UsageError` if `path` is a link or not a regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if os.path.islink(path):
            refuse_link(path, "file")
        raise UsageError(f"cannot open {path}: {exc.strerror or exc}; pass another --out") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{path} is not a regular file; refused (move it away or pass another --out)")
    return fd


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` through a fresh temporary file in the same directory (`O_EXCL`, fsynced) and a
    rename: a crash never leaves half a file, and an existing link or non-regular file at `path` is refused, not
    written through."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.path.islink(path):
        refuse_link(path, "output file")
    if os.path.lexists(path) and not path.is_file():
        raise UsageError(f"output file {path} exists and is not a regular file; refused (move it away)")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def safe_child(root: Path, *parts: str) -> Path:
    """`root/parts...`, `UsageError` if any component below `root` is a symbolic link (a planted link would make
    a removal or a write reach outside `root`)."""
    path = Path(root)
    for p in parts:
        path = path / p
        if os.path.islink(path):
            refuse_link(path, "path")
    return path


def remove_created(path: Path) -> None:
    """Remove the directory tree `path` that this process created (a failed command's partial output), never
    following a link (a link inside is removed, not its target); a link at `path` itself is left alone."""
    if os.path.islink(path) or not os.path.isdir(path):
        return
    shutil.rmtree(path, ignore_errors=True)  # fd-based on Linux: does not follow links inside the tree
