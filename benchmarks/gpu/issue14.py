"""Issue 14 figures in one process. For each precision: load it once and run the privacy cell (AUC [95% bootstrap
CI] for LOSS, zlib, Min-K%++, reference) on one member/non-member set with one set of reference scores; from that
cell's load record: load seconds, weight MB held vs fp16, packed MB, calibration; non-member NLL = token-weighted
mean of the LOSS scores of its non-members. A precision that fails is reported with its one-line reason and the
rest go on. Rows are appended to OUT/issue14.jsonl as they are made (a run cut short by `timeout` keeps what it
finished); the table goes to stdout and OUT/issue14.md.

    python benchmarks/gpu/issue14.py --model DIR --device cuda --n 500 --precisions bf16,torchao-w8a8,...
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ATTACKS = ("loss", "zlib", "minkpp", "reference")


def nonmember_nll(samples: list[dict]) -> float | None:
    """Token-weighted mean NLL (nats/token) of the non-member rows of a privacy cell (LOSS score = mean log-prob)."""
    rows = [r for r in samples if r.get("kind") == "mi" and r.get("label") == 0 and r.get("loss") is not None]
    tokens = sum(r["n_tokens"] for r in rows)
    return -sum(r["loss"] * r["n_tokens"] for r in rows) / tokens if tokens else None


def main() -> None:
    ap = argparse.ArgumentParser(allow_abbrev=False)
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precisions", required=True)
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--calibration", default="reference:128:0")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp"))
    a = ap.parse_args()

    from quantrisk.data.calibration import CalibrationSpec
    from quantrisk.environment import describe_device
    from quantrisk.models.load import load_model
    from quantrisk.precision import availability
    from quantrisk.privacy.inputs import ReferenceModel
    from quantrisk.privacy.members import load_mi_set
    from quantrisk.privacy.options import PrivacyOptions
    from quantrisk.privacy.study import privacy_at_precision, resolve_reference

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_file = out / "issue14.jsonl"
    spec = CalibrationSpec.parse(a.calibration)
    opts = PrivacyOptions(attacks=ATTACKS, completion_n=0, progress=False)
    mi_set = load_mi_set(a.model, a.n, seed=0)

    def find_reference() -> str | None:
        found = resolve_reference(a.model, None, a.device, False)
        return str(found) if found is not None else None

    reference = ReferenceModel(f"auto:{a.model}", find_reference)
    device_name = describe_device(a.device)
    load_model(a.model, "fp32", a.device)  # warm-up: one-time imports would otherwise land in the first row's load s
    results = []
    for name in [p.strip() for p in a.precisions.split(",") if p.strip()]:
        row: dict = {"precision": name, "device": device_name}
        ok, why = availability(name, a.device)
        if not ok:
            row["error"] = f"unavailable: {why}"
        else:
            try:
                cell = privacy_at_precision(a.model, name, samples=mi_set, device=a.device, options=opts,
                                            reference_source=reference, calibration=spec)
                rec = cell.environment["load"]
                row.update(load_s=rec["load_seconds"], weight_mb=rec["weight_bytes"] / 2**20,
                           fp16_mb=rec["fp16_bytes"] / 2**20, packed_mb=rec["nominal_bytes"] / 2**20,
                           implementation=rec["implementation"], library=f"{rec['library']} {rec['library_version']}",
                           activations=rec["activations"], calibration=rec["calibration"],
                           nonmember_nll=nonmember_nll(cell.samples))
                for m in cell.metrics:
                    if m.name == "auc":
                        row[f"auc_{m.labels['attack']}"] = [m.value, m.ci_low, m.ci_high]
                row["privacy_s"] = round(cell.seconds, 2)
            except Exception as exc:  # noqa: BLE001 - one failing back-end must not stop the others
                row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        results.append(row)
        with rows_file.open("a") as fh:
            fh.write(json.dumps(row, default=str) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "calibration"}, default=str), flush=True)

    def fmt(v: object) -> str:
        if isinstance(v, list):
            return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    attacks = sorted({k for r in results for k in r if k.startswith("auc_")})
    lines = [f"model {a.model}, device {device_name}, n = {a.n} + {a.n}, calibration {spec.source} "
             f"n={spec.n} seed={spec.seed}", "",
             "| precision | load s | weight MB | fp16 MB | packed MB | non-member NLL | " + " | ".join(attacks) + " | note |",
             "|---" * (7 + len(attacks)) + "|"]
    for r in results:
        cells = [r["precision"], *(fmt(r.get(k, "—")) for k in ("load_s", "weight_mb", "fp16_mb", "packed_mb",
                                                                "nonmember_nll")),
                 *(fmt(r.get(k, "—")) for k in attacks), r.get("error", r.get("implementation", ""))]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (out / "issue14.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
