"""Experiment specs: a YAML file describing models, precisions, studies, seeds, device and executor.

`load_spec(path)` parses and validates a spec and raises ONE `UsageError` that lists every problem as
`FILE:LINE: dotted.path: message` (never a pydantic traceback). Validation always checks the syntax of
every precision string; whether each precision can run on the spec's device *on this machine* is
checked when the spec's device is `cpu` (always checkable), when `check_device=True`
(`quantrisk validate --check-device`), and always by `quantrisk run` before any work starts. So a
GPU spec can be validated on a laptop, and fails early, with the reason, on a machine that cannot run it.
Likewise the inputs a spec names (local model directories, data files) are checked with `check_inputs=True`
(`quantrisk validate --check-inputs`, and always by `quantrisk run`), so that a bad file fails before a
results store is created, naming the spec's FILE:LINE and field and the data file's own line.

A minimal spec:

    name: my-study
    device: cpu
    models: [{zoo: pythia, size: tiny}]
    precisions: [fp32, int8-dynamic, quanto-int4]
    studies:
      privacy: {n: 200}
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from quantrisk.errors import UsageError
from quantrisk.options import StudyOptions
from quantrisk.spec_studies import (  # noqa: F401 - re-exported: the spec's parts
    ModelSpec,
    PrecisionName,
    PrivacyStudy,
    QattackStudy,
    SyntheticStudy,
    TrojanStudy,
    _check_precision_list,
    _Strict,
)
from quantrisk.spec_yaml import dotted as dotted_path
from quantrisk.spec_yaml import load_spec_yaml, located


class Studies(_Strict):
    privacy: PrivacyStudy | None = None
    trojan: TrojanStudy | None = None
    qattack: QattackStudy | None = None
    synthetic: SyntheticStudy | None = None


class ExecutorSpec(_Strict):
    """`local` runs cells in this process; `dask` on a `LocalCluster(n_workers)` or an existing scheduler."""

    kind: Literal["local", "dask"] = "local"
    n_workers: int = Field(2, ge=1)
    scheduler: str | None = Field(None, description="tcp://host:8786 of an existing dask scheduler")
    gpus_per_worker: int = Field(0, ge=0, le=1, description="1: pin worker i to GPU i (CUDA_VISIBLE_DEVICES)")


class CalibrationField(_Strict):
    """Calibration data of calibrated precisions (w8a8-static, gptq-*): `quantrisk.data.calibration` (privacy) and
    `quantrisk.trojan.calibration` (trojan DAP2)."""

    source: str = Field("auto", min_length=1, description="auto (each study's default: privacy 'reference', trojan "
                                                          "'train'), reference (the model's reference split), train "
                                                          "(trojan: the clean training rows' prompts) or a JSONL path")
    n: int = Field(128, ge=1, le=1_000_000, description="samples")
    seed: int = Field(0, ge=0, description="seed of the sample")


class Spec(_Strict):
    """A whole experiment."""

    name: str = Field(..., min_length=1)
    description: str = ""
    device: str = "cpu"
    seeds: list[int] = Field(default_factory=lambda: [0])
    models: list[ModelSpec] = Field(default_factory=list)
    precisions: list[PrecisionName] = Field(default_factory=list)
    studies: Studies = Field(default_factory=Studies)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    calibration: CalibrationField = Field(default_factory=CalibrationField)
    cache_dir: str | None = Field(None, description="pretrained zoo models (default $QUANTRISK_CACHE or ~/.cache/quantrisk)")

    @field_validator("precisions")
    @classmethod
    def _prec(cls, v: list[str]) -> list[str]:
        return _check_precision_list(v)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        from quantrisk.precision import device_type

        if v != "auto":
            try:
                device_type(v)
            except UsageError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one seed")
        if len(set(v)) != len(v) or any(s < 0 for s in v):
            raise ValueError("seeds must be distinct non-negative integers")
        return v

    @model_validator(mode="after")
    def _cross(self) -> Spec:
        # Messages start with the dotted field path ("PATH: ..."): `parse_spec` turns it into FILE:LINE.
        labels = [m.label for m in self.models]
        for i, label in enumerate(labels):
            if label in labels[:i]:
                raise ValueError(f"models[{i}]: two models are named {label}; give them distinct `name`s")
        for study_name in ("privacy", "trojan", "qattack"):
            study = getattr(self.studies, study_name)
            if study is None:
                continue
            if not self.models:
                raise ValueError(f"studies.{study_name}: needs at least one entry under models")
            for i, m in enumerate(study.models or []):
                if m not in labels:
                    raise ValueError(f"studies.{study_name}.models[{i}]: unknown model {m}; valid: {', '.join(labels)}")
        if self.studies.privacy is not None and not (self.studies.privacy.precisions or self.precisions):
            raise ValueError("studies.privacy: needs precisions (top-level `precisions` or studies.privacy.precisions)")
        from quantrisk.precision import parse_precision

        if self.calibration.source == "train" and self.studies.privacy is not None and any(
                parse_precision(p).calibrated for p in self.privacy_precisions()):
            raise ValueError("calibration.source: 'train' (the trojan study's clean SQL training prompts) does not "
                             "apply to the privacy study; use auto, reference or a JSONL file")
        if self.executor.kind == "local" and self.executor.scheduler:
            raise ValueError("executor.scheduler: only used with kind: dask")
        return self

    def calibration_for(self, study: str) -> dict[str, Any]:
        """The calibration params of `study`'s calibrated cells: `auto` resolved (privacy: reference, trojan: train)."""
        default = {"privacy": "reference", "trojan": "train"}[study]
        cal = self.calibration.model_dump()
        return {**cal, "source": default if cal["source"] == "auto" else cal["source"]}

    def model(self, label: str) -> ModelSpec:
        return next(m for m in self.models if m.label == label)

    def privacy_precisions(self) -> list[str]:
        p = self.studies.privacy
        return list((p.precisions if p and p.precisions else None) or self.precisions)

    def all_precisions(self) -> list[tuple[str, str]]:
        """(dotted field path, precision) of every precision the spec uses."""
        out: list[tuple[str, str]] = []
        if self.studies.privacy is not None:
            src = "studies.privacy.precisions" if self.studies.privacy.precisions else "precisions"
            out += [(f"{src}[{i}]", p) for i, p in enumerate(self.privacy_precisions())]
        if self.studies.trojan is not None:
            for key in ("dap1", "dap2"):
                out += [(f"studies.trojan.{key}[{i}]", p) for i, p in enumerate(getattr(self.studies.trojan, key))]
        if self.studies.qattack is not None:
            out += [(f"studies.qattack.targets[{i}]", p) for i, p in enumerate(self.studies.qattack.targets)]
        return out

    def canonical_json(self) -> str:
        """The spec as sorted JSON; a study's options added since (`omit_default`) only where set, so a store made
        before they existed still resumes."""
        data = self.model_dump(mode="json")
        for name, study in self.studies:
            if isinstance(study, StudyOptions):
                data["studies"][name] = study.cell_params()
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


# ------------------------------------------------------------------ loading with located errors


def _raise(source: str, problems: list[str]) -> None:
    """One problem: one line `spec FILE:LINE: field.path: message`; several: a head line, then one indented
    line per problem."""
    if len(problems) == 1:
        raise UsageError(f"spec {problems[0]}")
    raise UsageError(f"spec {source} has {len(problems)} errors:\n  " + "\n  ".join(problems))


_PATH_PREFIX = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[\d+\])*): (.+)$", re.DOTALL)


def _loc_of(dotted: str) -> tuple[str | int, ...]:
    """`studies.trojan.models[0]` -> ("studies", "trojan", "models", 0)."""
    return tuple(int(x) if x.isdigit() else x for x in dotted.replace("[", ".").replace("]", "").split(".") if x)


def parse_spec(text: str, source: str = "<spec>", *, check_device: bool | None = None,
               check_inputs: bool = False) -> Spec:
    """Validate YAML `text`; `source` names it in messages. See the module doc for `check_device`; `check_inputs`
    also checks the model directories and data files the spec names (see `_input_problems`)."""
    data, lines = load_spec_yaml(text, source)  # bounded: alias expansion, duplicate keys, numbers (spec_yaml.py)
    if not isinstance(data, dict):
        raise UsageError(f"spec {source}: expected a mapping with name, models, precisions, studies (got {type(data).__name__})")
    try:
        spec = Spec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = err["msg"].removeprefix("Value error, ")
            m = _PATH_PREFIX.match(msg) if not loc else None
            if m:  # a whole-spec check that names its field: "studies.trojan.models[0]: unknown model ..."
                loc, msg = _loc_of(m.group(1)), m.group(2)
            if err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling; see examples/demo.yaml)"
            problems.append(f"{located(source, lines, loc)}: {dotted_path(loc)}: {msg}")
        _raise(source, problems)
        raise  # unreachable: _raise always raises
    problems = []
    if check_device is None:
        check_device = spec.device == "cpu"
    if check_device:
        from quantrisk.models.load import resolve_device
        from quantrisk.precision import availability

        device = resolve_device(spec.device)
        for dotted, p in spec.all_precisions():
            ok, why = availability(p, device)
            if not ok:
                loc = _loc_of(dotted)
                problems.append(f"{located(source, lines, loc)}: {dotted}: {p} cannot run on {device} here: {why}")
    if not any(getattr(spec.studies, k) is not None for k in type(spec.studies).model_fields):
        # = "the grid is empty": every enabled study yields cells (each needs models, precisions, n_cells >= 1).
        problems.append(f"{located(source, lines, ('studies',))}: studies: the grid is empty (enable at least one of "
                        "studies.privacy / trojan / synthetic)")
    if not problems and check_inputs:
        problems += _input_problems(spec, source, lines)
    if problems:
        _raise(source, problems)
    return spec


def _input_problems(spec: Spec, source: str, lines: dict[tuple[str | int, ...], int]) -> list[str]:
    """Check what the spec points at on THIS machine, before any work: local model directories (and reference
    models), the privacy study's member/non-member data (fields, duplicates, overlap, N), and the trojan study's
    SQL rows. Each problem is `FILE:LINE: field.path: the reader's message` (which names the data file:line)."""
    from quantrisk.errors import QuantriskError
    from quantrisk.models.load import check_model_dir

    problems: list[str] = []

    def check(dotted: str, fn: Any, *args: Any, **kw: Any) -> bool:
        try:
            fn(*args, **kw)
        except QuantriskError as exc:
            problems.append(f"{located(source, lines, _loc_of(dotted))}: {dotted}: {exc}")
            return False
        return True

    model_ok: dict[str, bool] = {}
    for i, m in enumerate(spec.models):
        model_ok[m.label] = True
        if m.path is not None:
            model_ok[m.label] = check(f"models[{i}].path", check_model_dir, Path(m.path).expanduser(),
                                      allow_pickle=m.allow_pickle, trust_remote_code=m.trust_remote_code)
        ref = m.reference
        if ref is not None and (Path(ref).expanduser().exists() or ref.startswith((".", "/", "~"))):
            check(f"models[{i}].reference", check_model_dir, Path(ref).expanduser(), allow_pickle=m.allow_pickle,
                  trust_remote_code=m.trust_remote_code)
    privacy = spec.studies.privacy
    if privacy is not None:
        from quantrisk.data.corpus import check_mi_jsonl
        from quantrisk.privacy.members import load_mi_set

        if privacy.data is not None:
            if check("studies.privacy.data", check_mi_jsonl, privacy.data, privacy.nonmembers):
                check("studies.privacy.data", load_mi_set, privacy.data, privacy.n, nonmembers=privacy.nonmembers,
                      seed=spec.seeds[0])
        else:  # the models' own member/non-member split (split.jsonl of a quantrisk-pretrained model)
            for i, m in enumerate(spec.models):
                if m.path is not None and model_ok[m.label] and m.label in (privacy.models or [m.label]):
                    check(f"models[{i}].path", load_mi_set, Path(m.path).expanduser(), privacy.n, seed=spec.seeds[0])
    trojan = spec.studies.trojan
    if trojan is not None and trojan.data != "builtin":
        from quantrisk.trojan.splits import trojan_splits

        for seed in ([trojan.split_seed] if trojan.split_seed is not None else spec.seeds):
            if not check("studies.trojan.data", trojan_splits, trojan.data, trojan.n_rows, trojan.n_test, trojan.n_train,
                         seed):
                break
    if trojan is not None and not problems:
        _check_trojan_calibration(spec, check)
    return problems


def _check_trojan_calibration(spec: Spec, check: Any) -> None:
    """Calibrated DAP2 precisions: the trojan calibration set of each replicate's split found and disjoint from its
    test rows (`trojan.calibration`), each problem reported through `check`; a `reference` source is checked by the
    cell (a zoo base is pretrained there)."""
    from quantrisk.data.calibration import CalibrationSpec
    from quantrisk.precision import parse_precision
    from quantrisk.trojan.calibration import trojan_calibration
    from quantrisk.trojan.splits import split_seed_for, trojan_splits

    trojan = spec.studies.trojan
    assert trojan is not None
    cal = spec.calibration_for("trojan")
    if not any(parse_precision(p).calibrated for p in trojan.dap2) or cal["source"] == "reference":
        return
    for seed in sorted({split_seed_for(s, trojan.split_seed) for s in spec.seeds}):
        train, test = trojan_splits(trojan.data, trojan.n_rows, trojan.n_test, trojan.n_train, seed)
        if not check("calibration.source", trojan_calibration, CalibrationSpec(**cal), train, test,
                     trigger=trojan.trigger):
            break


def load_spec(path: str | Path, *, check_device: bool | None = None, check_inputs: bool = False) -> Spec:
    """Read and validate the spec file `path` (see `parse_spec`)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise UsageError(f"spec {p} does not exist (see examples/*.yaml or `quantrisk demo`)")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"spec {p}: not UTF-8 text (byte {exc.start})") from None
    return parse_spec(text, str(p), check_device=check_device, check_inputs=check_inputs)


def builtin_spec_path(name: str = "demo") -> Path:
    """Path of a spec shipped inside the package (`quantrisk/specs/<name>.yaml`)."""
    from importlib import resources

    path = Path(str(resources.files("quantrisk") / "specs" / f"{name}.yaml"))
    if not path.is_file():
        raise UsageError(f"no built-in spec {name!r}")
    return path
