"""Code neighbours for the neighbourhood attack: semantics-preserving rewrites of a Python snippet.

Mattern et al. (2023, "Membership Inference Attacks against Language Models via Neighbourhood Comparison") compare a
sample's loss with the losses of close neighbours; for text they swap words with a masked LM. For code the natural
neighbours are rewrites the interpreter cannot tell apart:

- `rename`: one local identifier (a parameter, an assignment / loop / `with` / `except` target) renamed everywhere it
  occurs as a name token (`tokenize`, so strings and comments are untouched). Never renamed: builtins, keywords,
  `self` / `cls`, def / class names, names that also appear as an attribute, a keyword argument, a `global` /
  `nonlocal` or inside an f-string (renaming those could change behaviour).
- `respace`: the token stream re-emitted by `tokenize.untokenize` in its spacing mode (a space after most tokens),
  which changes the layout but not the AST.

`neighbours(text, n, seed)` returns up to `n` distinct rewrites (renames first, one respace), each different from the
text; a snippet that does not parse gets only the respace rewrite (or none if it does not tokenize).
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import random
import textwrap
import tokenize

RESERVED = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | {"self", "cls", "__class__"}
FRESH = ("value", "item", "tmp", "data", "result", "obj", "arg", "elem", "var", "entry", "node", "thing")


def _tokens(text: str) -> list[tokenize.TokenInfo] | None:
    try:
        return list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return None


def renamable(text: str) -> list[str]:
    """Local identifiers of `text` that can be renamed without changing what the code does (see the module doc), in
    order of first appearance; [] when the text does not parse."""
    try:
        tree = ast.parse(textwrap.dedent(text))
    except (SyntaxError, ValueError):
        return []
    bound: list[str] = []
    blocked: set[str] = set(RESERVED)
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            bound.append(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.append(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.append(node.name)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            blocked.add(node.name)
        elif isinstance(node, ast.Attribute):
            blocked.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            blocked.add(node.arg)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            blocked.update(node.names)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            blocked.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.JoinedStr):
            blocked.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
    return [n for n in dict.fromkeys(bound) if n not in blocked and not n.startswith("__")]


def rename(text: str, old: str, new: str) -> str:
    """`text` with every name token `old` replaced by `new` (strings, comments and attributes untouched)."""
    toks = _tokens(text)
    if toks is None:
        return text
    lines = text.splitlines(keepends=True)
    edits = [(t.start, t.end) for t in toks if t.type == tokenize.NAME and t.string == old]
    for (row, col), (_, end) in reversed(edits):  # right to left keeps the earlier columns valid
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[end:]
    return "".join(lines)


def respace(text: str) -> str | None:
    """The token stream re-emitted by `tokenize.untokenize` in spacing mode (same tokens, other layout), or None."""
    toks = _tokens(text)
    if toks is None:
        return None
    try:
        return tokenize.untokenize([(t.type, t.string) for t in toks])
    except (ValueError, TypeError):
        return None


def neighbours(text: str, n: int = 4, seed: int = 0) -> list[str]:
    """Up to `n` distinct semantics-preserving rewrites of `text` (n − 1 single-identifier renames, then a respace);
    deterministic in (`text`, `seed`)."""
    rng = random.Random(f"{seed}\x00{text}")
    names = renamable(text)
    taken = set(names) | {t.string for t in (_tokens(text) or []) if t.type == tokenize.NAME}
    out: list[str] = []
    for old in rng.sample(names, min(len(names), max(0, n - 1))):
        new = next((f for f in rng.sample(FRESH, len(FRESH)) if f not in taken), None) or f"{old}_"
        taken.add(new)
        out.append(rename(text, old, new))
    spaced = respace(text)
    if spaced is not None:
        out.append(spaced)
    return [x for x in dict.fromkeys(out) if x != text][:n]
