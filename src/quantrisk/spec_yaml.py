"""Read a spec's YAML safely: `load_spec_yaml(text, source) -> (data, line map)`.

`yaml.safe_load` alone is not enough for a file from someone else:
- an alias bomb (`b: [*a, *a, ...]`, nested) is a few lines that expand to billions of values; anything that walks
  the expansion (the line map, pydantic) hangs. Here the expansion is counted on the composed node graph (each
  node once, memoized) and refused beyond `MAX_VALUES`;
- a duplicate key silently keeps the last value; here it is refused naming both lines;
- `.inf` / `.nan` and absurd numbers pass pydantic's `ge=` checks and fail (or run forever) at run time; here a
  non-finite float, an integer literal longer than `MAX_INT_DIGITS` digits, a number past `MAX_NUMBER`, or a
  size field past its entry in `SIZE_BOUNDS` is refused naming the bound;
- a spec larger than `MAX_SPEC_BYTES` or nested deeper than `MAX_DEPTH` is refused.

Every problem is a `UsageError` of one line: `spec FILE:LINE: dotted.path: what is wrong (the bound)`.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from quantrisk.errors import UsageError

MAX_SPEC_BYTES = 1_000_000
MAX_VALUES = 100_000  # scalars + collections after alias expansion
MAX_DEPTH = 50
MAX_INT_DIGITS = 30
MAX_NUMBER = 2**53  # no count, seed or size in a spec needs more (exact in a float too)
# Upper bounds of size fields, by key name wherever it appears (beyond these a run would never finish / fit).
SIZE_BOUNDS: dict[str, float] = {
    "n": 1_000_000, "n_rows": 10_000_000, "n_test": 1_000_000, "completion_n": 1_000_000,
    "samples_per_cell": 1_000_000, "n_cells": 100_000, "steps": 10_000_000, "batch_size": 65_536,
    "max_new_tokens": 65_536, "batch_tokens": 2**24, "max_length": 2**20, "n_resamples": 1_000_000,
    "lora_r": 65_536, "lora_alpha": 65_536, "n_workers": 1_024, "work_seconds": 86_400.0,
}

Loc = tuple[str | int, ...]


def dotted(loc: Loc) -> str:
    """A value's path as written in messages: `studies.privacy.attacks[2]` (`(spec)` for the root)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(spec)"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses huge integer literals before `int()` sees them (Python refuses > 4,300 digits with
    a ValueError, and a 4,000-digit one is no spec value either)."""


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    digits = sum(ch.isdigit() for ch in str(node.value))
    if digits > MAX_INT_DIGITS:
        raise _Bound(node, f"an integer of {digits} digits; the bound is {MAX_INT_DIGITS} digits")
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


class _Bound(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node


def _yaml_error(exc: yaml.YAMLError | RecursionError, source: str) -> UsageError:
    """The one-line error for YAML that does not parse (FILE:LINE where the parser knows it) or nests too deep."""
    if isinstance(exc, RecursionError):
        return UsageError(f"spec {source}: nested deeper than the bound of {MAX_DEPTH} levels")
    mark = getattr(exc, "problem_mark", None)
    line = f":{mark.line + 1}" if mark is not None else ""
    return UsageError(f"spec {source}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})")


def _compose(text: str, source: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=_Loader)
    except (yaml.YAMLError, RecursionError) as exc:
        raise _yaml_error(exc, source) from None


def _sizes(root: yaml.Node, source: str) -> None:
    """Refuse an expansion past MAX_VALUES (naming the outermost key whose value is past it) or nesting past
    MAX_DEPTH. Each node is visited once: aliases share their node object, so sizes are memoized by id."""
    size: dict[int, int] = {}
    aliased = [False]  # an alias was met (a node reached twice): the message then says so

    def count(node: yaml.Node, depth: int, path: Loc) -> int:
        if depth > MAX_DEPTH:
            raise UsageError(f"spec {source}:{node.start_mark.line + 1}: {dotted(path)}: nested deeper than the "
                             f"bound of {MAX_DEPTH} levels")
        if id(node) in size:
            aliased[0] = True
            return size[id(node)]
        size[id(node)] = 1  # a recursive alias (`&a [*a]`) counts once instead of looping
        total = 1
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                total += 1 + count(v, depth + 1, (*path, str(k.value)))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                total += count(v, depth + 1, (*path, i))
        size[id(node)] = total
        if total > MAX_VALUES and not _big_child(node):
            where = f"spec {source}:{node.start_mark.line + 1}: {dotted(path)}"
            if aliased[0]:
                raise UsageError(f"{where}: expands (through YAML aliases) to {total:,} values, more than the bound "
                                 f"of {MAX_VALUES:,}; write the values out or use fewer aliases")
            raise UsageError(f"{where}: holds {total:,} values, more than the bound of {MAX_VALUES:,} for a spec (a "
                             "spec lists models, precisions, seeds and options; data belongs in a data file)")
        return total

    def _big_child(node: yaml.Node) -> bool:
        children = [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else (
            node.value if isinstance(node, yaml.SequenceNode) else [])
        return any(size.get(id(c), 0) > MAX_VALUES for c in children)

    count(root, 0, ())


def _duplicates(root: yaml.Node, source: str) -> None:
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[object, int] = {}
            for k, v in node.value:
                key = k.value if isinstance(k, yaml.ScalarNode) else id(k)
                line = k.start_mark.line + 1
                if key in first:
                    raise UsageError(f"spec {source}:{line}: {dotted((*path, str(key)))}: duplicate key (first at "
                                     f"line {first[key]}); YAML would silently keep the last, remove one")
                first[key] = line
                stack.append((v, (*path, str(k.value))))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in enumerate(node.value))


def _line_map(root: yaml.Node | None) -> dict[Loc, int]:
    """Dotted path (as a tuple) -> 1-based line of that key/item; each node walked once (an alias's target is
    located where it is defined; paths through a later alias fall back to their parent's line)."""
    out: dict[Loc, int] = {}
    if root is None:
        return out
    walked: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        out.setdefault(path, node.start_mark.line + 1)
        if id(node) in walked:
            continue
        walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*path, k.value)
                out[key] = k.start_mark.line + 1
                stack.append((v, key))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((v, (*path, i)) for i, v in enumerate(node.value))
    return out


def located(source: str, lines: dict[Loc, int], loc: Loc) -> str:
    """`FILE:LINE` of `loc`, or of its nearest ancestor in the line map; `FILE` when none is located."""
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return f"{source}:{lines[loc[:cut]]}"
    return source


def _numbers(data: Any, lines: dict[Loc, int], source: str) -> None:
    """Refuse non-finite floats, numbers past MAX_NUMBER, and size fields past SIZE_BOUNDS."""
    stack: list[tuple[Any, Loc]] = [(data, ())]
    while stack:
        value, loc = stack.pop()
        if isinstance(value, dict):
            stack.extend((v, (*loc, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*loc, i)) for i, v in enumerate(value))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                raise UsageError(f"spec {located(source, lines, loc)}: {dotted(loc)}: {value} is not a finite number (give a finite "
                                 "value)")
            key = loc[-1] if loc and isinstance(loc[-1], str) else None
            bound = SIZE_BOUNDS.get(key, MAX_NUMBER) if key is not None else MAX_NUMBER
            if abs(value) > bound:
                raise UsageError(f"spec {located(source, lines, loc)}: {dotted(loc)}: {value} is beyond the bound of {bound:,} "
                                 f"{'for ' + key if key in SIZE_BOUNDS else 'for a number in a spec'}")


def load_spec_yaml(text: str, source: str = "<spec>") -> tuple[Any, dict[Loc, int]]:
    """Parse a spec's YAML `text` within the bounds of the module doc; returns (data, line map). `UsageError`
    (one line naming `source`:line and the field) for anything past a bound or not valid YAML."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_SPEC_BYTES:
        raise UsageError(f"spec {source}: {size:,} bytes, more than the bound of {MAX_SPEC_BYTES:,} for a spec")
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise UsageError(f"spec {source}: holds a lone surrogate code point; not valid UTF-8 text")
    root = _compose(text, source)
    if root is None:
        return None, {}
    _sizes(root, source)
    _duplicates(root, source)
    lines = _line_map(root)
    loader = _Loader("")
    try:
        data = loader.construct_document(root)
    except _Bound as exc:
        path = next((p for p, line in lines.items() if line == exc.node.start_mark.line + 1), ())
        raise UsageError(f"spec {source}:{exc.node.start_mark.line + 1}: {dotted(path)}: {exc}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()
    _numbers(data, lines, source)
    return data, lines
