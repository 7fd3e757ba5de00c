"""One number format per quantity (quantrisk.formats), checked by known answers and by scanning a generated
report (HTML and Markdown); report.md at most 100 columns."""

from __future__ import annotations

import html as htmllib
import re

import pytest

from quantrisk import formats as F
from quantrisk.report.render_md import too_wide
from quantrisk.results import MetricRow, StudyResult
from quantrisk.studies import build_report
from test_report import _store


@pytest.mark.parametrize(("fn", "x", "want"), [
    (F.prob, 0.8125, "0.812"), (F.prob, 0.875, "0.875"), (F.prob, 1.0, "1.000"),
    (F.delta, -0.0004, "0.000"), (F.delta, 0.0004, "0.000"), (F.delta, -0.25, "-0.250"), (F.delta, 0.009, "+0.009"),
    (F.bound, -5e-05, "-0.00005"), (F.bound, 4e-06, "+0.000004"), (F.bound, -1e-09, "-<0.000001"),
    (F.bound, 0.0, "0.000"), (F.bound, -0.0123, "-0.012"),
    (F.pvalue, 0.3747, "0.375"), (F.pvalue, 1.0, "1.000"), (F.pvalue, 0.02787, "0.028"),
    (F.pvalue, 2.011e-07, "<0.001"), (F.pvalue, 0.001, "0.001"),
    (F.params, 1.842e6, "1.84 M"), (F.params, 6.74e9, "6.74 B"), (F.params, 512, "512"),
    (F.count, 12345.0, "12,345"), (F.megabytes, 1.8423, "1.84 MB"), (F.seconds, 12.34, "12.3 s"),
    (F.seconds, 245.0, "4 min 05 s"), (F.number, 1.842e6, "1,842,000"), (F.number, 0.00004, "0.00004"),
    (F.number, -0.0, "0.000"), (F.number, None, "—"), (F.number, 3, "3"),
])
def test_formats_known_answers(fn, x, want):
    assert fn(x) == want


def test_an_interval_keeps_each_bound_on_its_side_of_zero():
    # an upper bound of -5e-05 printed as -0.000 would read as an interval that includes 0
    assert F.with_ci(-0.0004, -0.0008, -5e-05, signed=True) == "0.000\u00a0[-0.001,\u00a0-0.00005]"
    assert F.interval(-0.0004, 0.0004, signed=True) == "[-0.0004,\u00a0+0.0004]"
    assert F.with_ci(0.5, None, None) == "0.500"


@pytest.mark.parametrize("bad", ["-0.000", "+0.000", "−0.000", "[-0, 1]", "1.842e+06", "p 2.011e-07", "0.02787",
                                 "0.8125 [0.7, 0.9]"])
def test_scanner_flags_every_form_the_formats_never_write(bad):
    assert F.violations(f"x {bad} y"), bad


@pytest.mark.parametrize("good", ["0.812 [0.771, 0.850]", "-0.250 [-0.321, -0.179]", "[-0.0008, -0.00005]",
                                  "p <0.001", "rtn-w2g64", "2026-12-06 21:03 UTC", "torch 2.13.0+cpu", "1.84 M",
                                  "sha256 ec00fc6c4f61", "n=10", "0.000"])
def test_scanner_passes_the_formats_it_writes(good):
    assert F.violations(f"x {good} y") == []


def _visible_text(page: str) -> str:
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    page = re.sub(r'src="data:image/png;base64,[^"]+"', " ", page)
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", page))


def test_generated_report_has_one_number_format_and_fits_100_columns(tmp_path):
    from quantrisk.privacy.summary import summarize
    from quantrisk.store import Store

    # the fake run of test_report, with the paired comparisons replaced by stored rows whose CI bounds sit a hair
    # from 0 (the report reads the stored summary, computes nothing)
    lab = {"model": "pythia-tiny", "seed": "0", "baseline": "fp32", "attack": "zlib"}
    paired = [MetricRow("delta_auc", -0.0004, {**lab, "precision": "quanto-int8"}, -0.0008, -5e-05),
              MetricRow("delong_p", 2.011e-07, {**lab, "precision": "quanto-int8"}),
              MetricRow("delong_p_holm", 0.02787, {**lab, "precision": "quanto-int8"}),
              MetricRow("delta_auc", -0.25, {**lab, "precision": "rtn-w2g64"}, -0.32, -0.18),
              MetricRow("delong_p", 0.3747, {**lab, "precision": "rtn-w2g64"}),
              MetricRow("delong_p_holm", 1.0, {**lab, "precision": "rtn-w2g64"})]
    _store(tmp_path / "base", trojan=False)
    with Store(tmp_path / "base", create=False) as st:
        ids = [c["id"] for c in st.cells("privacy")]
        base = summarize([m for i in ids for m in st.metric_rows(i)], [r for i in ids for r in st.sample_rows(i)],
                         attacks=["zlib", "loss"])
    summary = StudyResult("privacy-summary", [m for m in base.metrics if m.name not in
                                              ("delta_auc", "delong_p", "delong_p_holm", "delta_tpr@1%fpr")] + paired,
                          base.samples, base.artifacts, base.environment, base.skipped)
    _store(tmp_path / "run", summary_result=summary)
    rep = build_report(tmp_path / "run", tmp_path / "out")
    md = rep.markdown.read_text()
    page = _visible_text(rep.html.read_text())
    assert F.violations(md) == [] and F.violations(page) == []
    assert too_wide(md) == []
    assert "<details>" not in md and "<summary>" not in md and "<br" not in md
    # the bound that excludes 0 by 5e-05 keeps its sign; the p-values are in the one style; the row is highlighted
    # only when its CI lies wholly beyond the margin (rtn-w2g64: [-0.32, -0.18] beyond ±0.02)
    assert "-0.00005]" in md and "<0.001" in md and "0.028" in md
    page_html = rep.html.read_text()
    start = page_html.index('<h2 id="s-paired-comparisons">')
    section = page_html[start:page_html.index("</section>", start)]
    rows = re.findall(r'<tr( class="hl")?><td>pythia-tiny</td><td>(quanto-int8|rtn-w2g64)</td><td>zlib', section)
    assert sorted(rows) == [("", "quanto-int8"), (' class="hl"', "rtn-w2g64")]
    paired_md = md[md.index("## Paired comparisons"):md.index("## ", md.index("## Paired comparisons") + 3)]
    assert paired_md.index("rtn-w2g64") < paired_md.index("quanto-int8")  # largest |ΔAUC| first
