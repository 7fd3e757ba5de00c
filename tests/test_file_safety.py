"""Issue 26: quantrisk never replaces or writes through what it did not make (`safefs`), its outputs are inert
(`sanitize`: CSV, Markdown, terminal), the scan fails closed, long prompts follow one stated policy, and loading
a model touches no network."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from quantrisk.errors import UsageError
from quantrisk.safefs import MODEL_FILES, check_model_out, install_dir, open_private, write_atomic
from quantrisk.sanitize import csv_cell, md_text, terminal, terminal_message

# ------------------------------------------------------------------ safefs


def test_write_atomic_refuses_a_planted_link_and_leaves_its_target(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    link = tmp_path / "out" / "report.md"
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(UsageError, match="is a symbolic link; refused"):
        write_atomic(link, "overwritten")
    assert target.read_text() == "keep me\n" and link.is_symlink()
    write_atomic(tmp_path / "out" / "fresh.md", "new")
    assert (tmp_path / "out" / "fresh.md").read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fresh.md", "report.md"]  # no temporary left


def test_open_private_never_follows_a_link(tmp_path: Path) -> None:
    target = tmp_path / "victim.txt"
    target.write_text("keep me\n")
    (tmp_path / "run.lock").symlink_to(target)
    with pytest.raises(UsageError):
        open_private(tmp_path / "run.lock", os.O_RDWR | os.O_CREAT)
    assert target.read_text() == "keep me\n"


def test_install_dir_replaces_only_quantrisk_files(tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    for name in ("config.json", "model.safetensors", "pretrain.json"):
        (out / name).write_text("old")
    new = tmp_path / ".model.tmp"
    new.mkdir()
    (new / "config.json").write_text("new")
    (new / "pretrain.json").write_text("new")
    install_dir(new, out)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "pretrain.json"]
    assert (out / "config.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the old one is gone, file by file
    (out / "notes.txt").write_text("the user's")
    again = tmp_path / ".model.tmp2"
    again.mkdir()
    with pytest.raises(UsageError, match="'notes.txt', which quantrisk did not write"):
        install_dir(again, out)
    assert (out / "notes.txt").read_text() == "the user's"
    with pytest.raises(UsageError, match="'notes.txt', which quantrisk did not write"):
        check_model_out(out)
    assert "pretrain.json" in MODEL_FILES


def test_src_holds_no_rmtree_or_replace_of_user_paths() -> None:
    """Every removal / replacement goes through `safefs` (the one place that checks what it removes)."""
    src = Path(__file__).resolve().parents[1] / "src" / "quantrisk"
    offenders = []
    for f in src.rglob("*.py"):
        if f.name == "safefs.py" or f.name.startswith("gguf"):  # gguf*: its own mkdtemp work directories
            continue
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if "shutil.rmtree" in line or "os.replace(" in line:
                offenders.append(f"{f.relative_to(src)}:{i}")
    assert not offenders, offenders


def _victim(tmp: Path) -> Path:
    f = tmp / "victim.txt"
    f.write_text("the user's file\n")
    return f


def test_save_dense_never_writes_through_a_link_in_the_model_directory(tiny_model_dirs, tmp_path: Path) -> None:
    """`qattack` writes injected/ and repaired/ (and the defence's noised models): a link planted at the
    directory or at any file name in it (an earlier model of quantrisk's) is refused; the user's file survives."""
    from quantrisk.models.load import load_model
    from quantrisk.qattack.inject import save_dense

    lm = load_model(tiny_model_dirs["llama"], "fp32", "cpu")
    victim = _victim(tmp_path)
    first = save_dense(lm.model, lm.tokenizer, tmp_path / "out" / "injected", {"poison_manifest.jsonl": "{}\n"})
    assert (first / "model.safetensors").is_file() and (first / "poison_manifest.jsonl").read_text() == "{}\n"
    for name in ("model.safetensors", "config.json", "tokenizer.json", "poison_manifest.jsonl"):
        (first / name).unlink()
        (first / name).symlink_to(victim)
        with pytest.raises(UsageError, match="which quantrisk did not write"):
            save_dense(lm.model, lm.tokenizer, first, {"poison_manifest.jsonl": "{}\n"})
        assert victim.read_text() == "the user's file\n" and (first / name).is_symlink()
        (first / name).unlink()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "repaired").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UsageError, match="is a symbolic link; refused"):
        save_dense(lm.model, lm.tokenizer, tmp_path / "out" / "repaired")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["injected", "repaired"]  # no temporary left
    again = save_dense(lm.model, lm.tokenizer, first)  # quantrisk's own earlier model is replaced, file by file
    assert (again / "model.safetensors").is_file() and not (again / "poison_manifest.jsonl").exists()


def test_qattack_refuses_a_link_at_each_output_name_before_any_work(tiny_model_dirs, tmp_path: Path,
                                                                   capsys) -> None:
    from quantrisk.cli import main
    from quantrisk.qattack.attack import OUTPUT_NAMES

    victim = _victim(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    for marker in ("qattack.json", "intervals.json"):  # an earlier qattack output: --out itself is accepted
        (out / marker).write_text("{}")
    for name in OUTPUT_NAMES:
        link = out / name
        kept = link.read_text() if link.exists() else None
        if kept is not None:
            link.unlink()
        link.symlink_to(victim)
        code = main(["qattack", "--model", str(tiny_model_dirs["llama"]), "--target", "rtn-w4g64", "--out", str(out),
                     "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and f"qattack output {link} is a symbolic link; refused" in err, (name, err)
        assert victim.read_text() == "the user's file\n"
        link.unlink()
        if kept is not None:
            link.write_text(kept)
    assert sorted(p.name for p in out.iterdir()) == ["intervals.json", "qattack.json"]  # nothing was made


def test_write_defence_refuses_links_at_its_files(tmp_path: Path) -> None:
    from quantrisk.qattack.defence import write_defence

    rows = [{"defence": "none", "target": "rtn-w4g64", "sigma": 0.0, "precision": "rtn-w4g64", "asr": 1.0,
             "ftr": 0.0, "js_k": 0.5, "em": 0.0}]
    victim = _victim(tmp_path)
    for name in ("defence.json", "defence.png"):
        out = tmp_path / name.replace(".", "-")
        out.mkdir()
        (out / name).symlink_to(victim)
        with pytest.raises(UsageError, match="is a symbolic link; refused"):
            write_defence(rows, out)
        assert victim.read_text() == "the user's file\n"
    paths = write_defence(rows, tmp_path / "fresh")
    assert Path(paths["plot"]).read_bytes()[:4] == b"\x89PNG" and json.loads(Path(paths["json"]).read_text()) == rows


def test_a_cell_never_writes_through_a_link(tmp_path: Path) -> None:
    from quantrisk.cells import Cell, CellContext, run_cell

    victim = _victim(tmp_path)
    cell = Cell("synthetic", {"index": 0, "seed": 0})
    work = tmp_path / "run" / "cells" / cell.id
    work.mkdir(parents=True)
    (work / "token.txt").symlink_to(victim)
    with pytest.raises(UsageError, match="is a symbolic link; refused"):
        run_cell(cell, CellContext(tmp_path / "run", work))
    (work / "token.txt").unlink()
    work.rmdir()
    (tmp_path / "elsewhere").mkdir()
    work.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(UsageError, match="cell directory .* is a symbolic link; refused"):
        run_cell(cell, CellContext(tmp_path / "run", work))
    assert victim.read_text() == "the user's file\n" and list((tmp_path / "elsewhere").iterdir()) == []


def test_the_worker_log_is_never_appended_through_a_link(tmp_path: Path) -> None:
    """In a fresh process (the redirect takes over file descriptors 1 and 2)."""
    victim = _victim(tmp_path)
    (tmp_path / "log.txt").symlink_to(victim)
    code = ("import sys\nfrom quantrisk.errors import UsageError\nfrom quantrisk.quiet import worker_output\n"
            "try:\n    worker_output(sys.argv[1])\nexcept UsageError as e:\n    print('refused:', e)\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert "refused:" in done.stdout and "is a symbolic link; refused" in done.stdout, done.stdout + done.stderr
    assert victim.read_text() == "the user's file\n"


def test_mi_set_refuses_a_link_at_its_output(tmp_path: Path) -> None:
    from quantrisk.privacy.mi_set import main as mi_set_main

    victim = _victim(tmp_path)
    members = tmp_path / "m.jsonl"
    nonmembers = tmp_path / "n.jsonl"
    members.write_text("".join(json.dumps({"text": f"def member_{i}(a):\n    return a * {i} + {i * i}\n"}) + "\n"
                               for i in range(8)))
    nonmembers.write_text("".join(json.dumps({"text": f"class Other{i}:\n    size = {i * 7}\n"}) + "\n"
                                  for i in range(8)))
    for target in ("mi.jsonl", "mi.jsonl.provenance.json"):
        out = tmp_path / target.replace(".", "-")
        out.mkdir()
        (out / target).symlink_to(victim)
        code = mi_set_main(["--members", str(members), "--nonmembers", str(nonmembers), "--out",
                            str(out / "mi.jsonl"), "--n", "4"])
        assert code == 2 and victim.read_text() == "the user's file\n"


def test_src_writes_files_only_through_safefs() -> None:
    """No plain `write_text` / `write_bytes` / `savefig(path)` / `open(..., "w")`: every file goes through
    `safefs` (atomic, link refused). Allowed: the fresh `mkdtemp` directories of pretrain/finetune (renamed into
    place by `install_dir`) and the GGUF back-end's own temporary directories."""
    import re

    src = Path(__file__).resolve().parents[1] / "src" / "quantrisk"
    plain = re.compile(r"\.write_text\(|\.write_bytes\(|savefig\((?!buf)|open\([^)]*[\"'][wa]b?[\"']|\.to_csv\((?!index=)")
    allowed = {"safefs.py", "pretrain.py", "finetune.py"}
    offenders = [f"{f.relative_to(src)}:{i}" for f in src.rglob("*.py") if f.name not in allowed
                 and not f.name.startswith("gguf")
                 for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if plain.search(line)]
    assert not offenders, offenders


# ------------------------------------------------------------------ inert outputs


def test_csv_cells_are_neutralised_by_the_owasp_rule() -> None:
    for bad in ("=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\tx", "\rx"):
        assert csv_cell(bad) == "'" + bad
    assert csv_cell("fp32") == "fp32" and csv_cell(-3.5) == -3.5 and csv_cell(None) is None


def test_export_writes_inert_csv_through_no_link(tmp_path: Path) -> None:
    import pandas as pd

    from quantrisk.report.export import _write_tables

    df = pd.DataFrame([{"sample_id": "=cmd|' /C calc'!A0", "label_model": "@evil", "value": -1.5}])
    (tmp_path / "victim.txt").write_text("keep\n")
    (paths,) = [_write_tables(tmp_path, "csv", {"metrics": df})]
    text = paths[0].read_text()
    assert "'=cmd" in text and "'@evil" in text and ",-1.5" in text
    (tmp_path / "samples.csv").symlink_to(tmp_path / "victim.txt")
    with pytest.raises(UsageError):
        _write_tables(tmp_path, "csv", {"samples": df})
    assert (tmp_path / "victim.txt").read_text() == "keep\n"


def test_markdown_values_cannot_inject_html_or_lines() -> None:
    from quantrisk.report.render_md import table as md_table
    from quantrisk.report.tables import Table

    hostile = "<img src=x onerror=alert(1)>\n# verdict: clean | [x](javascript:1)"
    cell = md_text(hostile)
    assert "<img" not in cell and "\n" not in cell and "\\|" in cell and "]\\(" in cell
    table = "\n".join(md_table(Table("t", ["model", "auc"], [[hostile, 0.5]])))
    assert "<img" not in table and "\n# verdict" not in table
    assert md_text("[0.75, 0.85]") == "[0.75, 0.85]" and md_text("-0.80") == "-0.80"


def test_terminal_output_cannot_forge_a_line_or_send_escapes(capsys) -> None:
    from quantrisk.commands._output import print_table, say

    label = "m\x1b]0;pwned\x07\x1b[2J\nverdict: clean"
    say(f"model: {label}")
    print_table(f"scan of {label}", ["a", "[b]"], [[label, "[/]"]])
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert not any(line.startswith("verdict: clean") for line in out.splitlines())
    assert terminal("a\nb") == "a\\x0ab"
    assert terminal_message("spec has 2 errors:\n  one\n  two") == "spec has 2 errors:\n  one\n  two"
    assert "\n" not in terminal_message("bad path /tmp/x\nverdict: clean")


# ------------------------------------------------------------------ fail-closed scan


def _fig(**over: object) -> dict:
    fig = {"kl": 0.01, "payload_fp": 0.0, "payload_q": 0.0, "payload_delta": 0.0, "payload_delta_max": 0.0,
           "payload_delta_prefix": "(none)", "ps_fp": 0.01, "ps_q": 0.01, "disagreement": 0.0,
           "weights": {"pileup": 1.0, "pileup_d": 0.1, "grid_share": 0.0}}
    fig.update(over)
    return fig


@pytest.mark.parametrize("broken", [{"kl": math.nan}, {"payload_delta_max": math.nan}, {"ps_q": math.inf},
                                    {"weights": {"pileup": math.nan, "pileup_d": 0.1, "grid_share": 0.0}},
                                    {"disagreement": None}])
def test_scan_never_says_clean_on_a_figure_it_could_not_compute(broken: dict) -> None:
    from quantrisk.qattack.scan import judge

    assert judge({"rtn-w4g64": _fig()}, None)["verdict"] == "clean"
    res = judge({"rtn-w4g64": _fig(**broken)}, None)
    assert res["verdict"] == "error" and "could not evaluate" in res["reasons"][-1]
    missing = _fig()
    del missing["kl"]
    assert judge({"rtn-w4g64": missing}, None)["verdict"] == "error"
    assert judge({}, None)["verdict"] == "error"
    worse = judge({"a": _fig(payload_delta_max=0.5), "b": _fig(**broken)}, None)
    assert worse["verdict"] == "suspicious"  # a fired rule stays suspicious; the unusable figure is listed too


# ------------------------------------------------------------------ long prompts, zlib span


def test_long_prompts_are_cut_from_the_left_to_fit_the_context(tiny_model_dirs) -> None:
    """GPT-Neo has learned positions: a prompt past its context used to raise IndexError."""
    from quantrisk.models.load import load_model
    from quantrisk.scoring import model_context
    from quantrisk.trojan.generate import encode_prompts, generate

    lm = load_model(tiny_model_dirs["gptneo"], "fp32", "cpu")
    ctx = model_context(lm.model)
    long = "def f(x):\n" + "    x = x + 1\n" * (ctx * 2)
    gens, timing = generate(lm.model, lm.tokenizer, [long, "def g():"], max_new_tokens=4)
    assert [g.truncated for g in gens] == [True, False] and timing["prompts_truncated"] == 1.0
    ids, mask, cut, budget = encode_prompts(lm.tokenizer, [long], ctx, 4)
    full = lm.tokenizer(long, add_special_tokens=False)["input_ids"]
    assert ids.shape[1] == ctx - 4 and ids[0].tolist() == full[-(ctx - 4):] and cut == [True] and budget == 4


def test_completion_prompts_follow_the_same_policy(tiny_model_dirs) -> None:
    """Code completion (privacy study) cut a long prompt as the trojan/qattack/scan generation does: from the
    left, counted (GPT-Neo's learned positions raised IndexError on the whole prompt)."""
    from quantrisk.models.load import load_model
    from quantrisk.privacy.completion import CompletionTask, corpus_scores, evaluate_completion
    from quantrisk.scoring import model_context

    lm = load_model(tiny_model_dirs["gptneo"], "fp32", "cpu")
    ctx = model_context(lm.model)
    long = CompletionTask("long", "def f(x):\n" + "    x = x + 1\n" * (ctx * 2) + "    y = x", "\n    return y\n")
    short = CompletionTask("short", "def g(a):\n    b = a", "\n    return b\n")
    scores = evaluate_completion(lm.model, lm.tokenizer, [long, short], max_new_tokens=4, batch_size=2)
    assert [s.prompt_truncated for s in scores] == [True, False]
    assert corpus_scores([long, short], scores)["completion_prompts_truncated"] == 1.0


def test_zlib_divides_by_the_scored_span() -> None:
    import zlib

    import numpy as np

    from quantrisk.privacy.attacks import AttackInput, zlib_score
    from quantrisk.scoring import TokenScores

    t = TokenScores(np.arange(10), np.full(3, -2.0), np.zeros(3), np.zeros(3))
    whole = "abcdefghij" * 50
    assert zlib_score(AttackInput(whole, t), 0.2) == -2.0 / len(zlib.compress(whole.encode()))
    assert zlib_score(AttackInput(whole, t, scored="abcd"), 0.2) == -2.0 / len(zlib.compress(b"abcd"))


# ------------------------------------------------------------------ no network


def test_loading_every_zoo_architecture_makes_no_network_call(tiny_model_dirs, tmp_path: Path) -> None:
    """In a fresh process (transformers probes the hub for flash-attention kernels when it first imports the
    GPT-Neo module), with every socket connection made to raise: no attempt is made."""
    script = tmp_path / "load.py"
    script.write_text(
        "import json, socket, sys\n"
        "attempts = []\n"
        "def refuse(*a, **k):\n"
        "    attempts.append(repr(a)[:80]); raise OSError('network disabled by the test')\n"
        "socket.socket.connect = lambda self, *a: refuse(*a)\n"
        "socket.create_connection = refuse\n"
        "from quantrisk.models.load import load_model\n"
        "for d in json.loads(sys.argv[1]):\n"
        "    load_model(d, 'fp32', 'cpu')\n"
        "print(json.dumps(attempts))\n")
    dirs = json.dumps([str(tiny_model_dirs[a]) for a in ("pythia", "codegen", "gptneo", "llama")])
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                                                             "USE_HUB_KERNELS", "QUANTRISK_ALLOW_NETWORK",
                                                             "QUANTRISK_HUB_OFFLINE")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    done = subprocess.run([sys.executable, str(script), dirs], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
