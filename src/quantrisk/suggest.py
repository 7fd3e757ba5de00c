"""`did_you_mean`: the closest valid names to a mistyped one (difflib), for one-line error messages."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_names(name: str, valid: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """Up to `n` names of `valid` closest to `name` (case-insensitive), best first."""
    choices = list(dict.fromkeys(valid))
    lower = {c.lower(): c for c in choices}
    return [lower[m] for m in difflib.get_close_matches(str(name).strip().lower(), list(lower), n=n, cutoff=cutoff)]


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """` (did you mean quanto-int4 or quanto-int8?)`, or "" when nothing is close."""
    near = close_names(name, valid)
    if not near:
        return ""
    return " (did you mean " + (near[0] if len(near) == 1 else ", ".join(near[:-1]) + " or " + near[-1]) + "?)"
