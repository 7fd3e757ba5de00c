"""The exposure regime: the packed one-pass stream, the deduplicated split, the pretrain run, the CLI, the
privacy study's AUC by exposure, and the site-packages corpus's licence filter."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import asdict
from email.message import Message

import numpy as np
import pytest

from quantrisk.cli import main
from quantrisk.data.corpus import (
    CodeSample,
    assign_exposure_splits,
    canonical_corpus,
    load_split,
    normalise_code,
    parse_sources,
    sha256_text,
)
from quantrisk.data.site_packages import licence_of
from quantrisk.errors import UsageError
from quantrisk.models.pretrain import default_settings, ensure_reference, pretrain
from quantrisk.models.schedule import build_stream

EOS = 0
FAST = {"regime": "exposure", "exposures": (1, 4), "per_exposure": 6, "per_split": 12, "max_filler": 60,
        "vocab_size": 300, "batch_size": 2, "seq_len": 64, "warmup": 2}


def _stream(n_once=300, n_members=12, ks=(1, 2, 4, 8), batch=2, seq=32, seed=0):
    rng = np.random.default_rng(seed)
    once = [[int(x) for x in rng.integers(1, 100, rng.integers(3, 40))] + [EOS] for _ in range(n_once)]
    # member i is its own token 1000+i repeated, so its copies can be found in the stream
    members = [(f"m{i}", [1000 + i] * int(rng.integers(2, 20)) + [EOS], ks[i % len(ks)]) for i in range(n_members)]
    return once, members, build_stream(once, members, batch_size=batch, seq_len=seq, seed=seed)


def test_stream_inserts_each_member_exactly_k_times_never_in_adjacent_steps():
    once, members, st = _stream()
    assert st.tokens.shape == (st.steps, 2, 32) and st.tokens.dtype == np.int32
    for mid, ids, k in members:
        steps = st.member_steps[mid]
        assert len(steps) == k and all(b - a >= 2 for a, b in zip(steps, steps[1:], strict=False))
        found = [s for s in range(st.steps) if (st.tokens[s] == ids[0]).any()]
        assert found == steps  # the copies are where the schedule says, and nowhere else
        assert int((st.tokens == ids[0]).sum()) == k * (len(ids) - 1)  # whole documents, k of them
    # every once-seen token is used once, in order of a seeded shuffle; only a tail shorter than a step is dropped
    once_total = sum(map(len, once))
    assert st.once_tokens + st.once_tokens_dropped == once_total and st.once_tokens_dropped < 2 * 32
    assert int((st.tokens < 1000).sum()) == st.once_tokens + sum(k for *_, k in members)  # + each copy's EOS
    assert st.once_tokens + st.member_tokens == st.tokens.size
    again = _stream()[2]
    assert np.array_equal(again.tokens, st.tokens) and again.member_steps == st.member_steps
    assert not np.array_equal(_stream(seed=1)[2].tokens[:, :, :5], st.tokens[:, :, :5])


def test_stream_refuses_a_pass_too_short_for_the_largest_exposure():
    with pytest.raises(UsageError, match="exposure 8 needs at least 16"):
        _stream(n_once=20)
    with pytest.raises(UsageError, match="at most seq_len"):
        build_stream([[1, 0]] * 100, [("m", [5] * 40 + [0], 1)], batch_size=1, seq_len=16, seed=0)


def test_normalise_code_strips_comments_and_layout_only():
    a = "def f(x):\n    # add one\n    return x + 1\n"
    b = "def f(x):  # different comment\n\n\n        return x+1"
    assert normalise_code(a) == normalise_code(b) == "def f ( x ) : return x + 1"
    assert normalise_code("x = 1\n") != normalise_code("x = 2\n")
    assert normalise_code('def f():\n    """doc"""\n') != normalise_code('def f():\n    """other"""\n')
    assert normalise_code("def f(:\n  (((") == "def f(: ((("  # does not tokenize: whitespace words


def _samples(n):
    out = [CodeSample(f"f{i}.py::g", f"f{i}.py", f"def g{i}(a):\n    return a * {i}\n", "") for i in range(n)]
    return [CodeSample(s.id, s.path, s.text, sha256_text(s.text)) for s in out]


def test_exposure_split_counts_dedup_and_determinism():
    base = _samples(200)
    samples, dropped = assign_exposure_splits(base, seed=3, exposures=(1, 2, 4), per_exposure=5, n_nonmember=20,
                                              n_reference=10, max_filler=50)
    by = Counter(s.split for s in samples)
    assert by == {"member": 15, "nonmember": 20, "reference": 10, "filler": 50}
    assert Counter(s.exposures for s in samples if s.split == "member") == {1: 5, 2: 5, 4: 5}
    assert all(s.exposures == 0 for s in samples if s.split != "member")
    assert dropped["filler beyond max_filler"] == 200 - 95
    again, _ = assign_exposure_splits(base, seed=3, exposures=(1, 2, 4), per_exposure=5, n_nonmember=20,
                                      n_reference=10, max_filler=50)
    assert again == samples
    # a member's text with other comments and layout, under another id: both copies go, counted; counts stay exact
    member = next(s for s in samples if s.split == "member")
    twin_text = member.text.replace("    return", "    # same code\n    return") + "\n\n"
    twins = [CodeSample(f"twin{j}", "t.py", twin_text, sha256_text(twin_text)) for j in range(40)]
    s2, d2 = assign_exposure_splits(base + twins, seed=3, exposures=(1, 2, 4), per_exposure=5, n_nonmember=20,
                                    n_reference=10)
    assert not any(s.text in (member.text, twin_text) for s in s2)
    assert d2["normalised text in two splits"] >= 2
    assert Counter(s.split for s in s2)["member"] == 15 and Counter(s.split for s in s2)["nonmember"] == 20
    with pytest.raises(UsageError, match="usable member samples"):
        assign_exposure_splits(_samples(10), seed=0, exposures=(1, 2), per_exposure=20, n_nonmember=1, n_reference=1)
    with pytest.raises(UsageError, match="distinct integers"):
        assign_exposure_splits(base, seed=0, exposures=(1, 1), per_exposure=2, n_nonmember=1, n_reference=1)


def test_exposure_settings_keep_memorise_keys_and_validate():
    mem = default_settings("pythia", "tiny", regime="memorise")
    assert mem.regime == "memorise" and mem.key() == default_settings("pythia", "tiny", regime="memorise", compile=True).key()
    # the memorise key hashes the fields it had before the exposure regime existed (cached models stay valid)
    fields = {k: v for k, v in asdict(mem).items() if k not in ("regime", "exposures", "per_exposure", "max_filler", "compile")}
    assert mem.key() == hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    exp = default_settings("pythia", "tiny")  # the exposure regime is the default
    assert exp.regime == "exposure" and exp == default_settings("pythia", "tiny", regime="exposure")
    assert exp.exposures == (1, 2, 4, 8, 16) and exp.key() != mem.key()
    assert default_settings("pythia", "tiny", regime="exposure", exposures=[4, 1]).exposures == (1, 4)
    for bad in ({"regime": "often"}, {"regime": "exposure", "exposures": (0, 1)}, {"regime": "exposure", "exposures": ()}):
        with pytest.raises(UsageError):
            default_settings("pythia", "tiny", **bad)


def test_pretrain_exposure_regime_records_exposures_steps_and_auc_by_exposure(tmp_path):
    report = pretrain("pythia", "tiny", tmp_path / "m", progress=False, **FAST)
    split = load_split(tmp_path / "m")
    members = [s for s in split if s.split == "member"]
    assert Counter(s.exposures for s in members) == {1: 6, 4: 6}
    for s in members:
        assert len(s.steps) == s.exposures and all(b - a >= 2 for a, b in zip(s.steps, s.steps[1:], strict=False))
        assert all(0 <= st < report.stream["steps"] for st in s.steps)
    assert all(s.exposures == 0 and not s.steps for s in split if s.split != "member")
    assert Counter(s.split for s in split)["filler"] == 60
    meta = json.loads((tmp_path / "m" / "pretrain.json").read_text())
    assert set(meta["auc_by_exposure"]) == {"1", "4"} and meta["members_by_exposure"] == {"1": 6, "4": 6}
    assert all(0.0 <= v <= 1.0 for v in meta["auc_by_exposure"].values())
    assert meta["tokens_seen"] == meta["stream"]["steps"] * 2 * 64
    assert meta["stream"]["once_tokens"] + meta["stream"]["member_tokens"] == meta["tokens_seen"]
    assert "normalised text in two splits" in meta["dropped"]
    rows = [json.loads(line) for line in (tmp_path / "m" / "corpus_manifest.jsonl").read_text().splitlines()]
    assert rows and {"dist", "version", "licence", "path", "sha256"} <= set(rows[0]) and rows[0]["licence"] == "PSF"
    # its reference model: the same filler and the reference split once, no member
    ref = ensure_reference(tmp_path / "m", cache_dir=tmp_path / "cache", progress=False)
    rmeta = json.loads((ref / "pretrain.json").read_text())
    assert rmeta["settings"]["regime"] == "exposure" and rmeta["settings"]["train_split"] == "reference"
    assert rmeta["stream"]["member_tokens"] == 0 and rmeta["n_train_samples"] == 60 + 12


def test_privacy_study_reports_auc_by_exposure(tmp_path):
    from quantrisk.privacy.members import load_mi_set
    from quantrisk.privacy.study import PrivacyOptions, privacy_at_precision

    pretrain("llama", "tiny", tmp_path / "m", progress=False, **FAST)
    mi = load_mi_set(tmp_path / "m", 12, seed=0)
    assert Counter(s.exposure for s in mi.samples if s.label == 1) == {1: 6, 4: 6}
    small = load_mi_set(tmp_path / "m", 4, seed=0)  # stratified: as many of each exposure
    assert Counter(s.exposure for s in small.samples if s.label == 1) == {1: 2, 4: 2}
    res = privacy_at_precision(tmp_path / "m", "fp32", samples=mi, options=PrivacyOptions(
        attacks=("loss",), completion_n=0, n_resamples=50))
    rows = [m for m in res.metrics if m.name == "auc_by_exposure"]
    assert sorted(m.labels["exposure"] for m in rows) == ["1", "4"]
    for m in rows:
        assert m.ci_low <= m.value <= m.ci_high and m.labels["attack"] == "loss"
    # the k-specific AUC is the plain AUC of those members vs all non-members
    from quantrisk.stats import fast_auc

    by_id = {r["sample_id"]: r for r in res.samples if r.get("kind") == "mi"}
    for m in rows:
        k = int(m.labels["exposure"])
        sel = [r for r in by_id.values() if r["label"] == 0 or r.get("exposure") == k]
        assert m.value == pytest.approx(fast_auc(np.array([r["loss"] for r in sel]), np.array([r["label"] for r in sel])))


def test_cli_pretrain_exposure_and_bad_options(tmp_path, capsys):
    args = ["pretrain", "--arch", "gptneo", "--out", str(tmp_path / "m"), "--regime", "exposure", "--exposures", "1,4",
            "--per-exposure", "6", "--per-split", "12", "--max-filler", "60", "--vocab-size", "300",
            "--batch-size", "2", "--seq-len", "64", "--quiet"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "auc_loss k=4 (6 members)" in out and "exposure" in out
    assert main(["pretrain", "--arch", "gptneo", "--out", str(tmp_path / "r"), "--role", "reference",
                 "--tokenizer-from", str(tmp_path / "m"), "--quiet", "--json"]) == 0
    ref = json.loads(capsys.readouterr().out)
    assert ref["settings"]["regime"] == "exposure" and ref["stream"]["member_tokens"] == 0
    for bad, msg in ((["--exposures", "1,x"], "--exposures"), (["--regime", "sometimes"], "regime"),
                     (["--exposures", "2,2"], "distinct")):
        assert main(args[:7] + ["--out", str(tmp_path / "b")] + bad + ["--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and msg in err and "Traceback" not in err
    assert main(["pretrain", "--arch", "gptneo", "--out", str(tmp_path / "b"), "--regime", "memorise", "--exposures", "1,2"]) == 2
    assert "--regime exposure" in capsys.readouterr().err
    assert main(["pretrain", "--arch", "gptneo", "--out", str(tmp_path / "b"), "--steps", "3"]) == 2  # exposure: the default
    assert "--steps is for --regime memorise" in capsys.readouterr().err
    assert main(["pretrain", "--arch", "gptneo", "--out", str(tmp_path / "b"), "--role", "reference",
                 "--tokenizer-from", str(tmp_path / "m"), "--regime", "memorise"]) == 2
    assert "takes its regime from the target" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


class _Meta(Message):
    def __init__(self, **fields):
        super().__init__()
        for k, v in fields.items():
            for item in v if isinstance(v, list) else [v]:
                self[k.replace("_", "-")] = item


def test_licence_filter_known_answers():
    assert licence_of(_Meta(License_Expression="MIT"))[0] == "MIT"
    assert licence_of(_Meta(License_Expression="Apache-2.0 OR BSD-3-Clause"))[0] == "Apache-2.0+BSD"
    assert licence_of(_Meta(License_Expression="MIT AND GPL-3.0-only"))[0] is None
    assert licence_of(_Meta(Classifier=["License :: OSI Approved :: BSD License"]))[0] == "BSD"
    assert licence_of(_Meta(Classifier=["License :: OSI Approved :: Python Software Foundation License"]))[0] == "PSF"
    assert licence_of(_Meta(Classifier=["License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)"]))[0] is None
    assert licence_of(_Meta(License="ISC license"))[0] == "ISC"
    assert licence_of(_Meta(License="Mozilla Public License 2.0 (MPL 2.0)"))[0] is None
    assert licence_of(_Meta())[0] is None  # unknown is not permissive


def test_corpus_source_strings():
    assert parse_sources("stdlib") == [("stdlib", ())]
    assert parse_sources("stdlib,site-packages:numpy,Requests") == [("stdlib", ()), ("site-packages", ("numpy", "Requests"))]
    assert parse_sources("/some/folder") is None
    assert canonical_corpus("site-packages:Requests,numpy,stdlib") == "site-packages:numpy,requests,stdlib"
    with pytest.raises(UsageError, match="not a source"):
        parse_sources("stdlib,numpy")


def test_spec_accepts_regime_and_exposures_and_grid_passes_them():
    from quantrisk.config import parse_spec
    from quantrisk.grid import expand

    text = ("name: t\nmodels:\n  - {zoo: pythia, size: tiny, regime: exposure, exposures: [16, 1, 4]}\n"
            "  - {zoo: llama, size: tiny}\nprecisions: [fp32]\nstudies:\n  privacy: {n: 10, attacks: [loss, reference]}\n")
    spec = parse_spec(text, "t.yaml", check_device=False)
    cells = {c.label: c for c in expand(spec)}
    p = cells["pretrain pythia-tiny"].params
    assert p["regime"] == "exposure" and p["exposures"] == [1, 4, 16]
    assert cells["pretrain llama-tiny"].params["regime"] == "exposure"  # the default regime
    assert cells["pretrain llama-tiny"].params["exposures"] is None  # the size's default exposures
    memo = parse_spec(text.replace("{zoo: llama, size: tiny}", "{zoo: llama, size: tiny, regime: memorise}"), "t.yaml",
                      check_device=False)
    memo_cells = {c.label: c for c in expand(memo)}
    assert "regime" not in memo_cells["pretrain llama-tiny"].params  # memorise cells keep the ids they had as the default
    assert cells["pretrain pythia-tiny reference"].deps == (cells["pretrain pythia-tiny"].id,)
    for bad, msg in (("{zoo: pythia, regime: memorise, exposures: [1, 2]}", "regime: exposure"),
                     ("{path: /x, regime: exposure}", "zoo models"), ("{path: /x, regime: memorise}", "zoo models"),
                     ("{zoo: pythia, regime: exposure, exposures: [0]}", "distinct integers"),
                     ("{zoo: pythia, regime: sometimes}", "regime")):
        with pytest.raises(UsageError, match=msg):
            parse_spec(f"name: t\nmodels:\n  - {bad}\nprecisions: [fp32]\n", "t.yaml", check_device=False)


def test_report_plots_auc_vs_exposure(tmp_path):
    import quantrisk.studies  # noqa: F401 - the privacy report sections, registered from below
    from quantrisk.cells import Cell
    from quantrisk.report.plots import auc_vs_exposure
    from quantrisk.results import MetricRow, StudyResult
    from quantrisk.store import Store
    from quantrisk.studies import build_report

    with Store(tmp_path / "run") as st:
        st.begin_run("fake", "{}", {"python": "3.x", "packages": {}}, "local")
        assert auc_vs_exposure(st) is None
        for prec, shift in (("fp32", 0.0), ("rtn-w2g64", -0.05)):
            lab = {"model": "pythia-tiny", "precision": prec, "seed": "0", "attack": "loss"}
            metrics = [MetricRow("auc", 0.6 + shift, lab, 0.55, 0.65)]
            metrics += [MetricRow("auc_by_exposure", 0.5 + 0.05 * i + shift, {**lab, "exposure": str(k)}, 0.45, 0.8)
                        for i, k in enumerate((1, 4, 16))]
            c = Cell("privacy", {"p": prec})
            st.add_cells([c])
            st.write_result(c.id, StudyResult("privacy", metrics, [], {}, {}))
        png = auc_vs_exposure(st)
        assert png is not None and png[:8] == b"\x89PNG\r\n\x1a\n"
    report = build_report(tmp_path / "run", tmp_path / "report")
    assert "AUC vs exposure" in (tmp_path / "report" / "report.md").read_text() and report is not None


def test_spec_run_end_to_end_in_the_exposure_regime(tmp_path, monkeypatch, capsys):
    """`quantrisk run` of a spec with an exposure-regime zoo model: pretrain + reference + privacy cells, the
    per-exposure AUCs in the store and the AUC-vs-exposure plot in the report (tiny recipe shrunk for speed)."""
    from quantrisk.models import pretrain as pretrain_mod
    from quantrisk.store import Store

    small = {k: v for k, v in FAST.items() if k not in ("regime", "exposures")}
    monkeypatch.setitem(pretrain_mod.EXPOSURE_DEFAULTS, "tiny", small)
    monkeypatch.setenv("QUANTRISK_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: exp\ndevice: cpu\nseeds: [0]\nmodels:\n  - {zoo: pythia, size: tiny, regime: exposure, "
                    "exposures: [1, 4]}\nprecisions: [fp32, rtn-w2g64]\nstudies:\n  privacy: {n: 12, attacks: [loss, "
                    "reference], completion_n: 0, n_resamples: 50}\n")
    run = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(run), "--quiet", "--report"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    with Store(run / "results.sqlite") as st:
        rows = st.metrics(kind="privacy", name="auc_by_exposure")
    assert {(r["labels"]["precision"], r["labels"]["attack"], r["labels"]["exposure"]) for r in rows} == {
        (p, a, k) for p in ("fp32", "rtn-w2g64") for a in ("loss", "reference") for k in ("1", "4")}
    assert "AUC vs exposure" in (run / "report" / "report.md").read_text()


def test_site_packages_corpus_is_the_same_parsed_in_processes(monkeypatch):
    from quantrisk.data import site_packages

    scan = site_packages.site_packages_samples.__wrapped__
    alone = scan("function", ("packaging",))
    monkeypatch.setattr(site_packages, "POOL_MIN_FILES", 0)
    monkeypatch.setattr(site_packages.os, "cpu_count", lambda: 3)
    pooled = scan("function", ("packaging",))
    assert pooled == alone and alone[0] and alone[1]
    assert all(s.id.startswith("site-packages/packaging/") for s in alone[0])
    assert {r.licence for r in alone[1]} <= {"Apache-2.0", "BSD", "Apache-2.0+BSD"}
    with pytest.raises(UsageError, match="not installed"):
        scan("function", ("no-such-distribution-here",))


def test_site_packages_ids_stay_unique_when_a_file_defines_a_qualname_twice(monkeypatch):
    # seen on the GPU machine: a module defining `f` under if/else gave two members one id, and the pass's
    # member-step bookkeeping then disagreed with their exposures
    from quantrisk.data import site_packages

    body = "    x = {}\n    return x + 1\n"
    twice = [("f", f"def f(x):\n{body.format(1)}"), ("f", f"def f(x):\n{body.format(2)}")]
    monkeypatch.setattr(site_packages, "_functions", lambda source: iter(twice))
    monkeypatch.setattr(site_packages, "UNIT_LIMITS", {**site_packages.UNIT_LIMITS, "function": (1, 10**6)})
    samples = site_packages.site_packages_samples.__wrapped__("function", ("packaging",))[0]
    ids = [s.id for s in samples]
    assert len(ids) == len(set(ids)) and any(i.endswith("::f#2") for i in ids)


def test_stream_refuses_duplicate_member_ids():
    with pytest.raises(UsageError, match="occurs more than once"):
        build_stream([[1, 0]] * 400, [("m", [5, 0], 1), ("m", [6, 0], 2)], batch_size=2, seq_len=16, seed=0)
