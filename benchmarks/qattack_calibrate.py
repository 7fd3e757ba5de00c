"""Calibrate and measure `quantrisk scan` (issue 16): scan clean zoo models and models attacked by `quantrisk qattack`.

    PYTHONPATH=src python3 benchmarks/qattack_calibrate.py --attacked RUN1,RUN2,... --precisions rtn-w4g64,rtn-w8g128 \
        --clean-archs pythia,codegen,gptneo,llama --out DIR

Negatives: the zoo's tiny models (pretrained on the stdlib, seed 0, as `quantrisk demo` uses them), and the clean
SQL base and the injected (not repaired) model of every attack run (trained without knowledge of the quantizer;
the injected one is malicious in fp32 too, so nothing appears only once quantized). Positives: the repaired model
of every attack run. Each model is scanned at every precision with the built-in probes. Writes `scans.jsonl`
(one scan per model) and `calibration.json` / `calibration.md`: per model the two signals (largest weight pile-up
over the precisions, largest payload rise), the verdict under the package thresholds, TPR / FPR, and the range
of thresholds that separates the two groups.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--attacked", default="", help="comma-separated qattack output dirs")
    ap.add_argument("--precisions", required=True)
    ap.add_argument("--clean-archs", default="pythia,codegen,gptneo,llama")
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--n-sql", type=int, default=24, help="built-in SQL probes (the scan's default: 24)")
    ap.add_argument("--n-prefixes", type=int, default=8, help="first N trigger-like prefixes (the scan's default: all 8)")
    args = ap.parse_args()

    from quantrisk.models.pretrain import ensure_pretrained
    from quantrisk.qattack.probes import PREFIXES, builtin_probes
    from quantrisk.qattack.scan import PAYLOAD_DELTA_MAX, PILEUP_MAX, scan_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    precisions = [p for p in args.precisions.split(",") if p]
    models: list[tuple[str, str, bool]] = []  # (label, dir, attacked)
    for arch in [a for a in args.clean_archs.split(",") if a]:
        models.append((f"zoo {arch}-tiny", str(ensure_pretrained(arch, "tiny", progress=False)), False))
    for run in [r for r in args.attacked.split(",") if r]:
        meta = json.loads((Path(run) / "qattack.json").read_text())
        tag = f"{meta['model']} seed {meta['seed']} -> {','.join(meta['targets'])}"
        if not any(m[1] == meta["base"] for m in models):
            models.append((f"SQL base of {meta['model']}", meta["base"], False))
        if not any(m[1] == meta["paths"]["injected"] for m in models):  # several repairs may share one injection
            models.append((f"injected {meta['model']} (seed {meta['seed']} run)", meta["paths"]["injected"], False))
        models.append((f"repaired {tag}", meta["paths"]["repaired"], True))
    probes = builtin_probes(args.n_sql)
    prefixes = PREFIXES[: args.n_prefixes]
    done = {}
    scans_file = out / "scans.jsonl"
    if scans_file.is_file():
        for line in scans_file.read_text().splitlines():
            rec = json.loads(line)
            done[rec["path"]] = rec
    for label, path, attacked in models:
        if path in done:
            continue
        res = scan_model(path, precisions, probes, prefixes=prefixes, max_new_tokens=args.max_new_tokens)
        rec = {"label": label, "path": path, "attacked": attacked, "scan": res}
        with scans_file.open("a") as fh:
            fh.write(json.dumps(rec, default=str) + "\n")
        done[path] = rec
        print(f"{label}: {res['verdict']}", flush=True)
    rows = []
    for label, path, attacked in models:
        per = done[path]["scan"]["per_precision"]
        pile = max((f["weights"]["pileup"] for f in per.values() if "weights" in f), default=0.0)
        rise = max(f["payload_delta_max"] for f in per.values())
        kl = max(f["kl"] for f in per.values())
        rows.append({"label": label, "attacked": attacked, "pileup": pile, "payload_rise": rise, "kl": kl,
                     "verdict": done[path]["scan"]["verdict"]})
    pos = [r for r in rows if r["attacked"]]
    neg = [r for r in rows if not r["attacked"]]
    tpr = sum(r["verdict"] == "suspicious" for r in pos) / len(pos) if pos else None
    fpr = sum(r["verdict"] == "suspicious" for r in neg) / len(neg) if neg else None
    summary = {"precisions": precisions, "n_probes": len(probes), "prefixes": list(prefixes), "thresholds": {"pileup_max": PILEUP_MAX, "payload_delta_max": PAYLOAD_DELTA_MAX},
               "tpr": tpr, "fpr": fpr, "n_attacked": len(pos), "n_clean": len(neg),
               "pileup_clean_max": max((r["pileup"] for r in neg), default=None),
               "pileup_attacked_min": min((r["pileup"] for r in pos), default=None), "rows": rows}
    (out / "calibration.json").write_text(json.dumps(summary, indent=2))
    lines = ["| model | attacked | max pile-up | max payload rise | max KL | verdict |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {'yes' if r['attacked'] else 'no'} | {r['pileup']:.2f} | {r['payload_rise']:+.3f} | "
              f"{r['kl']:.4f} | {r['verdict']} |" for r in rows]
    lines += ["", f"TPR {tpr} ({len(pos)} attacked), FPR {fpr} ({len(neg)} clean); thresholds pile-up > {PILEUP_MAX}, "
              f"payload rise > {PAYLOAD_DELTA_MAX}; clean pile-up max {summary['pileup_clean_max']}, attacked min "
              f"{summary['pileup_attacked_min']}"]
    (out / "calibration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
