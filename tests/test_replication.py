"""Replication: seeds vary pretraining (hence the exposure split) and the member / non-member draw; and two runs of
one spec on one commit, each pretraining from an empty cache, give identical results and verdicts."""

from __future__ import annotations

from quantrisk.cli import main

SMALL = {"per_exposure": 6, "per_split": 12, "max_filler": 60, "vocab_size": 300, "batch_size": 2, "seq_len": 64,
         "warmup": 2}
SPEC = ("name: rep\ndevice: cpu\nseeds: [0, 1]\nmodels:\n  - {zoo: pythia, size: tiny, regime: exposure, "
        "exposures: [1, 4]}\nprecisions: [fp32, rtn-w2g64, rtn-w3g128]\nstudies:\n  privacy: {n: 12, attacks: [loss, "
        "zlib, reference], completion_n: 0, n_resamples: 50}\n")
TIMING = ("seconds", "per_second", "load_seconds")


def _run(tmp_path, monkeypatch, name):
    from quantrisk.findings import RunRows, findings
    from quantrisk.models import pretrain as pretrain_mod
    from quantrisk.store import Store

    monkeypatch.setitem(pretrain_mod.EXPOSURE_DEFAULTS, "tiny", SMALL)
    monkeypatch.setenv("QUANTRISK_CACHE", str(tmp_path / f"cache-{name}"))  # each run pretrains anew
    pretrain_mod._exposure_data_cached.cache_clear()
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    run = tmp_path / name
    assert main(["run", str(spec), "--out", str(run), "--quiet"]) == 0
    with Store(run / "results.sqlite") as st:
        # repr: NaN (an undefined correlation) equals itself as text
        rows = sorted((r["kind"], r["name"], repr(sorted(r["labels"].items())), repr(r["value"]), repr(r["ci_low"]),
                       repr(r["ci_high"])) for r in st.metrics() if not any(t in r["name"] for t in TIMING))
        verdicts = [(f.claim, f.verdict, repr(f.effect), f.why) for f in findings(RunRows.from_store(st))]
        pretrain_seeds = sorted({c["params"]["seed"] for c in st.cells() if c["kind"] == "pretrain"})
    return rows, verdicts, pretrain_seeds


def test_two_runs_of_one_spec_give_identical_results_and_verdicts(tmp_path, monkeypatch):
    a_rows, a_verdicts, seeds = _run(tmp_path, monkeypatch, "a")
    b_rows, b_verdicts, _ = _run(tmp_path, monkeypatch, "b")
    assert seeds == [0, 1]  # each replicate pretrains its own model
    assert a_rows == b_rows and a_verdicts == b_verdicts
    by_seed = {}
    for kind, name, labels, value, *_ in a_rows:
        if kind == "privacy" and name == "nonmember_nll" and "'fp32'" in labels:
            by_seed[labels] = float(value)
    assert len(set(by_seed.values())) == 2  # the two replicates are different models on different splits
    assert any(kind == "privacy-blind" and name == "blind_auc" for kind, name, *_ in a_rows)
