"""Code units: the `CodeSample` value and how a tree of `.py` files is cut into samples (functions or files),
plus the names of the built-in corpus sources. The pieces `corpus.py` and `site_packages.py` share; a leaf of
`data/` (imports `errors` only).
"""

from __future__ import annotations

import ast
import hashlib
import io
import re
import sysconfig
import textwrap
import tokenize
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from quantrisk.errors import UsageError

# Sane sample lengths (characters) per unit: long enough to say something, short enough to fit the context.
UNIT_LIMITS: dict[str, tuple[int, int]] = {"function": (150, 1200), "file": (200, 20000)}
EXCLUDED_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "lib2to3",
                 "ensurepip", "turtledemo", "venv", "idlelib", "tkinter", "pydoc_data"}


@dataclass(frozen=True)
class CodeSample:
    """One code sample. `id` is unique within a corpus; `sha256` is of `text` (UTF-8). In the exposure regime
    `exposures` is how many times the sample was trained on (0: never) and `steps` the optimizer steps
    (0-based) at which it was."""

    id: str
    path: str
    text: str
    sha256: str
    split: str = ""
    exposures: int = 0
    steps: tuple[int, ...] = ()

    def with_split(self, split: str) -> CodeSample:
        return replace(self, split=split)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def stdlib_root() -> Path:
    """The running interpreter's standard library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


def _python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(part in EXCLUDED_DIRS for part in rel[:-1]) or rel[-1].startswith("test_") or rel[-1] == "__main__.py":
            continue
        yield path


def _functions(source: str) -> Iterator[tuple[str, str]]:
    """(qualname, dedented source) of top-level functions and methods of top-level classes."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    lines = source.splitlines(keepends=True)

    def segment(node: ast.AST) -> str:
        start = node.lineno - 1  # type: ignore[attr-defined]
        end = node.end_lineno or node.lineno  # type: ignore[attr-defined]
        return textwrap.dedent("".join(lines[start:end]))

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, segment(node)
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{node.name}.{sub.name}", segment(sub)


def parse_sources(corpus: str | Path | None) -> list[tuple[str, tuple[str, ...]]] | None:
    """The built-in sources a corpus string names, or None for a path: "stdlib", "site-packages" (every
    permissive distribution) or "site-packages:a,b" (those distributions; later comma items that are not a
    source name are more distributions). E.g. "stdlib,site-packages:numpy,requests"."""
    if corpus is None:
        return [("stdlib", ())]
    items = [x.strip() for x in str(corpus).split(",") if x.strip()]
    if not items or not (items[0] == "stdlib" or items[0].startswith("site-packages")):
        return None
    out: list[tuple[str, tuple[str, ...]]] = []
    for item in items:
        if item == "stdlib":
            out.append(("stdlib", ()))
        elif item == "site-packages" or item.startswith("site-packages:"):
            first = item.partition(":")[2].strip()
            out.append(("site-packages", (first,) if first else ()))
        elif out and out[-1][0] == "site-packages" and out[-1][1]:
            out[-1] = ("site-packages", (*out[-1][1], item))
        else:
            raise UsageError(f"corpus {corpus!r}: {item!r} is not a source (stdlib, site-packages[:dist,...])")
    return out


def canonical_corpus(corpus: str) -> str:
    """The corpus string as it enters a cache key: built-in sources in a canonical spelling (distribution names
    sorted, lower case), a path made absolute."""
    sources = parse_sources(corpus)
    if sources is None:
        return str(Path(corpus).expanduser().resolve())
    parts = []
    for name, dists in sorted(set(sources)):
        parts.append(name if not dists else f"{name}:" + ",".join(sorted({_norm_dist(d) for d in dists})))
    return ",".join(parts)


def _norm_dist(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


_SKIP_TOKENS = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                tokenize.ENDMARKER, tokenize.ENCODING}


@lru_cache(maxsize=16384)  # the split normalises the same corpus texts several times
def normalise_code(text: str) -> str:
    """Python source with comments and all whitespace stripped (the `tokenize` tokens joined by one space);
    docstrings stay (they are string tokens). Text that does not tokenize falls back to its whitespace-split
    words. Two samples with the same normal form differ only in comments and layout."""
    try:
        toks = [t.string for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type not in _SKIP_TOKENS]
    except (tokenize.TokenError, IndentationError, SyntaxError, ValueError):
        toks = text.split()
    return " ".join(toks)
