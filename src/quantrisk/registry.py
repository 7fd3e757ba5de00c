"""The one registry every plug-in point uses (attacks, attack inputs, trojan metrics, cell kinds, back-ends, ...).

A registry is a module-level `Registry` (a `dict[str, entry]`) filled at import time, by a decorator or a list.
- `add(name, entry)` refuses a name already taken by a *different* entry (`ValueError` at import time), instead of
  silently replacing the first; registering the very same function or class again (same module and qualified
  name, e.g. after `importlib.reload`), or an equal value (a glossary text), is allowed.
- `registry[name]` of an unknown name raises `UnknownName` (a `KeyError`) whose message names the registry, the
  known names and the closest ones: ``unknown attack 'los'; known: loss, zlib (did you mean loss?)``.
- `freeze()` closes it: any later `add`, assignment or deletion raises `RuntimeError`.
Plain assignment (`registry[name] = entry`, e.g. `monkeypatch.setitem`) replaces without the duplicate check.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any, TypeVar

V = TypeVar("V")


def _identity(entry: Any) -> tuple[Any, ...]:
    """A function or class: its module and qualified name (so a reloaded module registers again); any other value
    (a string, a number): the value itself."""
    qualname = getattr(entry, "__qualname__", None)
    return (getattr(entry, "__module__", None), qualname) if qualname is not None else ("value", entry)


def refuse_duplicate(kind: str, name: str, existing: Any, new: Any) -> None:
    """Raise `ValueError` if `existing` (the entry registered under `name`, or None) is another entry than `new`."""
    if existing is None:
        return
    if _identity(existing) != _identity(new):
        qualname = getattr(existing, "__qualname__", None)
        where = f"by {getattr(existing, '__module__', '?')}.{qualname}" if qualname else f"as {str(existing)[:60]!r}"
        raise ValueError(f"{kind} {name!r} is already registered ({where}); pick another name")


class UnknownName(KeyError):
    """Lookup of a name no entry is registered under; `str()` is the whole message."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(dict[str, V]):
    """A named `dict` of entries with the duplicate rule, a helpful unknown-name error and `freeze()`.

    `kind` names an entry in messages ("attack", "cell kind"); `key(entry)` is what two registrations are compared
    by (default: the entry itself; e.g. `lambda a: a.fn` where entries wrap a function)."""

    def __init__(self, kind: str, key: Callable[[V], Any] | None = None) -> None:
        super().__init__()
        self.kind = kind
        self._key = key or (lambda entry: entry)
        self._frozen = False

    @property
    def frozen(self) -> bool:
        return self._frozen

    def freeze(self) -> Registry[V]:
        """Refuse every later change; returns the registry."""
        self._frozen = True
        return self

    def _open(self) -> None:
        if self._frozen:
            raise RuntimeError(f"the {self.kind} registry is frozen; register at import time")

    def add(self, name: str, entry: V) -> V:
        """Register `entry` under `name`; `ValueError` if the name is taken by another entry. Returns `entry`."""
        self._open()
        existing = dict.get(self, name)
        if existing is not None:
            refuse_duplicate(self.kind, name, self._key(existing), self._key(entry))
        dict.__setitem__(self, name, entry)
        return entry

    def unknown_message(self, name: object) -> str:
        """`unknown KIND 'name'; known: a, b (did you mean a?)`."""
        known = ", ".join(self) or "none"
        close = difflib.get_close_matches(str(name), list(self), n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
        return f"unknown {self.kind} {name!r}; known: {known}{hint}"

    def __getitem__(self, name: str) -> V:
        try:
            return dict.__getitem__(self, name)
        except KeyError:
            raise UnknownName(self.unknown_message(name)) from None

    def __setitem__(self, name: str, entry: V) -> None:
        self._open()
        dict.__setitem__(self, name, entry)

    def __delitem__(self, name: str) -> None:
        self._open()
        dict.__delitem__(self, name)

    def pop(self, *args: Any) -> Any:  # type: ignore[override]
        self._open()
        return dict.pop(self, *args)

    def popitem(self) -> tuple[str, V]:
        self._open()
        return dict.popitem(self)

    def clear(self) -> None:
        self._open()
        dict.clear(self)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        self._open()
        dict.update(self, *args, **kwargs)

    def setdefault(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        self._open()
        return dict.setdefault(self, name, default)

    def __ior__(self, other: Any) -> Registry[V]:  # type: ignore[override]
        self.update(other)
        return self

    def __reduce__(self) -> Any:  # pickled as a plain dict (the rules belong to the module-level instance)
        return dict, (dict(self),)
