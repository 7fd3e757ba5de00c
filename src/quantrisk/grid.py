"""Expand a spec into cells, deduplicate shared work, and order cells so dependencies come first.

Cells of a spec:
    pretrain(model, seed, role=target)      one per zoo model a study uses and replicate seed (cached on disk too)
    pretrain(model, seed, role=reference)   one per zoo model and seed when the privacy study uses a reference attack
    sql-pretrain(model, seed, data)         trojan base: a zoo model pretrained on code + the clean SQL train rows
    privacy(model, precision, seed)         depends on the model's pretrain cells
    privacy-blind(model, seed)              model-free baselines of the seed's member / non-member set
    privacy-summary                         best attack + quality-risk correlation; depends on every privacy cell
    finetune(model, dap1, kind, seed)       kind = poisoned | clean; depends on the model's pretrain cell
    trojan(model, dap1, kind, seed, dap2)   depends on its finetune cell (one fine-tune feeds every DAP2)
    qattack(model, seed)                    quantization-conditioned backdoor: inject, repair, verify, defence, scan
    synthetic(index, seed)                  runner self-test cells; depend on one shared parent

Replicate seeds vary everything a training run varies: a zoo model of replicate seed r is pretrained with seed
`model.seed + r` (its initialisation, data order and, in the exposure regime, its member / non-member / reference
split); the privacy cells of r draw their N + N set with seed r, the trojan cells fine-tune with seed r (on split r
where the study's `split_seed` is null, as in the demo).
"""

from __future__ import annotations

from collections.abc import Iterable

import quantrisk.studies  # noqa: F401 - the plugged-in studies register their cell kinds (from below) in `cells`
from quantrisk.cells import Cell
from quantrisk.config import Spec
from quantrisk.errors import UsageError


def pretrain_seed(model_seed: int, replicate: int) -> int:
    """The pretraining seed of a zoo model in replicate `replicate`: the model's own seed plus the replicate seed."""
    return model_seed + replicate


def _model_cells(spec: Spec, label: str, out: dict[str, Cell], *, reference: bool, replicate: int = 0,
                 sql: dict[str, object] | None = None) -> dict[str, object]:
    """Params naming the model (+ ids of its pretrain cells for replicate seed `replicate`, added to `out`). `sql`:
    the trojan study's data (a zoo base for it is pretrained on code + the clean SQL training rows)."""
    m = spec.model(label)
    params: dict[str, object] = {"model": m.source_params(), "label": label}
    seed = pretrain_seed(m.seed, replicate)
    if m.zoo is not None and sql is not None:
        base = Cell("sql-pretrain", {"arch": m.zoo, "size": m.size, "seed": seed, "label": label,
                                     "device": spec.device, **sql}, (), f"pretrain {label} (code + SQL)")
        out.setdefault(base.id, base)
        params["model_cell"] = base.id
    elif m.zoo is not None:
        target = Cell("pretrain", {"arch": m.zoo, "size": m.size, "seed": seed, "role": "target", "label": label,
                                   **m.pretrain_params(),
                                   "device": spec.device}, (), f"pretrain {label}")
        out.setdefault(target.id, target)
        params["model_cell"] = target.id
        if reference and m.reference is None:
            ref = Cell("pretrain", {"arch": m.zoo, "size": m.size, "seed": seed, "role": "reference", "label": label,
                                    "device": spec.device, "target_cell": target.id}, (target.id,),
                       f"pretrain {label} reference")
            out.setdefault(ref.id, ref)
            params["reference_cell"] = ref.id
    if m.reference is not None:
        params["reference_path"] = m.reference
    return params


def _deps(params: dict[str, object]) -> tuple[str, ...]:
    return tuple(str(params[k]) for k in ("model_cell", "reference_cell", "finetune_cell", "parent_cell") if params.get(k))


MAX_CELLS = 100_000  # a grid larger than this is refused before it is expanded (expansion alone took minutes)


def grid_size(spec: Spec) -> tuple[int, list[str]]:
    """(an upper bound on the number of cells of `spec`, one `study: a × b × ...` line per study), computed from
    the factors without expanding the grid."""
    n_seeds = len(spec.seeds)
    parts: list[str] = []
    total = 0
    if (p := spec.studies.privacy) is not None:
        models = len(p.models or spec.models)
        k = models * len(spec.privacy_precisions()) * n_seeds
        total += k + 2 * models + 1 + n_seeds  # + pretrain target/reference, summary, one blind cell a seed
        parts.append(f"privacy {models} model(s) x {len(spec.privacy_precisions())} precision(s) x {n_seeds} seed(s)")
    if (t := spec.studies.trojan) is not None:
        models = len(t.models or spec.models)
        kinds = 2 if t.clean_ablation else 1
        k = models * len(t.dap1) * kinds * n_seeds * (1 + len(t.dap2))
        total += k + models
        parts.append(f"trojan {models} model(s) x {len(t.dap1)} dap1 x {kinds} kind(s) x {n_seeds} seed(s) x "
                     f"(1 + {len(t.dap2)} dap2)")
    if (q := spec.studies.qattack) is not None:
        models = len(q.models or spec.models)
        total += models * n_seeds
        parts.append(f"qattack {models} model(s) x {n_seeds} seed(s)")
    if (s := spec.studies.synthetic) is not None:
        total += n_seeds * (s.n_cells + 1)
        parts.append(f"synthetic {n_seeds} seed(s) x {s.n_cells} cells")
    return total, parts


def check_grid_size(spec: Spec) -> None:
    """`UsageError` naming the factors when the grid would exceed `MAX_CELLS` cells."""
    total, parts = grid_size(spec)
    if total > MAX_CELLS:
        raise UsageError(f"the grid would have up to {total:,} cells ({'; '.join(parts)}), more than the bound of "
                         f"{MAX_CELLS:,}; use fewer seeds, precisions, models or cells")


def expand(spec: Spec) -> list[Cell]:
    """Every cell of `spec`, deduplicated by id, dependencies first (refused above `MAX_CELLS`, before expanding)."""
    check_grid_size(spec)
    out: dict[str, Cell] = {}
    study = spec.studies.privacy
    if study is not None:
        from quantrisk.precision import parse_precision
        from quantrisk.privacy.attacks import uses_reference_model

        wants_ref = study.reference == "auto" and uses_reference_model(study.attacks)
        knobs = study.cell_params(exclude={"models", "precisions"})
        privacy_ids: list[str] = []
        for label in study.models or [m.label for m in spec.models]:
            for seed in spec.seeds:
                base = _model_cells(spec, label, out, reference=wants_ref, replicate=seed)
                for precision in spec.privacy_precisions():
                    params = {**base, **knobs, "precision": precision, "seed": seed, "device": spec.device}
                    if parse_precision(precision).calibrated:  # only then: other cells keep their ids
                        params["calibration"] = spec.calibration_for("privacy")
                    c = Cell("privacy", params, _deps(params), f"privacy {label} @ {precision} seed {seed}")
                    out.setdefault(c.id, c)
                    privacy_ids.append(c.id)
                bp = {k: v for k, v in base.items() if k in ("model", "label", "model_cell")}
                bp.update({"data": study.data, "n": study.n, "nonmembers": study.nonmembers,
                           "n_resamples": study.n_resamples, "seed": seed})
                blind = Cell("privacy-blind", bp, _deps(bp), f"privacy blind baselines {label} seed {seed}")
                out.setdefault(blind.id, blind)  # after the seed's privacy cells: their rows come first
        summary = Cell("privacy-summary", {"attacks": study.attacks, "n_resamples": study.n_resamples,
                                           "seed": spec.seeds[0]}, tuple(privacy_ids), "privacy summary")
        out.setdefault(summary.id, summary)
    trojan = spec.studies.trojan
    if trojan is not None:
        from quantrisk.precision import parse_precision
        from quantrisk.trojan.options import BASE_PRETRAINING
        from quantrisk.trojan.splits import split_seed_for

        options = trojan.cell_params(exclude={"models", "dap1", "dap2", "clean_ablation"})
        kinds = ["poisoned", "clean"] if trojan.clean_ablation else ["poisoned"]
        for label in trojan.models or [m.label for m in spec.models]:
            sql: dict[str, object] = {"data": trojan.data, "n_rows": trojan.n_rows,
                                      "split_seeds": sorted({split_seed_for(x, trojan.split_seed) for x in spec.seeds})}
            for key in BASE_PRETRAINING:  # the zoo base's pretraining settings, where set
                if getattr(trojan, key) is not None:
                    sql[key] = getattr(trojan, key)
            for seed in spec.seeds:
                base = _model_cells(spec, label, out, reference=False, replicate=seed, sql=sql)
                for dap1 in trojan.dap1:
                    for kind in kinds:
                        fp = {**base, **options, "dap1": dap1, "kind": kind, "seed": seed, "device": spec.device}
                        ft = Cell("finetune", fp, _deps(fp), f"finetune {label} {kind} @ {dap1} seed {seed}")
                        out.setdefault(ft.id, ft)
                        for dap2 in trojan.dap2:
                            ep = {**fp, "dap2": dap2, "finetune_cell": ft.id}
                            if parse_precision(dap2).calibrated:  # only then: other cells keep their ids
                                ep["calibration"] = spec.calibration_for("trojan")
                            c = Cell("trojan", ep, _deps(ep), f"trojan {label} {kind} {dap1}->{dap2} seed {seed}")
                            out.setdefault(c.id, c)
    qattack = spec.studies.qattack
    if qattack is not None:
        options = qattack.cell_params(exclude={"models"})
        for label in qattack.models or [m.label for m in spec.models]:
            for seed in spec.seeds:
                qp = {"model": spec.model(label).source_params(), "label": label, **options, "seed": seed,
                      "device": spec.device}
                c = Cell("qattack", qp, (), f"qattack {label} -> {','.join(qattack.targets)} seed {seed}")
                out.setdefault(c.id, c)
    synth = spec.studies.synthetic
    if synth is not None:
        for seed in spec.seeds:
            parent_id = None
            if synth.shared_parent:
                parent = Cell("synthetic", {"index": -1, "seed": seed, "work_seconds": synth.work_seconds,
                                            "samples_per_cell": 0}, (), f"synthetic parent seed {seed}")
                out.setdefault(parent.id, parent)
                parent_id = parent.id
            for i in range(synth.n_cells):
                sp = {"index": i, "seed": seed, "work_seconds": synth.work_seconds,
                      "samples_per_cell": synth.samples_per_cell, "parent_cell": parent_id}
                c = Cell("synthetic", sp, _deps(sp), f"synthetic {i} seed {seed}")
                out.setdefault(c.id, c)
    return toposort(out.values())


def toposort(cells: Iterable[Cell]) -> list[Cell]:
    """Cells ordered so each comes after its dependencies (stable: original order among ready cells).

    Raises `UsageError` for a dependency on an unknown cell or a cycle (naming the cells in it)."""
    cells = list(cells)
    by_id = {c.id: c for c in cells}
    for c in cells:
        missing = [d for d in c.deps if d not in by_id]
        if missing:
            raise UsageError(f"cell {c.label or c.id} depends on unknown cell(s) {', '.join(missing)}")
    done: set[str] = set()
    order: list[Cell] = []
    pending = list(cells)
    while pending:
        ready = [c for c in pending if all(d in done for d in c.deps)]
        if not ready:
            names = ", ".join(c.label or c.id for c in pending[:6])
            raise UsageError(f"the cells form a dependency cycle: {names}")
        for c in ready:
            done.add(c.id)
            order.append(c)
        ready_ids = {c.id for c in ready}
        pending = [c for c in pending if c.id not in ready_ids]
    return order
