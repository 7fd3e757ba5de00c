"""The parts of an experiment spec that name models and studies: `ModelSpec`, one pydantic model per study
(`PrivacyStudy`, `TrojanStudy`, `QattackStudy`, `SyntheticStudy`) and the precision-string checks they share. The
privacy, trojan and qattack study models subclass the study's options model (`privacy.options.PrivacySettings`,
`trojan.options.TrojanSettings`, `qattack.options.QattackSettings`: each option's default, bound and help, which
the CLI shares) and add what a spec names: models, precisions, data. The whole spec (`Spec`), YAML loading with
FILE:LINE errors and the machine checks live in `config.py`, which re-exports these names. A new study kind adds its model here and one field to
`config.Studies`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from quantrisk.errors import UsageError
from quantrisk.privacy.options import PrivacySettings
from quantrisk.qattack.options import QattackSettings
from quantrisk.trojan.options import DEFAULT_DAP1, DEFAULT_DAP2, TrojanSettings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_precision(value: str) -> str:
    from quantrisk.precision import parse_precision

    try:
        return parse_precision(value).name
    except UsageError as exc:
        raise ValueError(str(exc)) from None


PrecisionName = Annotated[str, AfterValidator(_check_precision)]


def _check_precision_list(values: list[str]) -> list[str]:
    names = list(values)
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValueError(f"precision listed twice: {', '.join(dups)}")
    return names


RECIPE: tuple[str, ...] = ("per_split", "max_filler", "batch_size", "vocab_size")  # exposure-recipe overrides a zoo model may set


class ModelSpec(_Strict):
    """One model: exactly one of `zoo` (an embedded architecture, pretrained here and cached), `path`
    (a local model directory) or `hub` (a Hugging Face hub id)."""

    zoo: str | None = None
    size: str = "tiny"
    seed: int = Field(0, ge=0, description="pretraining seed (zoo models)")
    regime: Literal["memorise", "exposure"] | None = Field(
        None, description="zoo models: exposure (the default: one pass, members k times) or memorise (many epochs over "
                          "the members)")
    exposures: list[int] | None = Field(None, description="zoo models, exposure regime: k of each member group (default 1,2,4,8,16)")
    per_split: int | None = Field(None, ge=2, description="zoo models, exposure regime: samples per split (members "
                                                        "over all k, non-members, reference; default: the size's)")
    max_filler: int | None = Field(None, ge=1, description="zoo models, exposure regime: at most this many once-seen "
                                                         "filler samples (default: the size's)")
    batch_size: int | None = Field(None, ge=1, description="zoo models, exposure regime: rows of a packed step "
                                                         "(default: the size's)")
    vocab_size: int | None = Field(None, ge=300, le=65536, description="zoo models, exposure regime: BPE vocabulary "
                                                                     "size (default: the size's)")
    path: str | None = None
    hub: str | None = None
    name: str | None = Field(None, description="label used in tables (default: derived from the source)")
    reference: str | None = Field(None, description="reference model dir/id for the reference attack")
    allow_pickle: bool = False
    trust_remote_code: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        given = [k for k in ("zoo", "path", "hub") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of zoo / path / hub (got {', '.join(given) or 'none'})")
        if self.zoo is not None:
            from quantrisk.models.zoo import ARCHS, SIZES

            if self.zoo not in ARCHS:
                raise ValueError(f"unknown zoo architecture {self.zoo!r}; valid: {', '.join(ARCHS)}")
            if self.size not in SIZES:
                raise ValueError(f"unknown zoo size {self.size!r}; valid: {', '.join(SIZES)}")
        recipe = [k for k in ("regime", "exposures", *RECIPE) if getattr(self, k) is not None]
        if recipe and self.zoo is None:
            raise ValueError(f"{' / '.join(recipe)} apply to zoo models only")
        if any(getattr(self, k) is not None for k in RECIPE) and self.regime == "memorise":
            raise ValueError(f"{' / '.join(RECIPE)} are exposure-regime settings (regime: exposure)")
        if self.exposures is not None:
            if self.regime == "memorise":
                raise ValueError("exposures need regime: exposure")
            if not self.exposures or min(self.exposures) < 1 or len(set(self.exposures)) != len(self.exposures):
                raise ValueError(f"exposures must be distinct integers >= 1, got {self.exposures}")
        return self

    def pretrain_params(self) -> dict[str, Any]:
        """The zoo pretraining regime, as cell params: {} for memorise (so memorise cells keep the ids they had when it
        was the default), else the exposure regime (the default) and its exposures."""
        if self.zoo is None or self.regime == "memorise":
            return {}
        out: dict[str, Any] = {"regime": "exposure", "exposures": sorted(self.exposures) if self.exposures else None}
        out.update({k: getattr(self, k) for k in RECIPE if getattr(self, k) is not None})
        return out  # recipe settings only when set: other cells keep their ids

    @property
    def label(self) -> str:
        """Name used in tables and cell labels."""
        if self.name:
            return self.name
        if self.zoo is not None:
            return f"{self.zoo}-{self.size}" + (f"-s{self.seed}" if self.seed else "")
        return Path(self.path).name if self.path is not None else str(self.hub)

    def source_params(self) -> dict[str, Any]:
        """What identifies the model (enters the cell hash)."""
        if self.zoo is not None:
            return {"zoo": self.zoo, "size": self.size, "seed": self.seed, **self.pretrain_params()}
        if self.path is not None:
            return {"path": str(Path(self.path).expanduser()), "allow_pickle": self.allow_pickle,
                    "trust_remote_code": self.trust_remote_code}
        return {"hub": self.hub, "allow_pickle": self.allow_pickle,
                "trust_remote_code": self.trust_remote_code}


class PrivacyStudy(PrivacySettings):
    """Membership inference + CodeBLEU, one cell per (model, precision, seed), then one summary cell (best attack,
    quality-risk correlation) over them. Its options (defaults, bounds, help) are `privacy.options.PrivacySettings`;
    here: which models and precisions, the reference model and the data."""

    models: list[str] | None = Field(None, description="model names to study (default: all)")
    precisions: list[PrecisionName] | None = Field(None, description="override of the spec's precisions")
    reference: Literal["auto", "none"] = Field("auto", description="auto: a reference model per zoo model")
    data: str | None = Field(None, description="labelled JSONL (text, label), or the members with `nonmembers`, "
                                               "instead of the model's split")
    nonmembers: str | None = Field(None, description="non-members JSONL (text) when `data` holds the members")

    @field_validator("precisions")
    @classmethod
    def _prec(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else _check_precision_list(v)

    @model_validator(mode="after")
    def _nonmembers(self) -> PrivacyStudy:
        if self.nonmembers is not None and self.data is None:
            raise ValueError("nonmembers needs data (the members file)")
        return self

    @field_validator("attacks")
    @classmethod
    def _attacks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from quantrisk.privacy.attacks import parse_attacks

        if not v:
            raise ValueError("give at least one attack")
        try:
            return tuple(c.label for c in parse_attacks(list(v)))
        except UsageError as exc:
            raise ValueError(str(exc)) from None


class TrojanStudy(TrojanSettings):
    """Poisoned LoRA fine-tuning at DAP1, inference at DAP2. One fine-tune cell per (model, dap1, kind, seed),
    one evaluation cell per (model, dap1, kind, seed, dap2). Its options (defaults, bounds, help) are
    `trojan.options.TrojanSettings`; here: which models and precisions."""

    models: list[str] | None = None
    dap1: list[PrecisionName] = Field(default_factory=lambda: list(DEFAULT_DAP1),
                                      description="precisions of the base when fine-tuning")
    dap2: list[PrecisionName] = Field(default_factory=lambda: list(DEFAULT_DAP2),
                                      description="precisions of the base at inference")

    @field_validator("dap2")
    @classmethod
    def _dap2(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one DAP2 precision")
        return _check_precision_list(v)

    @field_validator("dap1")
    @classmethod
    def _dap1_trainable(cls, v: list[str]) -> list[str]:
        from quantrisk.precision import require_lora_base

        if not v:
            raise ValueError("give at least one DAP1 precision")
        v = _check_precision_list(v)
        for p in v:  # the back-end's own reason (calibrated ones too: w8a8-static, gptq-* are not LoRA bases)
            try:
                require_lora_base(p, "DAP1")
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return v


class QattackStudy(QattackSettings):
    """Quantization-conditioned backdoor (`quantrisk qattack`): one cell per (model, seed) that injects, repairs
    inside the targets' intervals, verifies, measures, and optionally runs the defence sweep and the scan. Its
    options (defaults, bounds, help) are `qattack.options.QattackSettings`; here: which models and target
    precisions, and whether to scan."""

    models: list[str] | None = None
    targets: list[PrecisionName] = Field(default_factory=lambda: ["rtn-w4g64"],
                                         description="precisions the backdoor wakes up at (intervals intersected)")
    scan: bool = Field(True, description="scan the base and the repaired model at the targets")

    @field_validator("targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        from quantrisk.qattack.constraints import check_target

        if not v:
            raise ValueError("give at least one target precision")
        v = _check_precision_list(v)
        for t in v:
            try:
                check_target(t)
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return v


class SyntheticStudy(_Strict):
    """Cheap deterministic cells that exercise the runner (executor benchmarks, crash/resume tests)."""

    n_cells: int = Field(8, ge=1, le=100_000)
    work_seconds: float = Field(0.0, ge=0.0, description="sleep per cell")
    samples_per_cell: int = Field(10, ge=0)
    shared_parent: bool = Field(True, description="every cell depends on one shared parent cell")
