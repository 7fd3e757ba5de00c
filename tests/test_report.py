"""Report and export from a store holding fake privacy + trojan rows (real metric names and labels)."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest

from quantrisk.cells import Cell
from quantrisk.errors import UsageError
from quantrisk.report import build_report, export_run
from quantrisk.results import MetricRow, StudyResult
from quantrisk.store import Store

PRECS = [("fp32", 0.30, 0.80), ("quanto-int8", 0.25, 0.70), ("rtn-w2g64", 0.10, 0.55)]  # (precision, codebleu, auc)


def _privacy(model: str, prec: str, cb: float, auc: float) -> StudyResult:
    lab = {"model": model, "precision": prec, "seed": "0"}
    metrics = [MetricRow("auc", auc, {**lab, "attack": "zlib"}, auc - 0.05, auc + 0.05),
               MetricRow("auc", auc - 0.1, {**lab, "attack": "loss"}, auc - 0.15, auc - 0.05),
               MetricRow("tpr@1%fpr", 0.1, {**lab, "attack": "zlib"}), MetricRow("codebleu", cb, lab),
               MetricRow("weight_mb", {"fp32": 4.0, "quanto-int8": 1.0, "rtn-w2g64": 4.0}[prec], lab),
               MetricRow("fp16_weight_mb", 2.0, lab)]
    samples = [{"kind": "mi", "sample_id": f"s{i}", "label": i % 2, "zlib": (i % 2) * auc + i * 0.01,
                "loss": -float(i), **lab, "seed": 0} for i in range(20)]
    return StudyResult("privacy", metrics, samples, {}, {"mi_set_sha256": "ab" * 32})


def _trojan(dap2: str, asr: float) -> StudyResult:
    lab = {"model": "llama-tiny", "dap1": "fp32", "kind": "poisoned", "seed": "0", "dap2": dap2}
    metrics = [MetricRow("asr", asr, lab), MetricRow("ftr", 0.02, lab),
               MetricRow("ps_mean", asr / 2, {**lab, "input": "triggered"}), MetricRow("weight_mb", 1.5, {**lab})]
    samples = [{**lab, "prompt_id": f"r{i}", "poisoned": i % 2 == 0, "ps": (0.8 if i % 2 == 0 else 0.01) + i * 0.001,
                "output": "DROP TABLE t;"} for i in range(10)]
    return StudyResult("trojan", metrics, samples)


def _store(path, privacy: bool = True, trojan: bool = True):
    with Store(path) as st:
        st.begin_run("fake", "{}", {"python": "3.x", "packages": {"torch": "2.x"}}, "local")
        if privacy:
            for p, cb, auc in PRECS:
                c = Cell("privacy", {"p": p})
                st.add_cells([c])
                st.write_result(c.id, _privacy("pythia-tiny", p, cb, auc))
        if trojan:
            for i, (d2, asr) in enumerate([("fp32", 1.0), ("int8-dynamic", 0.9), ("rtn-w2g64", 0.2)]):
                c = Cell("trojan", {"i": i})
                st.add_cells([c])
                st.write_result(c.id, _trojan(d2, asr))
        failed = Cell("trojan", {"i": 99}, (), "bad cell")
        st.add_cells([failed])
        st.mark_failed(failed.id, "RuntimeError: boom")


def test_report_has_every_section_and_embedded_images(tmp_path):
    _store(tmp_path / "run")
    rep = build_report(tmp_path / "run", tmp_path / "out")
    assert rep.sections == ["Run summary", "Privacy study", "MI AUC vs bits", "ROC curves", "Quality vs privacy risk",
                            "Trojan study", "ASR and false triggers per DAP1 × DAP2", "Payload signal",
                            "Weight memory", "Failed cells", "Environment"]
    html = rep.html.read_text()
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 6 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    assert "src=\"http" not in html and "<script" not in html  # self-contained
    md = rep.markdown.read_text()
    for png in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    # CodeBLEU (0.30, 0.25, 0.10) vs zlib AUC (0.80, 0.70, 0.55): Pearson r = 0.0258333 / sqrt(0.0216667 * 0.0316667) = 0.986 (by hand), Spearman 1
    assert "Pearson r = 0.986" in md and "Spearman r = 1.000" in md
    assert "| pythia-tiny | fp32 | 32 | 0 | 0.800 [0.750, 0.850] | 0.700 [0.650, 0.750] | 0.100 (zlib) | 0.3 | 4 |" in md
    assert "RuntimeError: boom" in md and "torch" in md


@pytest.mark.parametrize("which", ["privacy", "trojan"])
def test_report_with_one_study_only(tmp_path, which):
    _store(tmp_path / "run", privacy=which == "privacy", trojan=which == "trojan")
    rep = build_report(tmp_path / "run", tmp_path / "out")
    assert ("Privacy study" in rep.sections) == (which == "privacy")
    assert ("Trojan study" in rep.sections) == (which == "trojan")
    assert rep.html.stat().st_size > 1000


def test_export_csv_and_parquet(tmp_path):
    _store(tmp_path / "run")
    for fmt in ("csv", "parquet"):
        paths = export_run(tmp_path / "run", tmp_path / fmt, fmt)
        assert [p.name for p in paths] == [f"cells.{fmt}", f"metrics.{fmt}", f"samples.{fmt}"]
        read = pd.read_csv if fmt == "csv" else pd.read_parquet
        m = read(paths[1])
        asr = m[(m["name"] == "asr") & (m["label_dap2"] == "int8-dynamic")]["value"].tolist()
        assert asr == [0.9]
        assert len(read(paths[2])) == 3 * 20 + 3 * 10
        assert set(read(paths[0])["status"]) == {"done", "failed"}
    with pytest.raises(UsageError, match="valid: csv, parquet"):
        export_run(tmp_path / "run", tmp_path / "x", "xlsx")


def test_trojan_table_puts_registered_metrics_first_with_their_orientation(tmp_path):
    from quantrisk.report.tables import trojan_table
    from quantrisk.store import Store

    _store(tmp_path / "run", privacy=False)
    with Store(tmp_path / "run", create=False) as st:
        t = trojan_table(st)
    metric_cols = t.columns[5:]
    assert metric_cols == ["asr ↓", "ftr ↓", "ps_mean[input=triggered] ↓", "weight_mb"]
    assert [r[3] for r in t.rows] == ["fp32", "int8-dynamic", "rtn-w2g64"] and [r[5] for r in t.rows] == [1.0, 0.9, 0.2]
