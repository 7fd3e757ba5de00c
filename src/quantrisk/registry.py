"""The one rule every name registry follows (attacks, attack inputs, trojan metrics, cell kinds, ...).

A registry is a module-level `dict[str, ...]` filled by a decorator at import time. Registering a name that is
already taken by a *different* function is a programming error and raises `ValueError` at import time, instead of
silently replacing the first entry. Registering the very same function again (same module and qualified name,
e.g. after `importlib.reload`) is allowed.
"""

from __future__ import annotations

from typing import Any


def refuse_duplicate(kind: str, name: str, existing: Any, new: Any) -> None:
    """Raise `ValueError` if `existing` (the entry registered under `name`, or None) is another function than `new`."""
    if existing is None:
        return
    same = (getattr(existing, "__module__", None), getattr(existing, "__qualname__", None)) == \
        (getattr(new, "__module__", None), getattr(new, "__qualname__", None))
    if not same:
        where = f"{getattr(existing, '__module__', '?')}.{getattr(existing, '__qualname__', '?')}"
        raise ValueError(f"{kind} {name!r} is already registered (by {where}); pick another name")
