"""`quantrisk privacy`: membership-inference risk and completion quality across precisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from quantrisk.commands._options import check_bounds, settings_from_cli, study_options
from quantrisk.commands._output import say
from quantrisk.privacy.options import PrivacyOptions, PrivacySettings

DEFAULT_PRECISIONS = "fp32,int8-dynamic,quanto-int8,quanto-int4,rtn-w2g64"


@study_options(PrivacySettings)
def privacy_cmd(
    model: str = typer.Option(..., help="Model directory (a quantrisk-pretrained one has its member split) or hub id."),
    out: Path = typer.Option(..., help="Output directory: metrics.json + samples.jsonl, and the results store "
                                       "(results.sqlite, cells/): rerun on it to resume."),
    precisions: str = typer.Option(DEFAULT_PRECISIONS, help="Comma-separated precision strings."),
    reference: str = typer.Option(None, help="Reference model dir (default: built for quantrisk-pretrained models)."),
    data: Path = typer.Option(None, help="Labelled JSONL (text, label) or members JSONL (with --nonmembers)."),
    nonmembers: Path = typer.Option(None, help="Non-members JSONL (text) when --data holds the members."),
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:N or auto."),
    seed: int = typer.Option(0, help="Seed of the sampling and the bootstrap."),
    calibration: str = typer.Option("reference", help="Calibration data of calibrated precisions (w8a8-static...): "
                                    "SOURCE[:N[:SEED]], SOURCE = reference (the model's reference split) or a "
                                    "JSONL file with 'text'; default N 128, seed 0. Never overlaps the evaluation set."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    ci: bool = typer.Option(False, "--ci", help="Also print the AUCs' 95% CIs and TPR at 1% / 0.1% FPR: a second table, one row per precision and attack."),
    quiet: bool = typer.Option(False, help="No progress bars."),
    **options: Any,
) -> None:
    """Run the privacy study: MI attacks (AUC [95% CI], TPR@1%FPR) and CodeBLEU per precision, through the runner
    (a one-model spec; rerun on the same --out to resume). Every option of the spec's studies.privacy is an option
    here, with the same default."""
    from quantrisk.commands._output import (
        check_out_dir,
        print_json,
        print_table,
        print_wrapped,
        skipped_line,
    )
    from quantrisk.commands.probe import calibration_for
    from quantrisk.data.calibration import CalibrationSpec
    from quantrisk.data.corpus import check_mi_jsonl
    from quantrisk.errors import UsageError, about
    from quantrisk.models.load import resolve_device, resolve_source
    from quantrisk.precision import parse_precisions, require_available
    from quantrisk.privacy.attacks import parse_attacks
    from quantrisk.privacy.members import load_mi_set
    from quantrisk.privacy.study import check_n, evaluation_safe_calibration
    from quantrisk.safefs import RUN_MARKERS
    from quantrisk.study_runs import privacy_spec, run_study

    # Everything the user gave is checked before any model is loaded, and nothing is written on a failure.
    with about("--device"):
        dev = resolve_device(device)
    with about("--precisions"):
        names = [require_available(p, dev).name for p in parse_precisions(precisions)]
    with about("--attacks"):
        chosen = tuple(c.label for c in parse_attacks(options["attacks"]))
    if nonmembers is not None and data is None:
        raise UsageError("--nonmembers needs --data (the members file)")
    n_samples = check_n(options["n"])
    check_bounds(PrivacySettings, options)
    settings = settings_from_cli(PrivacySettings, options, attacks=chosen, n=n_samples)
    with about("--calibration"):
        cal_spec = CalibrationSpec.parse(calibration)
    check_out_dir(out, markers=(*RUN_MARKERS, "metrics.json"), kind="study results")
    with about("--model"):
        resolve_source(model)
    with about("--calibration"):
        calibration_for(model, names, cal_spec)
    if reference is not None:
        with about("--reference"):
            resolve_source(reference)
    if data is not None:
        check_mi_jsonl(data, nonmembers)
    mi = load_mi_set(data or model, n_samples, nonmembers=nonmembers, seed=seed)  # N + N exist: checked first
    with about("--calibration"):
        for p in names:  # calibration data of calibrated precisions: found, and disjoint from the evaluation set
            evaluation_safe_calibration(model, p, mi, cal_spec)
    spec = privacy_spec(model, names, data=data, nonmembers=nonmembers, reference=reference, device=dev,
                        options=PrivacyOptions(**dict(settings), seed=seed, progress=not quiet),
                        calibration=cal_spec)
    result = run_study(spec, out, progress=not quiet and not as_json)
    if as_json:
        print_json({k: v for k, v in result.to_dict().items() if k != "samples"})
        return
    print_privacy_table(result, print_table, ci)
    if result.skipped:
        print_wrapped(skipped_line(result.skipped))
    say(f"results written to {out} ({result.seconds:.1f} s)")


def register(app: typer.Typer) -> None:
    """Add `quantrisk privacy` to `app`."""
    app.command("privacy")(privacy_cmd)


def print_privacy_table(result, print_table, ci: bool = False) -> None:  # noqa: ANN001 - internal helper
    from quantrisk.commands._output import print_wrapped

    """Rows: precision; columns: AUC per attack, best TPR@1%FPR, CodeBLEU, weight MB held (packed size below it when
    it differs): fits 100 columns. With `ci`, a second, long table: one row per (precision, attack) with the AUC's
    95% CI and TPR at 1% / 0.1% FPR."""
    precs = list(dict.fromkeys(m.labels["precision"] for m in result.metrics if "precision" in m.labels))
    attacks = list(dict.fromkeys(m.labels["attack"] for m in result.metrics if m.name == "auc"))

    def get(name, prec, attack=None):  # noqa: ANN001, ANN202
        for m in result.metrics:
            if m.name == name and m.labels.get("precision") == prec and (attack is None or m.labels.get("attack") == attack):
                return m
        return None

    rows = []
    for p in precs:
        row = [p]
        for a in attacks:
            m = get("auc", p, a)
            row.append(f"{m.value:.3f}" if m else "—")
        tprs = [(get("tpr@1%fpr", p, a).value, a) for a in attacks if get("tpr@1%fpr", p, a)]
        best = max(tprs) if tprs else None
        cb, mb, nominal = get("codebleu", p), get("weight_mb", p), get("nominal_weight_mb", p)
        size = f"{mb.value:.2f}" if mb else "—"
        if mb and nominal and abs(nominal.value - mb.value) > 1e-6:  # simulated (rtn): held in fp, counted at its bits
            size += f"\n{nominal.value:.2f}"
        row += [f"{best[0]:.3f}\n{best[1]}" if best else "—", f"{cb.value:.3f}" if cb else "—", size]
        rows.append(row)
    print_table("privacy: MI AUC per attack (--ci: with 95% CIs, one row per attack)", ["precision", *attacks,
                "TPR@1%", "CodeBLEU", "MB"], rows)
    print_wrapped("TPR@1%: the best attack's TPR at 1% FPR (that attack below it); MB: weight memory held (the packed "
                  "size a real format would need below it, where it differs)")
    if ci:
        print_table("privacy: MI AUC [95% bootstrap CI] and TPR at low FPR, per precision and attack",
                    ["precision", "attack", "AUC", "95% CI", "TPR@1%FPR", "TPR@0.1%FPR"],
                    [[p, a, m.value, f"[{m.ci_low:.3f}, {m.ci_high:.3f}]" if m.ci_low is not None else "—",
                      *(getattr(get(t, p, a), "value", None) for t in ("tpr@1%fpr", "tpr@0.1%fpr"))]
                     for p in precs for a in attacks if (m := get("auc", p, a)) is not None])
    corr = [m for m in result.metrics if m.name.endswith("_r")]
    for m in corr:
        p = next((x for x in result.metrics if x.name == m.name[:-2] + "_p"), None)
        say(f"{m.name[:-2]} correlation CodeBLEU vs AUC({m.labels['attack']}): r = {m.value:.3f}"
              + (f", p = {p.value:.3g}" if p else "") + f" over {m.labels['n']} precisions")
