"""Study options, each defined once: a study's options are one pydantic model (a `StudyOptions` subclass:
`privacy.options.PrivacySettings`, `trojan.options.TrojanSettings`) whose fields carry the default, the bound and the
help text. From it are derived the spec schema (`spec_studies`: the study's spec model subclasses it), the CLI options
(`commands/_options.py`), the cell parameters (`cell_params`) and the options a cell hands its study (`from_params`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def option(default: Any, help: str, *, cli: str | None = None, cli_text: bool = False, omit_default: bool = False,
           **bounds: Any) -> Any:
    """A study option: `Field(default, description=help, **bounds)`. `cli`: the flag when it is not `--field-name`;
    `cli_text`: the CLI takes it as text and the command parses it (lists, 'all'); `omit_default`: left out of the
    cell parameters at its default (an option added after cells were stored: those cells keep their ids)."""
    extra = {k: v for k, v in (("cli", cli), ("cli_text", cli_text), ("omit_default", omit_default)) if v}
    return Field(default, description=help, json_schema_extra=extra or None, **bounds)


def option_extra(field: Any, key: str) -> Any:
    """`key` of a field's `option(...)` metadata (None when not set)."""
    extra = field.json_schema_extra
    return extra.get(key) if isinstance(extra, dict) else None


class StudyOptions(BaseModel):
    """Base of a study's options model: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def settings_class(cls) -> type[StudyOptions]:
        """The options model this class derives from (the direct subclass of `StudyOptions` in its bases)."""
        for klass in cls.__mro__:
            if StudyOptions in klass.__bases__:
                return klass
        raise TypeError(f"{cls.__name__} is not a study options model")

    @classmethod
    def option_fields(cls) -> dict[str, Any]:
        """name -> pydantic field of every study option (the options model's own fields, in order)."""
        return dict(cls.settings_class().model_fields)

    @classmethod
    def from_params(cls, params: dict[str, Any], **extra: Any) -> Any:
        """The options in cell parameters `params` (a missing one takes its default), plus `extra` fields."""
        return cls(**{k: params[k] for k in cls.option_fields() if k in params}, **extra)

    def cell_params(self, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        """The fields as cell parameters (JSON values), but `exclude` and the `omit_default` options at their
        default."""
        fields = type(self).model_fields
        return {k: v for k, v in self.model_dump(mode="json", exclude=set(exclude)).items()
                if not (option_extra(fields[k], "omit_default") and getattr(self, k) == fields[k].default)}
