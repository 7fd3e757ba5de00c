"""A study's CLI options derived from its options model (`quantrisk.options.StudyOptions`): one typer option per
field, with the field's default and help text and the flag `--field-name` (or the field's `cli`), and the bounds
checked from the same fields. A command takes them as `**options` (`study_options` adds them to its signature)."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from quantrisk.options import StudyOptions, option_extra

F = TypeVar("F", bound=Callable[..., Any])
_SCALARS = (bool, int, float, str)


def flag(settings: type[StudyOptions], name: str) -> str:
    """The CLI flag of option `name`: its `cli`, else `--` + the name with dashes."""
    return option_extra(settings.option_fields()[name], "cli") or "--" + name.replace("_", "-")


def cli_type(field: Any) -> Any:
    """The type typer parses the option as: the field's scalar type (optional where it may be None), else `str`
    (`cli_text` options, lists, choices: the command parses the text)."""
    ann = field.annotation
    if option_extra(field, "cli_text"):
        return str
    if ann in _SCALARS:
        return ann
    args = typing.get_args(ann)
    if isinstance(ann, types.UnionType) or typing.get_origin(ann) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1 and inner[0] in _SCALARS:
            return typing.Optional[inner[0]]  # noqa: UP045 - typer reads typing.Optional
    return str


def cli_default(field: Any) -> Any:
    """The option's default as typer shows and passes it (a list as comma-separated text)."""
    value = field.default
    if cli_type(field) is str and isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if cli_type(field) is str and value is None:
        return "all"
    return value


def cli_parameters(settings: type[StudyOptions]) -> list[inspect.Parameter]:
    """One keyword parameter per option of `settings`: `name: type = typer.Option(default, [flag], help=...)`."""
    out = []
    for name, field in settings.option_fields().items():
        decls = [flag(settings, name)] if option_extra(field, "cli") else []
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=cli_type(field),
                                     default=typer.Option(cli_default(field), *decls, help=field.description)))
    return out


def study_options(settings: type[StudyOptions]) -> Callable[[F], F]:
    """Decorator for a command `def cmd(own options..., **options)`: its signature (what typer reads) gains one
    option per study option of `settings`, after its own."""

    def wrap(fn: F) -> F:
        sig = inspect.signature(fn)
        own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        hints = typing.get_type_hints(fn)
        extra = cli_parameters(settings)
        fn.__signature__ = sig.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
        fn.__annotations__ = {**{p.name: hints.get(p.name, p.annotation) for p in own},
                              **{p.name: p.annotation for p in extra}, "return": None}
        return fn

    return wrap


def check_bounds(settings: type[StudyOptions], values: dict[str, Any]) -> None:
    """`UsageError` `--flag V: must be at least B` (or `... at most B`, `... more than B`, `... less than B`) for the
    first given numeric option outside its field's bound (a list of offenders when several)."""
    from annotated_types import Ge, Gt, Le, Lt

    from quantrisk.errors import UsageError

    rules = ((Ge, "ge", "at least", lambda v, b: v >= b), (Gt, "gt", "more than", lambda v, b: v > b),
             (Le, "le", "at most", lambda v, b: v <= b), (Lt, "lt", "less than", lambda v, b: v < b))
    bad = []
    for name, field in settings.option_fields().items():
        value = values.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        for meta in field.metadata:
            for kind, attr, words, ok in rules:
                if isinstance(meta, kind) and not ok(value, getattr(meta, attr)):
                    bad.append((f"{flag(settings, name)} {value}", f"must be {words} {getattr(meta, attr)}"))
    if bad:
        if len({why for _, why in bad}) == 1:
            raise UsageError(f"{', '.join(what for what, _ in bad)}: {bad[0][1]}")
        raise UsageError("; ".join(f"{what}: {why}" for what, why in bad))


def settings_from_cli(settings: type[StudyOptions], values: dict[str, Any], **parsed: Any) -> Any:
    """`settings` built from the CLI `values` (its option fields), `parsed` replacing the text options the command
    parsed; a value the model refuses is one `UsageError` naming the flag."""
    from pydantic import ValidationError

    from quantrisk.errors import UsageError

    fields = {k: v for k, v in values.items() if k in settings.option_fields()}
    try:
        return settings(**{**fields, **parsed})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        where = flag(settings, name) if name in settings.option_fields() else settings.__name__
        raise UsageError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None
