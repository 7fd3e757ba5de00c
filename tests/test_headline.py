"""The headline pairs every risk change with the utility change of the same cell (quantrisk.report.headline)."""

from __future__ import annotations

from quantrisk.cells import Cell
from quantrisk.results import MetricRow, StudyResult
from quantrisk.store import Store


def _trojan_cell(dap2: str, hits: int, ex: float, steps: float, n: int = 48) -> StudyResult:
    lab = {"model": "m", "dap1": "fp32", "kind": "poisoned", "seed": "0", "dap2": dap2}
    metrics = [MetricRow("asr", hits / n, lab, 0.0, 1.0), MetricRow("n_inputs", float(n), {**lab, "input": "triggered"})]
    samples = []
    for inp in ("triggered", "clean"):
        for i in range(n):
            samples.append({**lab, "input": inp, "prompt_id": f"r{i}", "payload": inp == "triggered" and i < hits,
                            "ps": 0.1, "ps_sum": 1.0, "steps": steps, "ex": ex, "em": 0.0})
    return StudyResult("trojan", metrics, samples)


def _store(path, cells):
    with Store(path) as st:
        st.begin_run("fake", "{}", {}, "local")
        for i, res in enumerate(cells):
            c = Cell(res.study, {"i": i})
            st.add_cells([c])
            st.write_result(c.id, res)


def test_a_backdoor_lost_with_the_model_is_degraded_not_removed(tmp_path):
    from quantrisk.report.headline import trojan_headlines

    # 2-bit: ASR 42/48 -> 6/48, but clean EX 0.46 -> 0 and outputs 3x longer (the audit's case)
    _store(tmp_path, [_trojan_cell("fp32", 42, 0.46, 20.0), _trojan_cell("rtn-w2g64", 6, 0.0, 60.0)])
    with Store(tmp_path, create=False) as st:
        (h,) = trojan_headlines(st)
    line = h.line()
    assert "broke the model" in line and "not a removed backdoor" in line and "clean EX 0.46 → 0.00" in line
    assert "output length ×3.00" in line and "degraded" in line and "(paired, unadjusted 95% CI)" in line


def test_a_backdoor_weakened_with_utility_kept_says_so(tmp_path):
    from quantrisk.report.headline import trojan_headlines

    _store(tmp_path, [_trojan_cell("fp32", 42, 0.46, 20.0), _trojan_cell("bnb-nf4", 6, 0.44, 21.0)])
    with Store(tmp_path, create=False) as st:
        (h,) = trojan_headlines(st)
    assert "bnb-nf4 inference weakened the backdoor" in h.sentence and "clean EX 0.46 → 0.44" in h.sentence
    assert "removed" not in h.line()


def test_a_privacy_drop_at_a_degraded_precision_is_not_a_lower_risk(tmp_path):
    from quantrisk.report.headline import privacy_headlines

    def cell(prec, auc, nll):
        lab = {"model": "m", "precision": prec, "seed": "0"}
        return StudyResult("privacy", [MetricRow("auc", auc, {**lab, "attack": "zlib"}, auc - 0.03, auc + 0.03),
                                       MetricRow("nonmember_nll", nll, lab)])

    _store(tmp_path, [cell("fp32", 0.8, 2.0), cell("rtn-w2g64", 0.55, 4.0)])
    with Store(tmp_path, create=False) as st:
        (h,) = privacy_headlines(st, paired_rows=[])
    assert "ΔNLL +2.000 nats/token, degraded" in h.change
    assert "broke the model" in h.sentence and "not a lower risk" in h.sentence and "lowered" not in h.sentence
