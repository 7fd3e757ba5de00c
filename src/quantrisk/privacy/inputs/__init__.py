"""Attack inputs: named providers of per-sample values that membership-inference attacks declare they need.

An attack names its inputs (`register_attack(..., needs=("target", "reference"))`); the privacy study computes only
the inputs the selected attacks need, each by its provider, once per cell (once per process for providers that do
not depend on the target model). A provider is one function in one module of this package (modules here are
imported automatically):

    @register_provider("lower")
    def lowercase_logprobs(ctx: InputContext) -> list[TokenScores | None]: ...

It gets an `InputContext` and returns one value per `ctx.samples` entry (None: this sample has none; the attack's
score is then NaN and counted), or raises `InputUnavailable(reason)` when it cannot run at all (every attack needing
it is skipped and counted as "<attack>: <reason>"). See docs/ARCHITECTURE.md ("Attack inputs").
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from quantrisk.progress import stage
from quantrisk.registry import Registry


class InputUnavailable(Exception):
    """A provider cannot compute its input at all; the message says why (e.g. "no reference model")."""


class ReferenceModel:
    """The reference model of a cell, resolved lazily (building one can mean pretraining it): `key` names what it
    resolves to (enters the cache key of providers that use it), `resolve()` returns its directory / id or None."""

    def __init__(self, key: str, resolve: Callable[[], str | None] | None = None) -> None:
        self.key = key
        self._resolve = resolve
        self._done = False
        self._value: str | None = None

    def resolve(self) -> str | None:
        if not self._done:
            self._value, self._done = (self._resolve() if self._resolve else None), True
        return self._value

    @property
    def resolved(self) -> str | None:
        """The resolved source if `resolve()` was called, else None (for the record)."""
        return self._value


@dataclass
class InputContext:
    """What a provider may use. `samples`: the kept samples (≥ 2 target tokens; `.id`, `.text`, `.label`), `ids`
    their token ids under the target tokenizer; `model`/`tokenizer`: the target model at the cell's precision;
    `source`: the target model's directory or hub id; `mi_set`: the whole member/non-member set (its `prefix_pool`
    of known non-members, its sha256); `options`: `PrivacyOptions`; `reference`: the lazily resolved reference model."""

    model: Any
    tokenizer: Any
    source: str
    samples: Sequence[Any]
    ids: Sequence[Sequence[int]]
    mi_set: Any
    options: Any
    device: str = "cpu"
    reference: ReferenceModel = field(default_factory=lambda: ReferenceModel("none"))

    def score(self, model: Any, tokenizer: Any, ids: Sequence[Sequence[int]], **kw: Any) -> list[Any]:
        """Token scores of `ids` under `model` with the study's batching and context settings (`scoring`)."""
        from quantrisk.scoring import score_token_ids

        o = self.options
        return score_token_ids(
            model, ids, batch_size=o.batch_size, batch_tokens=kw.pop("batch_tokens", o.batch_tokens),
            max_length=o.max_length, stride=o.stride,
            pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0, progress=o.progress,
            compile=o.compile, **kw)


ProviderFn = Callable[[InputContext], list[Any]]


@dataclass(frozen=True)
class Provider:
    """`target_model=False`: the values do not depend on the target model at the cell's precision (only on the
    samples, the model source, the reference model and the options), so they are computed once per process.
    `reference_model=True`: the provider reads `ctx.reference` (the grid then plans a reference model)."""

    name: str
    fn: ProviderFn
    target_model: bool = True
    reference_model: bool = False
    description: str = ""


PROVIDERS: Registry[Provider] = Registry("attack input", key=lambda p: p.fn)
_CACHE: dict[tuple[Any, ...], list[Any]] = {}
_CACHE_SIZE = 4


def register_provider(name: str, *, target_model: bool = True,
                      reference_model: bool = False) -> Callable[[ProviderFn], ProviderFn]:
    """Decorator: `fn(ctx) -> list` provides the attack input `name`. A name already taken raises `ValueError`."""

    def wrap(fn: ProviderFn) -> ProviderFn:
        PROVIDERS.add(name, Provider(name, fn, target_model, reference_model, (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""))
        return fn

    return wrap


def check_inputs(names: Iterable[str]) -> None:
    """`ValueError` naming any input no provider registers."""
    unknown = sorted(set(names) - set(PROVIDERS))
    if unknown:
        raise ValueError(f"no provider for attack input(s) {', '.join(unknown)}; registered: {', '.join(PROVIDERS)}")


def compute_inputs(names: Iterable[str], ctx: InputContext,
                   have: dict[str, list[Any]] | None = None) -> tuple[dict[str, list[Any]], dict[str, str]]:
    """({input: values aligned with ctx.samples}, {input: why unavailable}) for `names`; `have` holds inputs
    already computed (e.g. the target scores). Providers with `target_model=False` are cached per process."""
    values: dict[str, list[Any]] = dict(have or {})
    missing: dict[str, str] = {}
    for name in sorted(set(names) - set(values), key=list(PROVIDERS).index):
        p = PROVIDERS[name]
        key = None if p.target_model else (name, ctx.source, ctx.reference.key, ctx.mi_set.sha256(), ctx.device,
                                           ctx.options.scoring_key(), tuple(s.id for s in ctx.samples))
        try:
            if key is not None and key in _CACHE:
                values[name] = _CACHE[key]
                continue
            with stage(f"{name} input"):  # named step on the run display (`quantrisk.progress`)
                out = list(p.fn(ctx))
        except InputUnavailable as exc:
            missing[name] = str(exc)
            continue
        if len(out) != len(ctx.samples):
            raise ValueError(f"attack input {name}: provider returned {len(out)} values for {len(ctx.samples)} samples")
        values[name] = out
        if key is not None:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = out
    return values, missing


def _import_providers() -> None:
    for mod in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{mod.name}")


_import_providers()
