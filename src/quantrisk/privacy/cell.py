"""The privacy study's cell kinds, registered from below in `cells.CELL_KINDS` (`quantrisk.studies` imports this
module where the application is assembled; `cells` does not know the study).

`privacy`: MI attacks + CodeBLEU for one model at one precision and seed (`privacy.study.privacy_at_precision`).
`privacy-summary` (reads its dependencies' rows): best attack, quality-risk correlation and paired comparisons
against the baseline precision (`privacy.summary`). `privacy-blind`: the model-free baselines of one member /
non-member set (`privacy.blind`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from quantrisk.cells import Cell, CellContext, model_source, register_cell_kind
from quantrisk.errors import UsageError
from quantrisk.results import MetricRow, StudyResult


@lru_cache(maxsize=8)
def mi_set(source: str, n: int | None, seed: int, nonmembers: str | None = None) -> Any:
    """The member/non-member set of a privacy cell: `privacy.members.load_mi_set` (N + N, seeded with the cell's
    seed) of `data` (+ `nonmembers`) or else the model's own split. Cached per process."""
    from quantrisk.privacy.members import load_mi_set

    return load_mi_set(source, n, nonmembers=nonmembers, seed=seed)


@register_cell_kind("privacy")
def privacy_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """MI attacks + CodeBLEU for one model at one precision and seed."""
    from quantrisk.privacy.inputs import ReferenceModel
    from quantrisk.privacy.options import PrivacyOptions
    from quantrisk.privacy.study import privacy_at_precision, resolve_reference

    p = cell.params
    source = model_source(cell, ctx)
    opts = PrivacyOptions.from_params(p, seed=p["seed"], progress=ctx.progress)
    samples = mi_set(p["data"] or source, opts.n, opts.seed, p.get("nonmembers"))
    if p["reference"] == "none":
        reference = ReferenceModel("none")
    elif p.get("reference_cell"):
        reference = ReferenceModel(f"cell:{p['reference_cell']}", lambda: ctx.artifact(p["reference_cell"], "model_dir"))
    else:
        def resolve() -> str | None:
            found = resolve_reference(source, p.get("reference_path"), ctx.device, ctx.progress)
            return str(found) if found is not None else None

        reference = ReferenceModel(f"auto:{source}:{p.get('reference_path')}", resolve)
    from quantrisk.data.calibration import CalibrationSpec

    calibration = CalibrationSpec(**p["calibration"]) if p.get("calibration") else None
    result = privacy_at_precision(source, p["precision"], samples=samples, device=ctx.device, options=opts,
                                  reference_source=reference, model_label=p["label"], calibration=calibration)
    for m in result.metrics:
        m.labels["seed"] = str(p["seed"])
    for row in result.samples:
        row["seed"] = p["seed"]
    return result


@register_cell_kind("privacy-summary", reads_deps=True)
def privacy_summary_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """Best attack, quality-risk correlation and paired comparisons against the baseline precision, over the
    privacy cells it depends on (`privacy.summary`)."""
    from quantrisk.privacy.options import PrivacyOptions
    from quantrisk.privacy.summary import summarize

    p = cell.params
    opts = PrivacyOptions.from_params(p, seed=p.get("seed", 0))
    return summarize([m for dep in cell.deps for m in ctx.dep_metrics.get(dep, [])],
                     [r for dep in cell.deps for r in ctx.dep_samples.get(dep, [])], attacks=p.get("attacks", []),
                     n_resamples=opts.n_resamples, seed=opts.seed)


@register_cell_kind("privacy-blind")
def privacy_blind_cell(cell: Cell, ctx: CellContext) -> StudyResult:
    """Blind (model-free) baselines of one privacy set (model, seed): `blind_auc` rows (`privacy.blind`), the same
    member / non-member set the privacy cells of that seed score, tokenized with the model's tokenizer."""
    from quantrisk.data.corpus import load_split
    from quantrisk.models.load import load_tokenizer, resolve_source
    from quantrisk.privacy.blind import blind_rows, reference_training_texts
    from quantrisk.privacy.options import PrivacyOptions
    from quantrisk.scoring import tokenize

    p = cell.params
    opts = PrivacyOptions.from_params(p, seed=p["seed"])
    source = model_source(cell, ctx)
    samples = mi_set(p["data"] or source, opts.n, opts.seed, p.get("nonmembers"))
    texts, y = [s.text for s in samples.samples], [s.label for s in samples.samples]
    skipped: dict[str, int] = {}
    token_ids = reference_ids = None
    try:
        tokenizer = load_tokenizer(resolve_source(source))
        token_ids = tokenize(tokenizer, texts)
        if (Path(source) / "split.jsonl").is_file():  # a quantrisk model: what its reference model trained on
            reference_ids = tokenize(tokenizer, reference_training_texts(load_split(source)))
        else:
            skipped["blind: no reference split (reference-token baselines not computed)"] = 1
    except UsageError as exc:  # a tokenizer that will not load costs only the token baselines
        skipped[f"blind: tokenizer not loaded ({type(exc).__name__}); token baselines not computed"] = 1
    labels = {"model": p["label"], "seed": str(p["seed"])}
    metrics = blind_rows(texts, y, labels, token_ids=token_ids, reference_ids=reference_ids,
                         n_resamples=opts.n_resamples, seed=opts.seed)
    removed = dict(samples.skipped)
    meta = Path(source) / "pretrain.json"
    if meta.is_file():  # the testbed's split dropped its near-duplicates before training
        removed.update(json.loads(meta.read_text(encoding="utf-8")).get("dropped", {}))
    for reason, count in sorted(removed.items()):
        if reason.startswith("near-duplicate"):
            metrics.append(MetricRow("near_duplicates_removed", float(count), {**labels, "reason": reason}))
    env = {"mi_set_sha256": samples.sha256(), "mi_source": samples.source, "n_members": samples.n_members,
           "n_nonmembers": samples.n_nonmembers}
    return StudyResult("privacy-blind", metrics, [], {}, env, skipped, 0.0)
