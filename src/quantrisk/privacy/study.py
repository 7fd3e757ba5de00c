"""The privacy study: membership-inference risk and code-completion quality of a model at a precision.

`privacy_at_precision` is one cell (one model at one precision); the runner runs one per (model, precision, seed)
and the `privacy-summary` cell (`privacy/summary.py`) adds the best attack and the quality–risk correlation across
them. `quantrisk privacy` runs a one-model spec through the runner (`quantrisk.study_runs`).
Code completion is measured on non-member samples (unseen code: quality, not recall).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from quantrisk.data.calibration import CalibrationSet, CalibrationSpec
from quantrisk.errors import UsageError
from quantrisk.privacy.attacks import (
    AttackChoice,
    AttackInput,
    parse_attacks,
    required_inputs,
)
from quantrisk.privacy.blind import permutation_auc
from quantrisk.privacy.completion import corpus_scores, evaluate_completion, make_task
from quantrisk.privacy.inputs import PROVIDERS, InputContext, ReferenceModel, check_inputs, compute_inputs
from quantrisk.privacy.members import MISet
from quantrisk.privacy.options import PrivacyOptions
from quantrisk.privacy.quality import nll_ci
from quantrisk.progress import stage
from quantrisk.results import MetricRow, StudyResult
from quantrisk.scoring import TokenScores, tokenize
from quantrisk.stats import bootstrap_ci, fast_auc, tpr_ci


def _add(skipped: dict[str, int], reason: str, count: int = 1) -> None:
    if count:
        skipped[reason] = skipped.get(reason, 0) + count


def _reference(reference_source: str | Path | ReferenceModel | None) -> ReferenceModel:
    if isinstance(reference_source, ReferenceModel):
        return reference_source
    if reference_source is None:
        return ReferenceModel("none")
    return ReferenceModel(f"path:{reference_source}", lambda: str(reference_source))


def evaluation_safe_calibration(model_source: str | Path, precision: str, mi_set: MISet,
                                spec: CalibrationSpec | None) -> CalibrationSet | None:
    """The calibration set for `precision` (None if its back-end needs none), checked disjoint from `mi_set`."""
    from quantrisk.data.calibration import load_calibration
    from quantrisk.models.load import resolve_source
    from quantrisk.models.quantizers import get_quantizer

    if not get_quantizer(precision).needs_calibration:
        return None
    cal = load_calibration(spec or CalibrationSpec(), resolve_source(model_source))
    cal.check_disjoint((s.text for s in mi_set.samples), f"the member/non-member evaluation set ({mi_set.source})")
    return cal


def privacy_at_precision(
    model_source: str | Path,
    precision: str,
    *,
    samples: MISet,
    device: str = "cpu",
    options: PrivacyOptions | None = None,
    reference_source: str | Path | ReferenceModel | None = None,
    model_label: str | None = None,
    calibration: CalibrationSpec | None = None,
) -> StudyResult:
    """One cell: `model_source` loaded at `precision`; MI attacks (AUC with bootstrap CI, TPR at 1% and
    0.1% FPR) and code completion (CodeBLEU) on the member/non-member set `samples`.

    Only the attack inputs the chosen attacks need are computed (`privacy.inputs`); `reference_source` is the
    reference model (a directory / id, or a lazily resolved `ReferenceModel`), used only if an attack needs it.
    An attack whose input is unavailable (no reference model, no prefix text) is skipped and counted.
    `calibration` (for precisions that need it; default `CalibrationSpec()`) is checked never to overlap `samples`."""
    from quantrisk.environment import environment
    from quantrisk.models.load import load_model

    opts = options or PrivacyOptions()
    mi_set = samples
    choices: list[AttackChoice] = parse_attacks(list(opts.attacks))
    needs = required_inputs(choices)
    check_inputs(needs)
    start = time.perf_counter()
    lm = load_model(model_source, precision, device,
                    calibration=evaluation_safe_calibration(model_source, precision, mi_set, calibration))
    label = model_label or Path(str(model_source)).name
    labels = {"model": label, "precision": lm.record.precision}
    skipped: dict[str, int] = dict(mi_set.skipped)

    ids = tokenize(lm.tokenizer, [s.text for s in mi_set.samples])
    keep = [i for i, x in enumerate(ids) if len(x) >= 2]
    _add(skipped, "sample shorter than 2 tokens", len(ids) - len(keep))
    kept = [mi_set.samples[i] for i in keep]
    ctx = InputContext(lm.model, lm.tokenizer, str(model_source), kept, [ids[i] for i in keep], mi_set, opts, device,
                       _reference(reference_source))
    t0 = time.perf_counter()
    with stage("target model"):
        target: list[TokenScores] = PROVIDERS["target"].fn(ctx)
    score_seconds = time.perf_counter() - t0
    scored_tokens = sum(t.n_scored for t in target)
    # texts longer than the context are scored on their first `context` tokens (or in windows with --stride):
    # counted, and the zlib attack compares with the scored span
    cut = [t.n_scored + 1 < len(t.token_ids) for t in target]
    spans = [lm.tokenizer.decode(t.token_ids[:t.n_scored + 1].tolist()) if c else None for t, c in zip(target, cut,
                                                                                                       strict=True)]
    inputs, unavailable = compute_inputs(needs, ctx, have={"target": target})
    samples_ = kept
    y = np.array([s.label for s in samples_])
    rows: list[dict[str, Any]] = [
        {"kind": "mi", "sample_id": s.id, "label": int(s.label), "n_tokens": int(t.n_scored), "truncated": c, **labels,
         **({"exposure": s.exposure} if s.exposure is not None else {})}
        for s, t, c in zip(samples_, target, cut, strict=True)
    ]
    exposure = np.array([s.exposure or 0 for s in samples_])
    metrics: list[MetricRow] = []
    for c in choices:
        gone = [unavailable[n] for n in sorted(c.attack.needs) if n in unavailable]
        if gone:
            _add(skipped, f"{c.label}: {gone[0]}")
            continue
        values = np.full(len(samples_), np.nan)
        for i, (s, t) in enumerate(zip(samples_, target, strict=True)):
            own = {n: inputs[n][i] for n in c.attack.needs if n != "target"}
            if any(v is None for v in own.values()):
                continue
            v = c(AttackInput(s.text, t, own, spans[i]))
            values[i] = v if math.isfinite(v) else np.nan
        ok = np.isfinite(values)
        _add(skipped, f"{c.label}: score not computable", int((~ok).sum()))
        for row, v in zip(rows, values, strict=False):  # rows[:len(values)] are the MI rows
            row[c.label] = None if not np.isfinite(v) else float(v)
        if ok.sum() < 2 or len(set(y[ok])) < 2:
            _add(skipped, f"{c.label}: too few scored samples for an AUC")
            continue
        ci = bootstrap_ci(fast_auc, values[ok], y[ok], n_resamples=opts.n_resamples, seed=opts.seed)
        al = {**labels, "attack": c.label}
        metrics.append(MetricRow("auc", ci.value, al, ci.low, ci.high))
        for name, fpr in (("tpr@1%fpr", 0.01), ("tpr@0.1%fpr", 0.001)):
            t = tpr_ci(values[ok], y[ok], fpr, n_resamples=opts.n_resamples, seed=opts.seed)
            metrics.append(MetricRow(name, t.value, al, t.low, t.high))
        pv, plo, phi = permutation_auc(values[ok], y[ok], seed=opts.seed, n_resamples=opts.n_resamples)
        metrics.append(MetricRow("permutation_auc", pv, al, plo, phi))  # labels permuted: a sound pipeline gives ≈ 0.5
        for k in sorted(set(exposure[y == 1].tolist()) - {0}):  # members seen k times vs every non-member
            sel = ok & ((y == 0) | (exposure == k))
            if len(set(y[sel])) == 2:
                ck = bootstrap_ci(fast_auc, values[sel], y[sel], n_resamples=opts.n_resamples, seed=opts.seed)
                metrics.append(MetricRow("auc_by_exposure", ck.value, {**al, "exposure": str(k)}, ck.low, ck.high))

    if opts.completion_n > 0:
        tasks = [t for s in samples_ if s.label == 0 and (t := make_task(s.id, s.text, opts.completion_share))][: opts.completion_n]
        if tasks:
            with stage(f"completions {len(tasks)}"):
                scores = evaluate_completion(lm.model, lm.tokenizer, tasks, max_new_tokens=opts.max_new_tokens,
                                             batch_size=opts.completion_batch_size)
            for name, value in corpus_scores(tasks, scores).items():
                metrics.append(MetricRow(name, value, labels))
            rows += [{"kind": "completion", "sample_id": x.id, **{k: v for k, v in vars(x).items() if k != "id"}, **labels}
                     for x in scores]
        else:
            _add(skipped, "completion: no non-member sample with a body to complete")

    for label_value, name in ((1, "member_nll"), (0, "nonmember_nll")):  # token-weighted mean NLL, nats/token
        lps = [t.logprobs for s, t in zip(kept, target, strict=True) if s.label == label_value and len(t.logprobs)]
        if lps:  # 95% bootstrap CI over samples (`privacy.quality`)
            q = nll_ci(lps, n_resamples=opts.n_resamples, seed=opts.seed)
            metrics.append(MetricRow(name, q.value, labels, q.low, q.high))

    rec = lm.record
    metrics += [
        MetricRow("weight_mb", rec.weight_bytes / 2**20, labels),
        MetricRow("nominal_weight_mb", rec.nominal_bytes / 2**20, labels),
        MetricRow("fp16_weight_mb", rec.fp16_bytes / 2**20, labels),
        MetricRow("bits", float(_bits(rec.precision)), labels),
        MetricRow("load_seconds", rec.load_seconds, labels),
        MetricRow("score_tokens_per_second", scored_tokens / max(score_seconds, 1e-9), labels),
        MetricRow("n_samples", float(len(samples_)), labels),
        MetricRow("n_truncated", float(sum(cut)), labels),  # samples longer than the context (scored in part)
    ]
    env = environment(rec.device)
    if ctx.reference.resolved is not None:
        env["reference_model"] = ctx.reference.resolved
    env.update({"load": rec.to_dict(), "mi_set_sha256": mi_set.sha256(), "mi_source": mi_set.source,
                "seed": opts.seed, "n_members": int(y.sum()), "n_nonmembers": int((1 - y).sum())})
    return StudyResult("privacy", metrics, rows, {}, env, skipped, time.perf_counter() - start)


def _bits(precision: str) -> int:
    from quantrisk.precision import parse_precision

    return parse_precision(precision).bits


def resolve_reference(model_source: str | Path, reference_source: str | Path | None, device: str, progress: bool) -> Path | None:
    """The reference model: the one given, else (for a quantrisk-pretrained model) one of the same family
    trained on the same corpus's reference split (built and cached on first use), else None."""
    if reference_source is not None:
        return Path(reference_source)
    from quantrisk.models.pretrain import ensure_reference

    return ensure_reference(model_source, device=device, progress=progress)


def check_n(n: str) -> int | None:
    """`--n` parser: a positive integer or `all`."""
    if n.strip().lower() == "all":
        return None
    try:
        value = int(n)
    except ValueError:
        raise UsageError(f"--n must be a positive integer or 'all', got {n!r}") from None
    if value < 1:
        raise UsageError(f"--n must be at least 1, got {value}")
    return value
