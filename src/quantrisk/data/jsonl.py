"""JSON Lines reading with exact line numbers and every failure on hostile input as a one-line `DataError` naming
file:line (and field): the shared reader of the corpus, split manifests, membership-inference data, calibration and
text-to-SQL rows."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

from quantrisk.errors import DataError

# Longest line a JSON Lines reader accepts: a code sample is at most tens of kB; a longer line is a broken file.
MAX_LINE_BYTES = 8 * 2**20


def check_regular(path: Path) -> None:
    """`DataError` unless `path` is a regular file (or a directory, which the caller refuses with its own words):
    a FIFO blocks the reader forever, a device never ends."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(
            mode) else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise DataError(f"{path}: is {kind}, not a regular file; pass a JSON Lines file")


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without its line ending) of every line of a UTF-8 text file, read in binary so
    that line numbers are exact. `DataError` naming the file (and line) for a missing file, a directory, an
    unreadable file, bytes that are not UTF-8, and a line longer than `MAX_LINE_BYTES` (a JSON Lines record is one
    line; a longer one is a JSON array or a file without newlines), and anything but a regular file (a FIFO or a
    device would block or never end). A UTF-8 byte-order mark on line 1 is dropped."""
    check_regular(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory; expected a JSON Lines file (one JSON object per line)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    with handle:
        lineno = 0
        while True:
            try:
                raw = handle.readline(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise DataError(f"{path}:{lineno + 1}: cannot read ({exc.strerror or exc})") from None
            if not raw:
                return
            lineno += 1
            if len(raw.rstrip(b"\r\n")) > MAX_LINE_BYTES:
                raise DataError(f"{path}:{lineno}: line longer than {MAX_LINE_BYTES // 2**20} MiB; JSON Lines needs one "
                                "record per line (is this a JSON array, or a file without newlines?)")
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not UTF-8 text (bad byte at column {exc.start + 1}); "
                                "re-encode the file as UTF-8") from None
            yield lineno, text.rstrip("\r\n")


MAX_JSON_DEPTH = 64  # nesting of one JSON Lines record (a sample is an object of strings and numbers)
# Longest string in a record: a code sample or question is at most tens of kB. Bounds what one row costs once
# tokenized (fast tokenizers hold ~300 bytes per character of input: a 8 MB text cost 2.3 GB of memory).
MAX_STRING_CHARS = 1_000_000


def parse_json_line(line: str, where: str) -> object:
    """`json.loads(line)`, with every way it can fail on hostile input as a `DataError` starting with `where`
    (file:line): malformed JSON, an integer of more digits than Python converts (4,300), nesting deeper than
    `MAX_JSON_DEPTH`, and a string holding a lone surrogate (`"\\ud800"`: not Unicode text, fails at every write)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested deeper than the bound of {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        why = str(exc).split(":")[0].split(";")[0]
        raise DataError(f"{where}: a number too long to read ({why}); give numbers of ordinary size") from None
    stack: list[tuple[object, int, str]] = [(obj, 0, "")]
    while stack:
        value, depth, field = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise DataError(f"{where}: JSON nested deeper than the bound of {MAX_JSON_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((k, depth + 1, field or str(k)) for k in value)
            stack.extend((v, depth + 1, field or str(k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, depth + 1, field) for v in value)
        elif isinstance(value, str):
            if len(value) > MAX_STRING_CHARS:
                name = f"field {field!r}" if field else "a string"
                raise DataError(f"{where}: {name} is {len(value):,} characters long, more than the bound of "
                                f"{MAX_STRING_CHARS:,}; split the sample or shorten it")
            bad = next((i for i, ch in enumerate(value) if 0xD800 <= ord(ch) <= 0xDFFF), None)
            if bad is not None:
                name = f"field {field!r}" if field else "a string"
                raise DataError(f"{where}: {name} holds a lone surrogate (\\u{ord(value[bad]):04x} at character "
                                f"{bad + 1}), which is not Unicode text; fix the escape")
    return obj


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; DataError naming file:line on bad JSON or non-objects
    (and, via `iter_lines`, on bytes that are not UTF-8 and on over-long lines)."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        obj = parse_json_line(line, f"{path}:{lineno}")
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj
