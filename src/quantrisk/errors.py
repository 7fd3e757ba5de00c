"""Error types. Every error a user can cause is a `UsageError` (exit code 2) with one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class QuantriskError(Exception):
    """Base class: a failure the CLI reports as one line (exit code 1: runtime)."""

    exit_code = 1


class UsageError(QuantriskError):
    """Bad input from the user: spec, data file, option, model path (exit code 2)."""

    exit_code = 2


class DataError(UsageError):
    """A data file is malformed. Messages name the file, the line and the field."""


class PrecisionError(UsageError):
    """Unknown precision string, or one not supported on this device/machine."""


class ModelLoadError(UsageError):
    """The model source does not exist, is not a model, or is refused (pickle, remote code)."""


@contextmanager
def about(what: str) -> Iterator[None]:
    """Prefix the message of a `UsageError` raised inside with `what: ` (the option or field it came from), keeping
    its type and exit code: `with about("--precisions"): parse_precisions(text)`."""
    try:
        yield
    except UsageError as exc:
        raise type(exc)(f"{what}: {exc}") from None
