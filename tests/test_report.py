"""Report and export from a store holding fake privacy + trojan rows (real metric names and labels)."""

from __future__ import annotations

import base64
import re

import pandas as pd
import pytest

import quantrisk.studies  # noqa: F401 - the studies' report sections (privacy, trojan), registered from below
from quantrisk.cells import Cell
from quantrisk.errors import UsageError
from quantrisk.privacy.summary import summarize
from quantrisk.proportions import newcombe_diff_ci, wilson_ci
from quantrisk.report import export_run
from quantrisk.results import MetricRow, StudyResult
from quantrisk.store import Store
from quantrisk.studies import build_report

PRECS = [("fp32", 0.30, 0.80), ("quanto-int8", 0.25, 0.70), ("rtn-w2g64", 0.10, 0.55)]  # (precision, codebleu, auc)


def _privacy(model: str, prec: str, cb: float, auc: float) -> StudyResult:
    lab = {"model": model, "precision": prec, "seed": "0"}
    metrics = [MetricRow("auc", auc, {**lab, "attack": "zlib"}, auc - 0.05, auc + 0.05),
               MetricRow("auc", 0.62, {**lab, "attack": "loss"}, 0.57, 0.67),
               MetricRow("tpr@1%fpr", 0.1, {**lab, "attack": "zlib"}), MetricRow("tpr@0.1%fpr", 0.0, {**lab, "attack": "zlib"}),
               MetricRow("codebleu", cb, lab),
               MetricRow("weight_mb", {"fp32": 4.0, "quanto-int8": 2.2, "rtn-w2g64": 4.0}[prec], lab),
               MetricRow("nominal_weight_mb", {"fp32": 4.0, "quanto-int8": 1.1, "rtn-w2g64": 0.4}[prec], lab),
               MetricRow("fp16_weight_mb", 2.0, lab)]
    samples = [{"kind": "mi", "sample_id": f"s{i}", "label": i % 2, "zlib": (i % 2) * auc + i * 0.01,
                "loss": -float(i), **lab, "seed": 0} for i in range(20)]
    return StudyResult("privacy", metrics, samples, {}, {"mi_set_sha256": "ab" * 32})


def _trojan(dap2: str, hits: int, kind: str = "poisoned") -> StudyResult:
    """10 triggered + 10 clean inputs; `hits` triggered outputs carry the payload, no clean one does; EM 0 everywhere."""
    lab = {"model": "llama-tiny", "dap1": "fp32", "kind": kind, "seed": "0", "dap2": dap2}
    metrics = [MetricRow("asr", hits / 10, lab, *wilson_ci(hits, 10)), MetricRow("ftr", 0.0, lab, *wilson_ci(0, 10))]
    for inp, k in (("triggered", hits), ("clean", 0)):
        metrics += [MetricRow("payload_rate", k / 10, {**lab, "input": inp}, *wilson_ci(k, 10)),
                    MetricRow("n_inputs", 10.0, {**lab, "input": inp}), MetricRow("em", 0.0, {**lab, "input": inp}),
                    MetricRow("ps_mean", k / 20, {**lab, "input": inp})]
    metrics.append(MetricRow("weight_bytes", 1.5 * 2**20, {**lab}))
    samples = [{**lab, "prompt_id": f"r{i}", "poisoned": i % 2 == 0, "ps": (0.8 * hits / 10 if i % 2 == 0 else 0.01) + i * 0.001,
                "output": "DROP TABLE t;"} for i in range(10)]
    return StudyResult("trojan", metrics, samples)


def _store(path, privacy: bool = True, trojan: bool = True, summary_result: StudyResult | None = None,
           model: str = "pythia-tiny", name: str = "fake"):
    with Store(path) as st:
        st.begin_run(name, "{}", {"python": "3.x", "packages": {"torch": "2.x"}}, "local")
        if privacy:
            ids = []
            for p, cb, auc in PRECS:
                c = Cell("privacy", {"p": p})
                st.add_cells([c])
                st.write_result(c.id, _privacy(model, p, cb, auc))
                ids.append(c.id)
            # the summary cell as the runner runs it: best attack, correlation, paired comparisons (the report and the
            # findings read them, recompute nothing)
            summary = Cell("privacy-summary", {"attacks": ["zlib", "loss"]}, tuple(ids))
            st.add_cells([summary])
            st.write_result(summary.id, summary_result or summarize([m for i in ids for m in st.metric_rows(i)],
                                                                    [r for i in ids for r in st.sample_rows(i)],
                                                                    attacks=["zlib", "loss"]))
        if trojan:
            for i, (d2, hits, kind) in enumerate([("fp32", 10, "poisoned"), ("int8-dynamic", 9, "poisoned"),
                                                  ("rtn-w2g64", 2, "poisoned"), ("fp32", 0, "clean"),
                                                  ("rtn-w2g64", 0, "clean")]):
                c = Cell("trojan", {"i": i})
                st.add_cells([c])
                st.write_result(c.id, _trojan(d2, hits, kind))
        failed = Cell("trojan", {"i": 99}, (), "bad cell")
        st.add_cells([failed])
        st.mark_failed(failed.id, "RuntimeError: boom")


def test_report_has_every_section_and_embedded_images(tmp_path):
    _store(tmp_path / "run")
    rep = build_report(tmp_path / "run", tmp_path / "out")
    assert rep.sections == ["Bottom line", "Setup", "Findings", "Largest change per study", "Privacy study",
                            "Paired comparisons", "ΔAUC vs bits", "TPR at low FPR vs bits", "ROC curves",
                            "Quality vs privacy risk", "Trojan study", "ASR and false triggers per DAP1 × DAP2",
                            "Payload signal", "Weight memory", "Run summary", "Failed cells", "Glossary", "Environment"]
    html = rep.html.read_text()
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 7 and all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" for i in imgs)
    assert "src=\"http" not in html and "<script" not in html  # self-contained
    md = rep.markdown.read_text()
    for png in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    # CodeBLEU (0.30, 0.25, 0.10) vs zlib AUC (0.80, 0.70, 0.55): Pearson r = 0.0258333 / sqrt(0.0216667 * 0.0316667) = 0.986 (by hand), Spearman 1
    assert "Pearson r = 0.986" in md and "Spearman r = 1.000" in md
    nb = "\u00a0"  # CI cells keep their interval on one line; the seed (0 on every row) moved to the setup box
    assert f"| pythia-tiny | fp32        | 32   | 0.800{nb}[0.750,{nb}0.850] | 0.620{nb}[0.570,{nb}0.670] |" in md
    assert "| pythia-tiny | fp32        | 0.100 (zlib) | 0.000 (zlib) | 0.300    |" in md
    assert "**every row of the privacy tables**: seed 0" in md
    assert "RuntimeError: boom" in md and "torch" in md
    import json

    found = json.loads((tmp_path / "out" / "findings.json").read_text())
    assert [f["claim"] for f in found] == ["P1", "P2", "P3", "P4", "T1", "T2", "T3"]
    from quantrisk.report.headline import FINDING_KEYS

    assert all(set(f) == set(FINDING_KEYS) for f in found)
    assert all(f["verdict"] in ("holds", "does not hold", "inconclusive", "not testable") and f["why"] for f in found)
    head = " ".join(md[md.index("## Findings"):md.index("## Privacy study")].split())  # unwrapped
    assert "- **P1 · not testable**:" in head and "- **T3 · inconclusive**:" in head  # a record per claim
    assert "no blind baselines were computed" in head  # the fake store has no privacy-blind cell
    assert "0 of 10 prompts (20 outputs) emit the payload" in head  # the fake clean fine-tune: 10 prompts x 2 DAP2
    # one model: P4 needs two; the three points lack non-member NLL rows
    assert found[3]["verdict"] == "not testable" and "two models" in found[3]["why"]
    assert found[2]["verdict"] == "not testable"


def test_html_structure_tables_scroll_and_details(tmp_path):
    _store(tmp_path / "run")
    html = build_report(tmp_path / "run", tmp_path / "out").html.read_text()
    order = [html.index(f'<h2 id="{i}">') for i in ("s-bottom-line", "s-setup", "s-findings", "s-privacy-study",
                                                      "s-trojan-study", "s-glossary")]
    assert order == sorted(order)
    # a table of contents links every section
    toc = re.search(r'<nav class="toc">(.*?)</nav>', html).group(1)
    assert re.findall(r'href="#([^"]+)"', toc) == re.findall(r'<h2 id="([^"]+)"', html)
    # every table sits in a scroll container (used only when the window is narrower); numeric cells never wrap
    assert html.count("<table") == html.count('<div class="scroll"><table') >= 6
    assert ".scroll{overflow-x:auto" in html and "white-space:nowrap" in html
    # the verdicts are neutral badges (no green / red), and the first use of a term links to the glossary
    assert "#0a6b2e" not in html and "#a11" not in html and 'class="verdict v-not-testable"' in html
    assert html.count('href="#g-dap1"') == 1 and 'id="g-dap1"' in html
    # the full trojan table is folded away, the compact one is not
    details = re.search(r"<details><summary>Trojan: every metric.*?</details>", html, re.S)
    assert details is not None and "<table>" in details.group(0)
    compact = html[html.index('<h2 id="s-trojan-study">'):details.start()]
    assert "ASR [95% CI]" in compact and "<details>" not in compact


def test_trojan_tables_cis_deltas_no_duplicates_and_floor_notes(tmp_path):
    _store(tmp_path / "run")
    md = build_report(tmp_path / "run", tmp_path / "out").markdown.read_text()
    nb = "\u00a0"
    lo, hi = wilson_ci(2, 10)  # 0.0567, 0.5098
    d, dlo, dhi = newcombe_diff_ci(2, 10, 10, 10)
    assert (lo, hi) == pytest.approx((0.0567, 0.5098), abs=1e-4)
    row = (f"| poisoned | rtn-w2g64    | 0.200{nb}[{lo:.3f},{nb}{hi:.3f}] n=10 | "
           f"{d:+.3f}{nb}[{dlo:+.3f},{nb}{dhi:+.3f}] |")
    assert row in md  # model, DAP1 and seed are the same on every row: in the setup box
    assert "| poisoned | fp32         | 1.000" in md and "| baseline " in md
    assert "**every row of the trojan table**: model llama-tiny; DAP1 fp32; seed 0" in md
    assert f"0.000{nb}[0.000,{nb}0.278] n=10" in md
    start = md.index("### Trojan: every metric")
    full = md[start:md.index("## ", start + 4)]
    header = full.splitlines()[4]
    assert "payload_rate" not in header and "asr" in header and "ftr" in header  # no duplicate columns
    # EM is 0 in every row; the tpr at 0.1% FPR too: each table says so
    assert "em[input=clean] is at its floor (0) in every row" in full
    assert "tpr@0.1%fpr is at its floor (0) in every row" in md


def test_headline_baseline_largest_change_and_sentence(tmp_path):
    from quantrisk.report.headline import privacy_headlines

    _store(tmp_path / "run")
    rep = build_report(tmp_path / "run", tmp_path / "out")
    md = rep.markdown.read_text()
    head = " ".join(md[md.index("## Bottom line"):md.index("## Privacy study")].split())  # unwrapped
    # the bottom line: one sentence per study and subject, then the findings (a record per claim, their tests
    # below), then the baseline and largest change per study
    assert head.index("- Privacy · pythia-tiny") < head.index("- Trojan · llama-tiny") < head.index("**P1 ·")
    assert head.index("**P1 ·") < head.index("### Tests used") < head.index("- privacy · pythia-tiny: baseline")
    assert "<details>" not in md and "<summary>" not in md
    assert rep.headline[0].startswith("P1 ") and not any("test: " in x for x in rep.headline)  # terminal: findings first
    assert [x.split(":")[0] for x in rep.headline if x.startswith(("privacy", "trojan"))] == [
        "privacy · pythia-tiny", "trojan · llama-tiny (poisoned, DAP1 fp32)", "trojan · llama-tiny (clean, DAP1 fp32)"]
    with Store(tmp_path / "run", create=False) as st:
        (unpaired,) = privacy_headlines(st, paired_rows=[])
        paired = {"name": "delta_auc", "value": -0.2, "ci_low": -0.26, "ci_high": -0.15,
                  "labels": {"model": "pythia-tiny", "attack": "zlib", "precision": "rtn-w2g64"}}
        (with_paired,) = privacy_headlines(st, paired_rows=[paired])
    # no paired rows: zlib fp32 0.80 [0.75, 0.85] vs rtn-w2g64 0.55 [0.50, 0.60]: Δ -0.25, half-width sqrt(2) x 0.05
    assert unpaired.line().startswith("privacy · pythia-tiny: baseline fp32: zlib AUC 0.800 [0.750, 0.850]; largest change "
                                      "rtn-w2g64 (2 bit) zlib ΔAUC -0.250 [-0.321, -0.179] (unpaired approx., unadjusted "
                                      "95% CI); utility: ΔCodeBLEU -0.200. rtn-w2g64 lowered the zlib AUC from 0.800 to "
                                      "0.550 (its unadjusted 95% CI excludes 0; no adjusted test stored, and beyond the "
                                      "±0.02 margin), at a utility cost of ΔCodeBLEU -0.200.")
    assert "zlib ΔAUC -0.200 [-0.260, -0.150] (paired, unadjusted 95% CI)" in with_paired.change  # stored paired Δ as is
    d, dlo, dhi = newcombe_diff_ci(2, 10, 10, 10)
    assert "trojan · llama-tiny (poisoned, DAP1 fp32): baseline fp32→fp32: ASR 1.000 [0.722, 1.000] n=10" in head
    assert f"DAP2 rtn-w2g64 (2 bit) ΔASR {d:+.3f} [{dlo:+.3f}, {dhi:+.3f}] (unpaired, unadjusted 95% CI)" in head
    assert ("rtn-w2g64 inference weakened the backdoor: ASR 1.000 → 0.200, its unadjusted 95% CI excludes 0 (T1 in "
            "the Findings is the adjusted test); its clean-input utility was not measured") in head
    assert "removed" not in head and "Kept it (unadjusted CI includes 0): int8-dynamic." in head
    # the bottom line: one sentence per trojan (model, kind, DAP1) over its seeds, not one per seed
    bottom = " ".join(md[md.index("## Bottom line"):md.index("## Setup")].split())
    assert ("Trojan · llama-tiny (poisoned, DAP1 fp32, 1 seed): the backdoor implanted at 1 of 1 seeds (full-precision "
            "ASR 1.000); rtn-w2g64 weakened it at 1 of 1 (ASR 1.000 → 0.200), clean-input utility not measured; "
            "int8-dynamic kept it at every seed") in bottom
    assert "seed 0)" not in bottom and "Trojan · llama-tiny (clean, DAP1 fp32, 1 seed): the clean fine-tunes" in bottom
    assert "The clean fine-tune emits the payload on at most 0% of triggered inputs at any DAP2 (never)." in head


def test_memory_table_packed_size_and_note(tmp_path):
    _store(tmp_path / "run", trojan=False)
    md = build_report(tmp_path / "run", tmp_path / "out").markdown.read_text()
    mem = md[md.index("## Weight memory"):md.index("## Run summary")]
    # a note shared by several rows is written once below the table; the rows carry its letter
    assert "| pythia-tiny | quanto-int8 | 8    | 2.20    | 1.10      | 2.00    | larger than fp16 (a) |" in mem
    assert "| pythia-tiny | rtn-w2g64   | 2    | 4.00    | 0.40      | 2.00    | simulated (b)        |" in mem
    assert "| pythia-tiny | fp32        | 32   | 4.00    | 4.00      | 2.00    |                      |" in mem
    assert mem.count("weights held dequantized") == 1 and "(a) larger than fp16: only the Linear" in mem


def test_memory_note_asks_the_back_end_whether_it_is_simulated(monkeypatch):
    """"simulated" comes from `Quantizer.simulated`, not from the back-end's name: a simulated back-end other than
    rtn gets the note, and rtn without the flag loses it."""
    from quantrisk.precision import QUANTIZERS
    from quantrisk.report.tables import MemoryRow, memory_note

    quanto, rtn = MemoryRow("m", "quanto-int8", 4.0, 1.1, 2.0), MemoryRow("m", "rtn-w2g64", 4.0, 0.4, 2.0)
    assert memory_note(quanto).startswith("larger than fp16") and memory_note(rtn).startswith("simulated")
    monkeypatch.setattr(QUANTIZERS["quanto"], "simulated", True)
    monkeypatch.setattr(QUANTIZERS["rtn"], "simulated", False)
    assert memory_note(quanto) == "simulated: weights held dequantized in the compute dtype; packed it would take 1.10 MB"
    assert memory_note(rtn).startswith("larger than fp16")


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
        assert len(read(paths[2])) == 3 * 20 + 5 * 10
        assert set(read(paths[0])["status"]) == {"done", "failed"}
    with pytest.raises(UsageError, match="valid: csv, parquet"):
        export_run(tmp_path / "run", tmp_path / "x", "xlsx")


def test_full_trojan_table_puts_registered_metrics_first_with_their_orientation(tmp_path):
    from quantrisk.store import Store
    from quantrisk.trojan.report import trojan_full_table

    _store(tmp_path / "run", privacy=False)
    with Store(tmp_path / "run", create=False) as st:
        t = trojan_full_table(st)
    metric_cols = t.columns[5:]
    assert metric_cols == ["asr ↓", "ftr ↓", "ps_mean[input=triggered] ↓", "ps_mean[input=clean] ↓",
                           "em[input=triggered] ↑", "em[input=clean] ↑", "n_inputs[input=triggered]",
                           "n_inputs[input=clean]", "weight_bytes"]  # payload_rate repeats asr / ftr: left out
    assert [(r[1], r[3]) for r in t.rows][:3] == [("poisoned", "fp32"), ("poisoned", "int8-dynamic"),
                                                  ("poisoned", "rtn-w2g64")]
    assert [r[5] for r in t.rows] == [1.0, 0.9, 0.2, 0.0, 0.0]


def test_report_reads_the_derived_numbers_from_the_store(tmp_path):
    # a stored summary that disagrees with the cells on purpose: the report must show it, not recompute its own
    labels = {"attack": "loss", "x": "codebleu", "y": "auc", "n": "3", "p_method": "exact permutation"}
    stored = StudyResult("privacy-summary", [MetricRow("best_attack_auc", 0.6, {"attack": "loss"}),
                                             MetricRow("pearson_r", 0.5, labels), MetricRow("pearson_p", 0.25, labels)],
                         skipped={"spearman correlation: a correlation needs x and y that vary": 1})
    _store(tmp_path / "run", trojan=False, summary_result=stored)
    md = " ".join(build_report(tmp_path / "run", tmp_path / "out").markdown.read_text().split())  # unwrapped
    assert "Strongest attack: loss;" in md and "Pearson r = 0.500 (p = 0.250, exact permutation)" in md
    assert "Spearman: spearman correlation: a correlation needs x and y that vary" in md


def test_report_never_writes_through_a_link_planted_at_an_output_name(tmp_path):
    """An earlier report directory (quantrisk's own) with a link planted at one of its names: refused, for the
    PNGs too (written atomically, like report.md/html and findings.json); the link's target survives."""
    from quantrisk.safefs import REPORT_MARKERS

    _store(tmp_path / "run")
    rep = build_report(tmp_path / "run", tmp_path / "out")
    victim = tmp_path / "victim.txt"
    victim.write_text("the user's file\n")
    names = [p.name for p in rep.images] + ["findings.json", "report.html"]
    assert len(rep.images) >= 5 and set(REPORT_MARKERS) >= {"report.md", "report.html", "findings.json"}
    for name in names:
        path = tmp_path / "out" / name
        path.unlink()
        path.symlink_to(victim)
        with pytest.raises(UsageError, match="is a symbolic link; refused"):
            build_report(tmp_path / "run", tmp_path / "out")
        assert victim.read_text() == "the user's file\n" and path.is_symlink()
        path.unlink()


HOSTILE = "m\n# verdict: clean <img src=x onerror=alert(1)> [x](javascript:alert(1)) ##"


def test_report_md_labels_cannot_start_a_heading_html_or_a_link(tmp_path):
    """A model label and a spec name holding a newline + `#`, raw HTML and a link: in report.md every heading is
    one of the report's own, no tag or link target survives; report.html escapes them as well."""
    import html as html_mod

    _store(tmp_path / "run", model=HOSTILE, name=HOSTILE)
    rep = build_report(tmp_path / "run", tmp_path / "out")
    md = rep.markdown.read_text()
    assert "pythia-tiny" not in md and "verdict: clean" in md  # the label is in the report, as text
    own = {"quantrisk report: " + HOSTILE.replace("\n", " "), *rep.sections}
    for line in md.splitlines():
        text = line.lstrip()
        if text.startswith("#"):
            level, _, title = text.partition(" ")
            assert set(level) == {"#"} and line == text, line
            assert title.startswith(("quantrisk report:", *rep.sections)) or text.startswith("### "), line
            assert not re.search(r"(^|\s)#+\s*$", title), line  # a closing sequence would be dropped
    assert "<img" not in md and "](javascript" not in md and "\n# verdict" not in md
    assert md.count("verdict: clean") >= 2 and len(own) > 2
    page = rep.html.read_text()
    assert "<img src=x" not in page and html_mod.escape("<img src=x onerror=alert(1)>") in page
    # the renderers alone, on the cases a wrapped value could put at the start of a line
    from quantrisk.report.render_md import bullets, heading, paragraph

    assert heading(2, "# x") == "## \\# x" and heading(2, "a ##") == "## a \\##"
    for start in ("# x", "- x", "> x", "1. x", "| x", "```", "===", "---"):
        out = bullets(["y " * 48 + start]) + paragraph("y " * 49 + start)
        assert all(not x.lstrip("- ").startswith(start[:2]) or x.lstrip("- ").startswith("\\") for x in out[1:]), out


def test_privacy_and_trojan_sections_state_how_many_inputs_were_truncated(tmp_path):
    """The counts the cells store (MI texts, completion prompts, trojan prompts), summed, in each section's text."""
    from quantrisk.report.build import collect_sections

    _store(tmp_path / "run")
    with Store(tmp_path / "run") as st:  # one more privacy and trojan cell, carrying the truncation counts
        lab = {"model": "pythia-tiny", "precision": "int8-dynamic", "seed": "0"}
        c = Cell("privacy", {"p": "extra"})
        st.add_cells([c])
        st.write_result(c.id, StudyResult("privacy", [
            MetricRow("n_truncated", 3.0, lab), MetricRow("n_samples", 20.0, lab),
            MetricRow("completion_prompts_truncated", 1.0, lab), MetricRow("n_completions", 8.0, lab)], []))
        t = _trojan("int8-dynamic", 5)
        t.metrics.append(MetricRow("n_prompts_truncated", 2.0, {"model": "llama-tiny", "dap1": "fp32",
                                                                 "kind": "poisoned", "seed": "0", "dap2": "int8-dynamic"}))
        c = Cell("trojan", {"i": 7})
        st.add_cells([c])
        st.write_result(c.id, t)
        secs = {s.title: s for s in collect_sections(st)}
    assert ("Longer than the model's context, summed over the cells: 3 of 20 MI texts (scored on the part that "
            "fits; the zlib attack on that span); 1 of 8 completion prompts (cut from the left).") in \
        secs["Privacy study"].text
    # 6 trojan cells x (10 triggered + 10 clean) inputs; only the extra one stored a count
    assert "2 of 120 prompts (cut from the left" in secs["Trojan study"].text


def test_report_compare_section_shows_a_changed_verdict_and_a_changed_metric(tmp_path, monkeypatch, capsys):
    """`quantrisk report B --compare A`: after the setup, what changed from A to B: quanto-int8's zlib AUC 0.70 ->
    0.72 (Δ +0.020), and T3 (its clean fine-tunes only in A) inconclusive -> not testable; both stores unchanged."""
    import hashlib
    import sys

    from quantrisk.cli import main

    _store(tmp_path / "a")
    monkeypatch.setattr(sys.modules[__name__], "PRECS", [("fp32", 0.30, 0.80), ("quanto-int8", 0.25, 0.72),
                                                          ("rtn-w2g64", 0.10, 0.55)])
    _store(tmp_path / "b", trojan=False)
    before = {r: hashlib.sha256((tmp_path / r / "results.sqlite").read_bytes()).hexdigest() for r in "ab"}
    assert main(["report", str(tmp_path / "b"), "--compare", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    md = (tmp_path / "b" / "report" / "report.md").read_text()
    titles = [x[3:] for x in md.splitlines() if x.startswith("## ")]
    assert titles[titles.index("Setup") + 1] == "Compared with another run"
    part = md[md.index("## Compared with another run"):md.index("## Findings")].replace("\u00a0", " ")
    lines = [" ".join(x.split()) for x in part.splitlines()]
    assert f"A = {tmp_path / 'a'}, B = this run." in " ".join(lines)
    assert "1 of 7 claims changed verdict" in " ".join(lines)
    assert "| T3 | inconclusive | not testable |" in lines
    assert "| auc | pythia-tiny quanto-int8 zlib 0 | 0.700 [0.650, 0.750] | 0.720 [0.670, 0.770] |" in lines
    assert "| auc | pythia-tiny quanto-int8 zlib 0 | +0.020 |" in lines
    assert not any(x.startswith(("| P", "| T1", "| T2")) for x in lines)  # unchanged verdicts are not listed
    html = (tmp_path / "b" / "report" / "report.html").read_text()
    assert "Compared with another run" in html and "inconclusive" in html
    assert before == {r: hashlib.sha256((tmp_path / r / "results.sqlite").read_bytes()).hexdigest() for r in "ab"}
    assert main(["report", str(tmp_path / "b"), "--compare", str(tmp_path / "nowhere")]) == 2
    assert "Compared with another run" in (tmp_path / "b" / "report" / "report.md").read_text()  # kept as it was


def test_headline_judges_a_change_by_the_findings_standard_not_the_unadjusted_ci(tmp_path):
    """Issue 28: a paired ΔAUC whose unadjusted CI excludes 0 but whose Holm-adjusted DeLong p is 0.761 is no
    change on this page (the bottom line said "lowered ... and the CI excludes 0" beside P1's p 0.761); with p
    0.001 it is, and the sentence names the test. Every interval printed is labelled unadjusted."""
    from quantrisk.report.headline import privacy_headlines

    _store(tmp_path / "run")
    lab = {"model": "pythia-tiny", "attack": "zlib", "precision": "rtn-w2g64"}
    delta = {"name": "delta_auc", "value": -0.2, "ci_low": -0.26, "ci_high": -0.15, "labels": lab}
    with Store(tmp_path / "run", create=False) as st:
        (weak,) = privacy_headlines(st, paired_rows=[delta, {"name": "delong_p_holm", "value": 0.761,
                                                             "labels": lab}])
        (strong,) = privacy_headlines(st, paired_rows=[delta, {"name": "delong_p_holm", "value": 0.001,
                                                               "labels": lab}])
    assert "ΔAUC -0.200 [-0.260, -0.150] (paired, unadjusted 95% CI), DeLong p 0.761, Holm-adjusted" in weak.change
    assert weak.sentence.startswith("No precision moved MI AUC significantly (Holm-adjusted DeLong p ≤ 0.05): the "
                                    "largest change (rtn-w2g64, zlib) has DeLong p 0.761, Holm-adjusted, although its "
                                    "unadjusted 95% CI excludes 0 (not a finding at this standard).")
    assert "lowered" not in weak.sentence and "excludes 0," not in weak.sentence
    assert strong.sentence.startswith("rtn-w2g64 lowered the zlib AUC from 0.800 to 0.550 (significant: DeLong p "
                                      "0.001, Holm-adjusted ≤ 0.05, and beyond the ±0.02 margin), at a utility cost of")
    assert "0 of the other 3 (precision, attack) changes are significant and beyond the margin too." in strong.sentence
    # significant but inside the claims' ±0.02 margin: no change at this standard (issue 24: no verdict from bare
    # significance), with the interval's reach named
    small = []
    for prec, attack, d in (("rtn-w2g64", "zlib", -0.012), ("quanto-int8", "zlib", -0.004), ("rtn-w2g64", "loss", 0.003),
                            ("quanto-int8", "loss", 0.001)):
        lb = {**lab, "precision": prec, "attack": attack}
        small += [{"name": "delta_auc", "value": d, "ci_low": d - 0.006, "ci_high": d + 0.006, "labels": lb},
                  {"name": "delong_p_holm", "value": 0.001, "labels": lb}]
    with Store(tmp_path / "run", create=False) as st:
        (tiny,) = privacy_headlines(st, paired_rows=small)
    assert tiny.sentence.startswith("No precision moved MI AUC beyond the ±0.02 decision margin: the largest change "
                                    "(rtn-w2g64, zlib: 0.800 → 0.550) is significant (DeLong p 0.001, Holm-adjusted "
                                    "≤ 0.05) but its interval reaches inside ±0.02"), tiny.sentence
    assert "lowered" not in tiny.sentence
