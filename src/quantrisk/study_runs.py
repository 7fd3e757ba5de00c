"""One path for the single-study commands: `quantrisk privacy` and `quantrisk trojan` build a one-model `Spec` in
memory and run it like any spec (grid -> cells -> runner) into the results store under `--out`, so they resume, and
give the same metric rows as a YAML spec with the same settings. Then the rows of that spec's cells are read back from
the store and written as `metrics.json` + `samples.jsonl` (`StudyResult.write_dir`), as before.

Nothing is computed here: the cells compute every number, the `privacy-summary` cell the best attack and the
quality-risk correlation.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from quantrisk.cells import Cell
from quantrisk.config import CalibrationField, ModelSpec, PrivacyStudy, Spec, Studies, TrojanStudy
from quantrisk.errors import UsageError
from quantrisk.privacy.options import PrivacyOptions, PrivacySettings
from quantrisk.results import MetricRow, StudyResult
from quantrisk.safefs import refuse_link

STUDY_KINDS: dict[str, tuple[str, ...]] = {"privacy": ("privacy", "privacy-blind", "privacy-summary"), "trojan": ("finetune", "trojan")}


def _build(cls: type, **fields: Any) -> Any:
    """`cls(**fields)`, a validation error as one `UsageError` line naming the field."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or cls.__name__
        raise UsageError(f"{where}: {err['msg'].removeprefix('Value error, ')}") from None


def model_spec(model: str, *, reference: str | None = None) -> ModelSpec:
    """`zoo:ARCH[-SIZE]` (pretrained here, seed 0), a local directory (absolute path, named by its last part) or a
    hub id."""
    if model.startswith("zoo:"):
        arch, _, size = model[4:].partition("-")
        return _build(ModelSpec, zoo=arch, size=size or "tiny", seed=0, reference=reference)
    path = Path(model).expanduser()
    if path.exists() or model.startswith((".", "/", "~")):
        return _build(ModelSpec, path=str(path.resolve()), name=path.resolve().name or None, reference=reference)
    return _build(ModelSpec, hub=model, name=Path(model).name, reference=reference)


def privacy_spec(model: str, precisions: Sequence[str], *, data: str | Path | None = None,
                 nonmembers: str | Path | None = None, reference: str | None = None, device: str = "cpu",
                 options: PrivacyOptions | None = None, calibration: Any = None) -> Spec:
    """The spec `quantrisk privacy` runs: one model, its precisions, one seed (`options.seed`), the study's options
    (`options`, a `PrivacyOptions`: every `PrivacySettings` field); `calibration`: a
    `data.calibration.CalibrationSpec` for calibrated precisions (default: the spec's default)."""
    o = options or PrivacyOptions()
    study = _build(PrivacyStudy, **{k: getattr(o, k) for k in PrivacySettings.option_fields()}, reference="auto",
                   data=None if data is None else str(Path(data).expanduser().resolve()),
                   nonmembers=None if nonmembers is None else str(Path(nonmembers).expanduser().resolve()))
    cal = {} if calibration is None else {"calibration": _build(CalibrationField, source=str(calibration.source),
                                                                  n=calibration.n, seed=calibration.seed)}
    return _build(Spec, name="privacy", device=device, seeds=[o.seed], models=[model_spec(model, reference=reference)],
                  precisions=list(precisions), studies=Studies(privacy=study), **cal)


def trojan_spec(model: str, dap1: Sequence[str], dap2: Sequence[str], *, seeds: Sequence[int], device: str = "cpu",
                calibration: Any = None, **study: Any) -> Spec:
    """The spec `quantrisk trojan` runs: one base model; `study` holds the `TrojanStudy` fields (data, n_rows, ...);
    `calibration`: a `data.calibration.CalibrationSpec` for calibrated DAP2 precisions (default: the spec's, i.e.
    128 clean training prompts)."""
    trojan = _build(TrojanStudy, dap1=list(dap1), dap2=list(dap2), **study)
    cal = {} if calibration is None else {"calibration": _build(CalibrationField, source=str(calibration.source),
                                                                  n=calibration.n, seed=calibration.seed)}
    return _build(Spec, name="trojan", device=device, seeds=list(seeds), models=[model_spec(model)],
                  studies=Studies(trojan=trojan), **cal)


def collect(run_dir: str | Path, cells: Sequence[Cell], study: str) -> StudyResult:
    """The `StudyResult` of `study`'s cells among `cells`, read from the store in `run_dir`: their metric and sample
    rows (in grid order), skipped counts summed, and an environment (the first cell's, with every load)."""
    from quantrisk.store import Store

    ids = {c.id for c in cells if c.kind in STUDY_KINDS[study]}
    result = StudyResult(study)
    with Store(run_dir, create=False) as st:
        rows = [c for c in st.cells() if c["id"] in ids and c["status"] == "done"]
        result.metrics = [MetricRow(r["name"], r["value"], r["labels"], r["ci_low"], r["ci_high"])
                          for r in st.metrics() if r["cell_id"] in ids]
        result.samples = [row for cid, row in st.samples() if cid in ids]
        artifacts = {c["id"]: st.artifacts(c["id"]) for c in rows}
    loads: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    for c in rows:
        for k, v in c["skipped"].items():
            result.skipped[k] = result.skipped.get(k, 0) + v
        env = c["environment"]
        if "load" in env:
            if not loads:
                result.environment = {k: v for k, v in env.items() if k != "load"}
            loads.append(env["load"])
        else:  # e.g. a finetune cell: what it trained on
            extra.update({k: v for k, v in env.items() if k in ("n_train", "train_sha256") and k not in extra})
        for name, path in artifacts[c["id"]].items():
            label = c["label"].replace(" ", "-")
            result.artifacts[f"{name}:{label}"] = path
    result.environment.update(extra)
    result.environment["loads"] = ({ld["precision"]: ld for ld in loads} if study == "privacy" else loads)
    if study == "privacy" and result.environment.get("reference_model"):
        result.artifacts["reference_model"] = result.environment["reference_model"]
    return result


def run_study(spec: Spec, out: str | Path, *, progress: bool = True) -> StudyResult:
    """Run `spec` (one study) into the store under `out` (resuming the same spec; another spec's store moves to
    `out/previous/`), stopping at the first failing cell with its own error; then write `out/metrics.json` +
    `out/samples.jsonl` from the store and return what they hold."""
    from quantrisk.executors import LocalExecutor
    from quantrisk.grid import expand
    from quantrisk.runner import run_spec

    start = time.perf_counter()
    study = "privacy" if spec.studies.privacy is not None else "trojan"
    # same settings resume; changed settings start a fresh store (the old one moves to OUT/previous/), as the command
    # used to overwrite its output directory
    run_spec(spec, out, executor=LocalExecutor(fail_fast=True), progress=progress, new_spec=True)
    cells = expand(spec)
    result = collect(out, cells, study)
    if study == "trojan":
        trojan = spec.studies.trojan
        assert trojan is not None
        result.environment.update({"model": spec.models[0].label, "data": trojan.data, "seeds": list(spec.seeds),
                                   "poison": {"trigger": trojan.trigger, "payload": trojan.payload,
                                              "position": trojan.position, "rate": trojan.poison_rate},
                                   "study": trojan.model_dump(mode="json")})
        _link_adapters(Path(out), cells)
    result.seconds = time.perf_counter() - start
    result.write_dir(out)
    return result


def _link_adapters(out: Path, cells: Sequence[Cell]) -> None:
    """`out/adapters/<dap1>-<kind>-s<seed>` -> the finetune cell's adapter (where `quantrisk trojan` kept them)."""
    for c in cells:
        if c.kind != "finetune":
            continue
        link = out / "adapters" / f"{c.params['dap1']}-{c.params['kind']}-s{c.params['seed']}"
        refuse_link(link.parent, "adapters directory")  # a planted link would make the unlink reach outside
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():  # quantrisk's own link from an earlier run
            link.unlink()
        elif link.exists():
            raise UsageError(f"{link} exists and is not the link quantrisk made; refused (move it away)")
        link.symlink_to(Path("..") / "cells" / c.id / "adapter", target_is_directory=True)


def run_privacy(model: str | Path, precisions: Sequence[str], *, out: str | Path, n: Any = ...,
                data: str | Path | None = None, nonmembers: str | Path | None = None,
                reference_source: str | Path | None = None, device: str = "cpu",
                options: PrivacyOptions | None = None, calibration: Any = None) -> StudyResult:
    """The privacy study of one model over `precisions`, through the runner into `out` (see `privacy_spec`); `n`,
    when given, replaces `options.n` (N + N; None: all)."""
    o = options or PrivacyOptions()
    if n is not ...:
        o = o.model_copy(update={"n": n})
    spec = privacy_spec(str(model), precisions, data=data, nonmembers=nonmembers,
                        reference=None if reference_source is None else str(reference_source), device=device, options=o,
                        calibration=calibration)
    return run_study(spec, out, progress=o.progress)


def run_trojan(model: str | Path, data: str | Path, dap1: Sequence[str], dap2: Sequence[str], *, out: str | Path,
               seeds: Sequence[int] = (1,), device: str = "cpu", progress: bool = True, **study: Any) -> StudyResult:
    """The trojan study of one base model through the runner into `out` (see `trojan_spec`); `study` holds
    `TrojanStudy` fields (defaults: `trojan.options.TrojanSettings`, as `quantrisk trojan`'s)."""
    spec = trojan_spec(str(model), dap1, dap2, seeds=seeds, device=device, data=str(data), **study)
    return run_study(spec, out, progress=progress)
