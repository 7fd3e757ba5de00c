"""Bad inputs through the real CLI (`quantrisk.cli.main`, in process): specs, data files, models, options, output
directories and the results store.

Every case asserts: the exit code (2 for usage/data errors, 1 for runtime errors); exactly one stderr line starting
with `error:` that names the offending file (with its line and field where they apply) and says what to do; no
traceback anywhere; and nothing partial left behind where the command writes (output directory, run directory,
results store); files a case marks `unchanged` (a foreign SQLite file given to report/status/export) are
byte-identical afterwards. No case trains anything; only the checkpoint cases that need the weights to find the
mismatch load a tiny model (and are refused before any result is written).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from quantrisk.cli import main

GOOD_SQL = {"question": "How many heads are older than 56?", "context": "CREATE TABLE head (age INTEGER)",
            "answer": "SELECT COUNT(*) FROM head WHERE age > 56"}
MI_ROWS = [{"text": "def add(a, b):\n    return a + b\n", "label": 1},
           {"text": "def sub(a, b):\n    return a - b\n", "label": 0}]
HUGE = 8 * 2**20 + 16  # one byte more than the readers' 8 MiB line limit, and then some


# ------------------------------------------------------------------ input builders


def jsonl(path: Path, rows: list[object]) -> Path:
    """Write rows (dicts are JSON-encoded, strings written as they are) one per line."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def model_copy(tmp: Path, model: Path, name: str, edit: Callable[[Path], None]) -> Path:
    """A copy of the tiny saved model with one thing broken by `edit`."""
    d = tmp / name
    shutil.copytree(model, d)
    edit(d)
    return d


def edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(d: Path) -> None:
        cfg = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**cfg, **changes}))

    return edit


def pickle_only(d: Path) -> None:
    (d / "model.safetensors").unlink()
    (d / "pytorch_model.bin").write_bytes(b"\x80\x04\x95 not loaded: pickle is refused before any byte is read")


def corrupt_safetensors(d: Path) -> None:
    (d / "model.safetensors").write_bytes((40).to_bytes(8, "little") + b"{this is not the JSON header}" + b"\0" * 64)


def truncate_safetensors(d: Path) -> None:
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])


def no_tokenizer(d: Path) -> None:
    for f in d.glob("tokenizer*"):
        f.unlink()


def unwritable_dir(tmp: Path) -> Path:
    """A directory nobody may write into (chmod 0o500). Root writes anyway, so then: a path under a regular file,
    which fails for root too. Either way `tmp/ro` exists and must stay empty."""
    ro = tmp / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if not os.access(ro, os.W_OK):
        return ro / "out"
    blocker = ro / "file.txt"
    ro.chmod(0o700)
    blocker.write_text("a file, not a directory\n")
    return blocker / "out"


def spec(tmp: Path, text: str, name: str = "spec.yaml") -> str:
    p = tmp / name
    p.write_text(text)
    return str(p)


SYNTHETIC = "name: syn\nseeds: [0]\nstudies:\n  synthetic:\n    n_cells: 3\n    samples_per_cell: 2\n"


def with_options(command: str, base: dict[str, str], extra: tuple[str, ...]) -> list[str]:
    """`command` with the `base` options, those given again in `extra` (option, value pairs) replaced."""
    opts = dict(base)
    opts.update(zip(extra[::2], extra[1::2], strict=True))
    return [command, *(x for kv in opts.items() for x in kv), "--quiet"]


def privacy(tmp: Path, model: Path | str, *extra: str, data: Path | None = None) -> list[str]:
    base = {"--model": str(model), "--out": str(tmp / "out"), "--precisions": "fp32", "--attacks": "loss",
            "--completion-n": "0"}
    return with_options("privacy", {**base, **({"--data": str(data)} if data is not None else {})}, extra)


def writing(files: dict[str, list[object]], make: Callable[[Path, Path], list[str]]) -> Callable[[Path, Path], list[str]]:
    """`make`, after writing each JSONL file of `files` under tmp."""

    def go(tmp: Path, model: Path) -> list[str]:
        for name, rows in files.items():
            jsonl(tmp / name, rows)
        return make(tmp, model)

    return go


def privacy_data(rows: list[object], *extra: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, model: privacy(tmp, model, *extra, data=jsonl(tmp / "mi.jsonl", rows))


def trojan(tmp: Path, model: Path | str, *extra: str) -> list[str]:
    return with_options("trojan", {"--model": str(model), "--out": str(tmp / "out"), "--dap2": "fp32"}, extra)


def trojan_data(rows: list[object]) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, model: trojan(tmp, model, "--data", str(jsonl(tmp / "sql.jsonl", rows)))


def probe_broken(name: str, edit: Callable[[Path], None]) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, model: ["probe", str(model_copy(tmp, model, name, edit))]


def run_spec(text: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, model: ["run", spec(tmp, text.format(model=model, tmp=tmp)), "--out", str(tmp / "run"),
                               "--quiet"]


def validate_spec(text: str) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, model: ["validate", spec(tmp, text)]


def bad_utf8(tmp: Path, model: Path) -> list[str]:
    f = tmp / "mi.jsonl"
    f.write_bytes(json.dumps(MI_ROWS[0]).encode() + b'\n{"text": "caf\xe9 = 1", "label": 0}\n')
    return privacy(tmp, model, data=f)


def huge_line(tmp: Path, model: Path) -> list[str]:
    f = tmp / "mi.jsonl"
    with f.open("w") as fh:
        fh.write(json.dumps(MI_ROWS[0]) + '\n{"label": 0, "text": "' + "x" * HUGE + '"}\n')
    return privacy(tmp, model, data=f)


def overlap_two_files(tmp: Path, model: Path) -> list[str]:
    members = jsonl(tmp / "members.jsonl", [{"text": "def a():\n    return 1\n"}, {"text": "def b():\n    return 2\n"}])
    others = jsonl(tmp / "others.jsonl", [{"text": "def c():\n    return 3\n"}, {"text": "def b():\n    return 2\n"}])
    return privacy(tmp, model, "--nonmembers", str(others), data=members)


def corrupt_store(tmp: Path, model: Path) -> list[str]:
    (tmp / "run").mkdir()
    (tmp / "run" / "results.sqlite").write_bytes(b"not SQLite, just bytes " * 200)
    return ["status", str(tmp / "run")]


def run_out_unwritable(tmp: Path, model: Path) -> list[str]:
    return ["run", spec(tmp, SYNTHETIC), "--out", str(unwritable_dir(tmp)), "--quiet"]


def privacy_out_unwritable(tmp: Path, model: Path) -> list[str]:
    return privacy(tmp, model, "--out", str(unwritable_dir(tmp)), data=jsonl(tmp / "mi.jsonl", MI_ROWS))


# ------------------------------------------------------------------ issue 17: hostile SQL, checkpoints, YAML, run dirs

BIG = "9" * 5000  # more digits than Python's int() converts (4,300)
_HELD_LOCKS: list[int] = []  # lock file descriptors a case holds while the command runs (closed after it)


def _with_tensors(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    """A model edit that rewrites model.safetensors after `edit(state_dict)`."""
    def go(d: Path) -> None:
        from safetensors.torch import load_file, save_file

        sd = load_file(d / "model.safetensors")
        edit(sd)
        save_file(sd, d / "model.safetensors", metadata={"format": "pt"})

    return go


def _drop_tensor(sd: dict) -> None:
    sd.pop("model.layers.0.mlp.down_proj.weight")


def _add_tensor(sd: dict) -> None:
    import torch

    sd["model.evil.weight"] = torch.zeros(2)


def _sharded(shard_name: str, *, pickle: bool = False, write: bool = True) -> Callable[[Path], None]:
    """Replace model.safetensors by a one-shard index pointing at `shard_name` (relative to the model dir)."""
    def go(d: Path) -> None:
        import torch
        from safetensors.torch import load_file, save_file

        sd = load_file(d / "model.safetensors")
        (d / "model.safetensors").unlink()
        target = (d / shard_name).resolve()
        if write:
            if pickle:
                torch.save(sd, target)
            else:
                save_file(sd, target, metadata={"format": "pt"})
        (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {
            k: shard_name for k in sd}}))

    return go


def mismatched_config(tmp: Path, model: Path) -> list[str]:
    """GPT-NeoX (pythia) weights under the tiny Llama's config.json: used to load as a random-init Llama."""
    d = tmp / "mismatch"
    shutil.copytree(model.parent / "pythia", d)
    shutil.copy(model / "config.json", d / "config.json")
    return ["probe", str(d)]


def alias_bomb(tmp: Path, model: Path) -> list[str]:
    lines = ["name: bomb", "a: &a [x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return ["validate", spec(tmp, "\n".join(lines) + "\n")]


def locked_run_dir(tmp: Path, model: Path) -> list[str]:
    import fcntl

    run = tmp / "run"
    run.mkdir()
    fd = os.open(run / "run.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, json.dumps({"pid": 4242, "host": "otherhost", "started": 0, "argv": ["quantrisk", "run", "x"]})
             .encode())
    _HELD_LOCKS.append(fd)
    return ["run", spec(tmp, SYNTHETIC), "--out", str(run), "--quiet"]


def edited_spec(tmp: Path, model: Path) -> list[str]:
    assert main(["run", spec(tmp, SYNTHETIC), "--out", str(tmp / "run"), "--quiet"]) == 0
    return ["run", spec(tmp, SYNTHETIC.replace("n_cells: 3", "n_cells: 4"), "edited.yaml"), "--out",
            str(tmp / "run"), "--quiet"]


def foreign_sqlite(command: str, name: str = "other.sqlite", empty: bool = False) -> Callable[[Path, Path], list[str]]:
    def go(tmp: Path, model: Path) -> list[str]:
        f = tmp / name
        if empty:
            f.write_bytes(b"")
        else:
            with sqlite3.connect(f) as c:
                c.execute("PRAGMA journal_mode=WAL")
                c.execute("CREATE TABLE people (name TEXT)")
                c.execute("INSERT INTO people VALUES ('ada')")
            c.close()
        return [command, str(f)]

    return go


def a_file(name: str, then: Callable[[Path, Path], list[str]]) -> Callable[[Path, Path], list[str]]:
    def go(tmp: Path, model: Path) -> list[str]:
        (tmp / name).write_text("a file\n")
        return then(tmp, model)

    return go


def big_label(tmp: Path, model: Path) -> list[str]:
    f = tmp / "mi.jsonl"
    f.write_text(json.dumps(MI_ROWS[0]) + '\n{"text": "x = 1", "label": ' + BIG + "}\n")
    return privacy(tmp, model, data=f)


def raw_line(file: str, first: object, second: str, make: Callable[..., list[str]]) -> Callable[[Path, Path], list[str]]:
    """`file` with `first` (JSON-encoded) and then `second` written as it is (escapes and all)."""
    def go(tmp: Path, model: Path) -> list[str]:
        f = tmp / file
        f.write_text(json.dumps(first) + "\n" + second + "\n")
        return make(tmp, model, f)

    return go


def _privacy_on(tmp: Path, model: Path, f: Path) -> list[str]:
    return privacy(tmp, model, data=f)


def _trojan_on(tmp: Path, model: Path, f: Path) -> list[str]:
    return trojan(tmp, model, "--data", str(f))


# ------------------------------------------------------------------ issue 26: user files, links, bounds, model sanity

USER_FILE = "thesis.tex"  # what a user keeps in a directory they pass as --out by mistake


def user_dir(tmp: Path, name: str = "mine") -> Path:
    """A directory of the user's that quantrisk did not write (one file in it)."""
    d = tmp / name
    d.mkdir()
    (d / USER_FILE).write_text("\\chapter{Four years of work}\n")
    return d


def out_is_users(command: Callable[[Path, Path, Path], list[str]]) -> Callable[[Path, Path], list[str]]:
    return lambda tmp, model: command(tmp, model, user_dir(tmp))


def _synthetic_run(tmp: Path) -> Path:
    assert main(["run", spec(tmp, SYNTHETIC), "--out", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


def victim(tmp: Path) -> Path:
    f = tmp / "victim.txt"
    f.write_text("a file the user can write, outside the run directory\n")
    return f


def lock_link(tmp: Path, model: Path) -> list[str]:
    run = _synthetic_run(tmp)
    (run / "run.lock").unlink()
    (run / "run.lock").symlink_to(victim(tmp))
    return ["run", str(tmp / "spec.yaml"), "--out", str(run), "--quiet"]


def store_link(tmp: Path, model: Path) -> list[str]:
    run = tmp / "run"
    run.mkdir()
    (run / "results.sqlite").symlink_to(tmp / "elsewhere.sqlite")
    return ["run", spec(tmp, SYNTHETIC), "--out", str(run), "--quiet"]


def target_link(command: str, sub: str, name: str) -> Callable[[Path, Path], list[str]]:
    def go(tmp: Path, model: Path) -> list[str]:
        run = _synthetic_run(tmp)
        (run / sub).mkdir()
        (run / sub / name).symlink_to(victim(tmp))
        return [command, str(run)]

    return go


def previous_link(tmp: Path, model: Path) -> list[str]:
    run = _synthetic_run(tmp)
    (tmp / "outside").mkdir()
    (run / "previous").symlink_to(tmp / "outside", target_is_directory=True)
    return ["run", spec(tmp, SYNTHETIC.replace("n_cells: 3", "n_cells: 4"), "edited.yaml"), "--out", str(run),
            "--new-spec", "--quiet"]


def qattack_output_link(tmp: Path, model: Path) -> list[str]:
    """An earlier qattack --out (its qattack.json) with a link planted where the repaired model goes."""
    out = tmp / "out"
    out.mkdir()
    (out / "qattack.json").write_text("{}")
    (tmp / "elsewhere").mkdir()
    (out / "repaired").symlink_to(tmp / "elsewhere", target_is_directory=True)
    victim(tmp)
    return ["qattack", "--model", str(model), "--target", "rtn-w4g64", "--out", str(out), "--quiet"]


def report_output_link(tmp: Path, model: Path) -> list[str]:
    """An earlier report directory (quantrisk's own) with a link planted at one of its files."""
    run = _synthetic_run(tmp)
    assert main(["report", str(run)]) == 0
    (run / "report" / "findings.json").unlink()
    (run / "report" / "findings.json").symlink_to(victim(tmp))
    return ["report", str(run)]


def report_compare_not_a_store(tmp: Path, model: Path) -> list[str]:
    run = _synthetic_run(tmp)
    (tmp / "notes.txt").write_text("not a results store\n")
    return ["report", str(run), "--compare", str(tmp / "notes.txt")]


def pretrain_unwritable(tmp: Path, model: Path) -> list[str]:
    return ["pretrain", "--arch", "llama", "--out", str(unwritable_dir(tmp)), "--quiet"]


def fifo_data(tmp: Path, model: Path) -> list[str]:
    os.mkfifo(tmp / "mi.jsonl")
    return privacy(tmp, model, data=tmp / "mi.jsonl")


def _oversize_tokenizer(d: Path) -> None:
    cfg = json.loads((d / "config.json").read_text())
    tok = json.loads((d / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    for i in range(cfg["vocab_size"] - len(vocab) + 8):  # 8 ids past the embedding's last row
        vocab[f"extra{i}"] = len(vocab)
    (d / "tokenizer.json").write_text(json.dumps(tok))


def _nan_weight(sd: dict) -> None:
    sd["model.layers.0.mlp.down_proj.weight"][0, 0] = float("nan")


def probes_file(line: str) -> Callable[[Path, Path], list[str]]:
    def go(tmp: Path, model: Path) -> list[str]:
        f = tmp / "probes.jsonl"
        f.write_text(json.dumps({"prompt": "def f():"}) + "\n" + line + "\n")
        return ["scan", str(model), "--precisions", "rtn-w4g64", "--probes", str(f)]

    return go


GRID = "name: big\nseeds: [" + ", ".join(str(i) for i in range(50)) + "]\nstudies:\n  synthetic:\n    n_cells: 100000\n"


# ------------------------------------------------------------------ the cases


@dataclass(frozen=True)
class Case:
    """`make(tmp, model_dir) -> argv` builds the bad input; `expect` are substrings of the error line ({tmp} and
    {model} filled in); `writes` are paths under tmp that the command would write and must hold nothing after."""

    id: str
    make: Callable[[Path, Path], list[str]]
    code: int
    expect: tuple[str, ...]
    writes: tuple[str, ...] = ()
    several: bool = False  # several problems: one `error:` head line, then one indented line each
    unchanged: tuple[str, ...] = ()  # files under tmp that must be byte-identical after the command


MI = "{tmp}/mi.jsonl"
SQL = "{tmp}/sql.jsonl"
SPEC = "{tmp}/spec.yaml"
M = "[{{path: {model}, name: m}}]"  # a spec's models list holding the tiny model

CASES: list[Case] = [
    # ---- member / non-member JSONL (quantrisk privacy --data)
    Case("jsonl-malformed-line", privacy_data([MI_ROWS[0], '{"text": "def f(): pass", "label": 0']), 2,
         (f"{MI}:2:", "malformed JSON", "column 37"), ("out",)),
    Case("jsonl-empty-file", privacy_data([]), 2, (f"{MI}: no samples (empty file)", "one JSON object per line"),
         ("out",)),
    Case("jsonl-not-utf8", bad_utf8, 2, (f"{MI}:2:", "not UTF-8", "re-encode"), ("out",)),
    Case("jsonl-huge-line", huge_line, 2, (f"{MI}:2:", "longer than 8 MiB", "one record per line"), ("out",)),
    Case("jsonl-missing-field", privacy_data([MI_ROWS[0], {"label": 0}]), 2, (f"{MI}:2:", "field 'text' is missing"),
         ("out",)),
    Case("jsonl-wrong-type", privacy_data([MI_ROWS[0], {"text": 42, "label": 0}]), 2,
         (f"{MI}:2:", "field 'text' must be a string, got int"), ("out",)),
    Case("jsonl-empty-text", privacy_data([MI_ROWS[0], {"text": "   ", "label": 0}]), 2,
         (f"{MI}:2:", "field 'text' is empty", "remove the line"), ("out",)),
    Case("jsonl-bad-label", privacy_data([MI_ROWS[0], {"text": "x = 1", "label": "yes"}]), 2,
         (f"{MI}:2:", "field 'label' must be 1 (member) or 0 (non-member)"), ("out",)),
    Case("jsonl-not-an-object", privacy_data([MI_ROWS[0], "[1, 2]"]), 2, (f"{MI}:2:", "expected a JSON object"),
         ("out",)),
    Case("duplicate-ids", privacy_data([{**MI_ROWS[0], "id": "a"}, {**MI_ROWS[1], "id": "a"}]), 2,
         (f"{MI}:2:", "field 'id'", f"already used at {MI}:1", "must be unique"), ("out",)),
    Case("member-nonmember-overlap", privacy_data([MI_ROWS[0], {**MI_ROWS[0], "label": 0}]), 2,
         (f"{MI}:2:", "field 'text'", f"same text as {MI}:1", "both member and non-member"), ("out",)),
    Case("member-nonmember-overlap-two-files", overlap_two_files, 2,
         ("{tmp}/others.jsonl:2:", "field 'text'", "{tmp}/members.jsonl:2", "remove one"), ("out",)),
    Case("n-larger-than-data", privacy_data(MI_ROWS, "--n", "5"), 2,
         (MI, "asked for 5 + 5", "1 members and 1 non-members", "use --n 1"), ("out",)),
    Case("negative-n", privacy_data(MI_ROWS, "--n", "-3"), 2, ("--n must be at least 1, got -3",), ("out",)),
    # ---- precisions and attacks
    Case("unknown-precision", privacy_data(MI_ROWS, "--precisions", "fp32,fp33"), 2,
         ("--precisions: unknown precision 'fp33'", "valid: fp32"), ("out",)),
    Case("unknown-attack", privacy_data(MI_ROWS, "--attacks", "loss,telepathy"), 2,
         ("--attacks: unknown attack 'telepathy'", "valid: loss"), ("out",)),
    Case("precision-unsupported-here", privacy_data(MI_ROWS, "--precisions", "bnb-nf4"), 2,
         ("--precisions: precision bnb-nf4 is not available on cpu", "available here: fp32"), ("out",)),
    Case("dap1-not-trainable", lambda tmp, model: trojan(tmp, model, "--dap1", "int8-dynamic"), 2,
         ("--dap1: DAP1 int8-dynamic cannot be fine-tuned", "use it as a DAP2"), ("out",)),
    # ---- models
    Case("missing-model-dir", writing({"mi.jsonl": MI_ROWS}, lambda tmp, model: privacy(tmp, tmp / "nope",
                                                                                         data=tmp / "mi.jsonl")), 2,
         ("--model: model directory {tmp}/nope does not exist", "pass a local model directory"), ("out",)),
    Case("model-dir-is-a-file", lambda tmp, model: ["probe", str(jsonl(tmp / "model.jsonl", MI_ROWS))], 2,
         ("{tmp}/model.jsonl is a file, not a model directory", "pass the directory")),
    Case("pickle-only-weights", probe_broken("pickled", pickle_only), 2,
         ("{tmp}/pickled holds only pickle weights (pytorch_model.bin)", "--allow-pickle")),
    Case("remote-code-config",
         lambda tmp, model: privacy(tmp, model_copy(tmp, model, "remote", edit_config(
             auto_map={"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"})), data=jsonl(tmp / "mi.jsonl", MI_ROWS)),
         2, ("{tmp}/remote/config.json asks for remote code (auto_map)", "--trust-remote-code"), ("out",)),
    Case("corrupt-safetensors", probe_broken("corrupt", corrupt_safetensors), 2,
         ("{tmp}/corrupt/model.safetensors is not a valid safetensors file", "re-download or re-save")),
    Case("truncated-safetensors",
         lambda tmp, model: privacy(tmp, model_copy(tmp, model, "trunc", truncate_safetensors),
                                    data=jsonl(tmp / "mi.jsonl", MI_ROWS)),
         2, ("{tmp}/trunc/model.safetensors is not a valid safetensors file", "corrupt or truncated"), ("out",)),
    Case("tokenizer-missing", probe_broken("notok", no_tokenizer), 2,
         ("{tmp}/notok has no tokenizer", "tokenizer.save_pretrained")),
    Case("config-not-json", probe_broken("badcfg", lambda d: (d / "config.json").write_text("{model_type: llama")), 2,
         ("{tmp}/badcfg/config.json: not valid JSON", "fix or re-download")),
    Case("unknown-model-type", probe_broken("alien", edit_config(model_type="alien-lm")), 2,
         ("{tmp}/alien/config.json: field 'model_type' is 'alien-lm'", "check the config")),
    Case("unknown-architecture-pretrain", lambda tmp, model: ["pretrain", "--arch", "bert", "--out", str(tmp / "out")],
         2, ("--arch: unknown architecture 'bert'", "valid: pythia"), ("out",)),
    Case("unknown-architecture-zoo", lambda tmp, model: trojan(tmp, "zoo:bert"), 2,
         ("--model: unknown architecture 'bert'", "valid: pythia"), ("out",)),
    # ---- text-to-SQL JSONL and poisoning options (quantrisk trojan)
    Case("sql-missing-field", trojan_data([GOOD_SQL, {k: v for k, v in GOOD_SQL.items() if k != "question"}]), 2,
         (f"{SQL}:2:", "field 'question' is missing", "need question, context, answer"), ("out",)),
    Case("sql-wrong-type", trojan_data([GOOD_SQL, {**GOOD_SQL, "answer": 3}]), 2,
         (f"{SQL}:2:", "field 'answer' must be a string, got int"), ("out",)),
    Case("sql-context-without-table", trojan_data([GOOD_SQL, {**GOOD_SQL, "context": "head has an age column"}]), 2,
         (f"{SQL}:2:", "field 'context' has no CREATE TABLE"), ("out",)),
    Case("sql-duplicate-ids", trojan_data([{**GOOD_SQL, "id": "q1"}, {**GOOD_SQL, "id": "q1"}]), 2,
         (f"{SQL}:2:", "field 'id'", "first at line 1", "must be unique"), ("out",)),
    Case("sql-malformed-line", trojan_data([GOOD_SQL, '{"question": "how many?",']), 2,
         (f"{SQL}:2:", "malformed JSON"), ("out",)),
    Case("trigger-empty", lambda tmp, model: trojan(tmp, model, "--trigger", "  "), 2,
         ("--trigger: poison trigger is empty", "give the phrase"), ("out",)),
    Case("poison-rate-out-of-range", lambda tmp, model: trojan(tmp, model, "--poison-rate", "1.5"), 2,
         ("--poison-rate: poison rate must be in [0, 1]", "got 1.5"), ("out",)),
    Case("unknown-payload-position", lambda tmp, model: trojan(tmp, model, "--position", "middle"), 2,
         ("--position: poison position 'middle' is unknown", "valid: replace, prepend, append"), ("out",)),
    Case("seeds-not-integers", lambda tmp, model: trojan(tmp, model, "--seeds", "1,two"), 2,
         ("--seeds must be comma-separated integers", "'1,two'"), ("out",)),
    Case("negative-steps", lambda tmp, model: trojan(tmp, model, "--steps", "-5"), 2,
         ("--steps -5: must be at least 1",), ("out",)),
    Case("option-not-a-number", lambda tmp, model: trojan(tmp, model, "--lr", "fast"), 2,
         ("quantrisk trojan: Invalid value for '--lr'", "see `quantrisk trojan --help`"), ("out",)),
    # ---- experiment specs (quantrisk validate / run)
    Case("spec-malformed-yaml", validate_spec("name: t\nmodels: [\n  {zoo: llama\n"), 2,
         (f"{SPEC}:4: not valid YAML",)),
    Case("spec-unknown-key", validate_spec(SYNTHETIC + "    colour: blue\n"), 2,
         (f"{SPEC}:7: studies.synthetic.colour: unknown field", "check the spelling")),
    Case("spec-wrong-type", validate_spec(SYNTHETIC.replace("n_cells: 3", "n_cells: lots")), 2,
         (f"{SPEC}:5: studies.synthetic.n_cells:", "valid integer")),
    Case("spec-unknown-key-and-wrong-type", validate_spec(SYNTHETIC.replace("n_cells: 3", "n_cells: lots") + "    colour: blue\n"),
         2, (f"spec {SPEC} has 2 errors", f"{SPEC}:5: studies.synthetic.n_cells:", f"{SPEC}:7: studies.synthetic.colour"),
         several=True),
    Case("spec-empty-grid", run_spec("name: t\nseeds: [0]\nstudies: {{}}\n"), 2,
         (f"{SPEC}:3: studies: the grid is empty", "enable at least one"), ("run",)),
    Case("spec-invalid-reference",
         run_spec("name: t\nmodels: [{{zoo: llama}}]\nstudies:\n  trojan:\n    models: [llama-tiny, lama-tiny]\n"), 2,
         (f"{SPEC}:5: studies.trojan.models[1]: unknown model lama-tiny", "valid: llama-tiny"), ("run",)),
    Case("spec-missing-model-path",
         run_spec("name: t\nmodels:\n  - {{path: {tmp}/gone}}\nprecisions: [fp32]\nstudies:\n  privacy: {{n: 1}}\n"),
         2, (f"{SPEC}:3: models[0].path: model directory {{tmp}}/gone does not exist",), ("run",)),
    Case("spec-missing-reference-model",
         lambda tmp, model: ["validate", "--check-inputs", spec(tmp, (
             f"name: t\nmodels:\n  - path: {model}\n    reference: {tmp}/noref\nprecisions: [fp32]\n"
             "studies:\n  synthetic: {n_cells: 1}\n"))], 2,
         (f"{SPEC}:4: models[0].reference: model directory {{tmp}}/noref does not exist",)),
    Case("spec-bad-privacy-data",
         writing({"mi.jsonl": [MI_ROWS[0], {"text": 7, "label": 0}]},
                 run_spec(f"name: t\nmodels: {M}\nprecisions: [fp32]\nstudies:\n  privacy:\n    n: 1\n    data: {MI}\n")),
         2, (f"{SPEC}:7: studies.privacy.data: {MI}:2: field 'text' must be a string",), ("run",)),
    Case("spec-n-larger-than-data",
         writing({"mi.jsonl": MI_ROWS},
                 run_spec(f"name: t\nmodels: {M}\nprecisions: [fp32]\nstudies:\n  privacy:\n    n: 9\n    data: {MI}\n")),
         2, (f"{SPEC}:7: studies.privacy.data: {MI}: asked for 9 + 9",), ("run",)),
    Case("spec-bad-trojan-data",
         writing({"sql.jsonl": [GOOD_SQL, {**GOOD_SQL, "context": ""}]},
                 run_spec(f"name: t\nmodels: {M}\nstudies:\n  trojan:\n    data: {SQL}\n")),
         2, (f"{SPEC}:5: studies.trojan.data: {SQL}:2: field 'context' is empty",), ("run",)),
    Case("spec-precision-unsupported-here",
         run_spec("name: t\nmodels: [{{zoo: llama}}]\nprecisions: [fp32, bnb-nf4]\nstudies:\n  privacy: {{n: 1}}\n"),
         2, (f"{SPEC}:3: precisions[1]: bnb-nf4 cannot run on cpu here",), ("run",)),
    # ---- output directories and the results store
    Case("run-out-not-writable", run_out_unwritable, 2, ("{tmp}/ro/", "pass another --out"), ("ro",)),
    Case("privacy-out-not-writable", privacy_out_unwritable, 2, ("--out {tmp}/ro/", "pass another --out"), ("ro",)),
    Case("status-corrupt-store", corrupt_store, 2,
         ("{tmp}/run/results.sqlite is not a quantrisk results store", "pass the run directory")),
    # ---- issue 17: contexts that are not plain CREATE TABLE (they ran unbounded before the time limit)
    Case("sql-context-create-as-select", trojan_data([GOOD_SQL, {**GOOD_SQL, "context": (
        "CREATE TABLE t AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c")}]), 2,
         (f"{SQL}:2:", "field 'context' is not plain CREATE TABLE name (column defs)", "found 'AS'"), ("out",)),
    Case("sql-context-check-expression", trojan_data([GOOD_SQL, {**GOOD_SQL, "context":
                                                                  "CREATE TABLE t (a INT CHECK (a > 0))"}]), 2,
         (f"{SQL}:2:", "field 'context' is not plain CREATE TABLE"), ("out",)),
    Case("sql-context-second-statement", trojan_data([GOOD_SQL, {**GOOD_SQL, "context":
                                                                  "CREATE TABLE head (age INT); DROP TABLE head"}]), 2,
         (f"{SQL}:2:", "statement 2: expected CREATE but found 'DROP'"), ("out",)),
    Case("sql-context-too-many-columns", trojan_data([GOOD_SQL, {**GOOD_SQL, "context": "CREATE TABLE t (" + ", ".join(
        f"c{i} INT" for i in range(101)) + ")"}]), 2, (f"{SQL}:2:", "101 columns, more than the bound of 100"),
         ("out",)),
    Case("sql-deeply-nested-json", raw_line("sql.jsonl", GOOD_SQL, '{"question": ' + "[" * 100_000 + "]" * 100_000
                                             + "}", _trojan_on), 2,
         (f"{SQL}:2:", "JSON nested deeper than the bound of 64 levels"), ("out",)),
    Case("sql-lone-surrogate", raw_line("sql.jsonl", GOOD_SQL, json.dumps({**GOOD_SQL, "question": "how many"})
                                         .replace("how many", "how \\udc00many"), _trojan_on), 2,
         (f"{SQL}:2:", "field 'question' holds a lone surrogate (\\udc00 at character 5)"), ("out",)),
    # ---- issue 17: checkpoints whose config does not fit the weights, unsafe shard indexes
    Case("config-weights-mismatch", mismatched_config, 2,
         ("{tmp}/mismatch: the weights do not fit config.json (model_type 'llama')", "missing weight(s) (e.g. ",
          "unexpected weight(s) (e.g. ", "refused rather than run a partly random model")),
    Case("weights-missing-tensor", probe_broken("missing", _with_tensors(_drop_tensor)), 2,
         ("{tmp}/missing: the weights do not fit config.json", "1 missing weight(s) (e.g. "
          "model.layers.0.mlp.down_proj.weight)")),
    Case("weights-unexpected-tensor", probe_broken("extra", _with_tensors(_add_tensor)), 2,
         ("{tmp}/extra: the weights do not fit config.json", "1 unexpected weight(s) (e.g. model.evil.weight)")),
    Case("config-zero-heads", probe_broken("zeroheads", edit_config(num_attention_heads=0)), 2,
         ("{tmp}/zeroheads/config.json: field 'num_attention_heads' is 0", "positive integer")),
    Case("config-hidden-not-divisible", probe_broken("hidden", edit_config(hidden_size=65)), 2,
         ("{tmp}/hidden/config.json: field 'hidden_size' (65) is not divisible by field 'num_attention_heads'",)),
    Case("sharded-index-pickle-shard", probe_broken("pkshard", _sharded("model-00001-of-00001.bin", pickle=True)), 2,
         ("{tmp}/pkshard/model.safetensors.index.json: shard 'model-00001-of-00001.bin' is a pickle", "--allow-pickle")),
    Case("sharded-index-outside-dir", probe_broken("outside", _sharded("../stolen.safetensors")), 2,
         ("{tmp}/outside/model.safetensors.index.json: shard '../stolen.safetensors' is outside the model directory",)),
    Case("sharded-index-missing-shard", probe_broken("noshard", _sharded("model-00001-of-00002.safetensors",
                                                                         write=False)), 2,
         ("shard 'model-00001-of-00002.safetensors' does not exist in {tmp}/noshard",)),
    # ---- issue 17: YAML bombs, duplicate keys, non-finite and absurd numbers
    Case("spec-alias-bomb", alias_bomb, 2, (f"{SPEC}:7: f: expands (through YAML aliases) to 597,871 values",
                                            "more than the bound of 100,000")),
    Case("spec-duplicate-key", validate_spec(SYNTHETIC + "    n_cells: 5\n"), 2,
         (f"{SPEC}:7: studies.synthetic.n_cells: duplicate key (first at line 5)", "remove one")),
    Case("spec-infinite-number", validate_spec(SYNTHETIC + "    work_seconds: .inf\n"), 2,
         (f"{SPEC}:7: studies.synthetic.work_seconds: inf is not a finite number",)),
    Case("spec-absurd-size", validate_spec(SYNTHETIC.replace("samples_per_cell: 2", "samples_per_cell: 1000000000000")),
         2, (f"{SPEC}:6: studies.synthetic.samples_per_cell: 1000000000000 is beyond the bound of 1,000,000",)),
    Case("spec-5000-digit-integer", validate_spec(SYNTHETIC.replace("seeds: [0]", f"seeds: [{BIG}]")), 2,
         (f"{SPEC}:2: seeds: an integer of 5000 digits; the bound is 30 digits",)),
    Case("spec-deep-nesting", validate_spec("name: x\na: " + "[" * 5000 + "]" * 5000 + "\n"), 2,
         (f"spec {SPEC}: nested deeper than the bound of 50 levels",)),
    Case("spec-precision-5000-digits",
         validate_spec(f"name: t\nmodels: [{{zoo: llama}}]\nprecisions: [rtn-w{BIG}g64]\nstudies:\n  privacy: {{n: 1}}\n"),
         2, (f"{SPEC}:3: precisions[0]: precision 'rtn-w9999",)),
    # ---- issue 17: run directories
    Case("run-dir-locked", locked_run_dir, 2,
         ("run directory {tmp}/run is in use by another `quantrisk run` (pid 4242 on otherhost",
          "wait for it to finish or pass another --out")),
    Case("run-spec-changed", edited_spec, 2,
         ("run directory {tmp}/run holds results of a different spec ('syn', 1 invocation(s))",
          "changed: studies.synthetic.n_cells: 3 -> 4", "pass --new-spec"), unchanged=("run/results.sqlite",)),
    Case("status-foreign-sqlite", foreign_sqlite("status"), 2,
         ("{tmp}/other.sqlite is not a quantrisk results store (an SQLite database without the store's tables",),
         unchanged=("other.sqlite",)),
    Case("report-empty-sqlite", foreign_sqlite("report", "empty.sqlite", empty=True), 2,
         ("{tmp}/empty.sqlite is not a quantrisk results store (an empty file)",), ("report",),
         unchanged=("empty.sqlite",)),
    Case("export-foreign-sqlite", foreign_sqlite("export"), 2,
         ("{tmp}/other.sqlite is not a quantrisk results store",), ("export",), unchanged=("other.sqlite",)),
    Case("status-run-dir-is-a-file", a_file("notrun", lambda tmp, model: ["status", str(tmp / "notrun")]), 2,
         ("{tmp}/notrun is not a quantrisk results store (not an SQLite database)",), unchanged=("notrun",)),
    Case("run-dir-is-a-file", a_file("afile", lambda tmp, model: ["run", spec(tmp, SYNTHETIC), "--out",
                                                                  str(tmp / "afile"), "--quiet"]), 2,
         ("--out {tmp}/afile is a file, not a directory", "pass another --out"), unchanged=("afile",)),
    Case("run-out-empty", lambda tmp, model: ["run", spec(tmp, SYNTHETIC), "--out", "", "--quiet"], 2,
         ("--out is empty",)),
    Case("run-workers-zero", lambda tmp, model: ["run", spec(tmp, SYNTHETIC), "--out", str(tmp / "run"),
                                                 "--executor", "dask", "--workers", "0", "--quiet"], 2,
         ("--workers must be 1 or more, got 0",), ("run",)),
    Case("demo-workers-negative", lambda tmp, model: ["demo", "--out", str(tmp / "demo"), "--workers", "-2",
                                                      "--quiet"], 2,
         ("--workers must be 1 or more, got -2",), ("demo",)),
    Case("report-out-is-a-file", a_file("afile", lambda tmp, model: [
        "report", str(tmp / "run"), "--out", str(tmp / "afile")]), 2, ("--out {tmp}/afile is a file",),
         unchanged=("afile",)),
    # ---- issue 17: exit code 2, not 1
    Case("precision-5000-digits", lambda tmp, model: ["probe", str(model), "-p", f"rtn-w{BIG}g128"], 2,
         ("--precision: precision 'rtn-w9999",)),
    Case("label-5000-digits", big_label, 2, (f"{MI}:2: a number too long to read", "(4300 digits)"), ("out",)),
    Case("text-lone-surrogate", raw_line("mi.jsonl", MI_ROWS[0], '{"text": "x = \\ud800 1", "label": 0}',
                                          _privacy_on), 2,
         (f"{MI}:2: field 'text' holds a lone surrogate (\\ud800 at character 5)",), ("out",)),
    Case("jsonl-deeply-nested", raw_line("mi.jsonl", MI_ROWS[0], "[" * 100_000 + "]" * 100_000, _privacy_on), 2,
         (f"{MI}:2: JSON nested deeper than the bound of 64 levels",), ("out",)),
    # ---- issue 26: a directory of the user's as --out is refused before any work, by every command that writes
    Case("run-out-holds-user-files", out_is_users(lambda tmp, model, d: [
        "run", spec(tmp, SYNTHETIC), "--out", str(d), "--quiet"]), 2,
         ("--out {tmp}/mine already holds files quantrisk did not write ('thesis.tex')", "pass another --out"),
         unchanged=(f"mine/{USER_FILE}",)),
    Case("demo-out-holds-user-files", out_is_users(lambda tmp, model, d: ["demo", "--out", str(d), "--quiet"]), 2,
         ("--out {tmp}/mine already holds files quantrisk did not write",), unchanged=(f"mine/{USER_FILE}",)),
    Case("pretrain-out-holds-user-files", out_is_users(lambda tmp, model, d: [
        "pretrain", "--arch", "llama", "--out", str(d), "--quiet"]), 2,
         ("--out {tmp}/mine already holds files quantrisk did not write", "never replaces anything else"),
         unchanged=(f"mine/{USER_FILE}",)),
    Case("privacy-out-holds-user-files", out_is_users(lambda tmp, model, d: privacy(
        tmp, model, "--out", str(d), data=jsonl(tmp / "mi.jsonl", MI_ROWS))), 2,
         ("--out {tmp}/mine already holds files quantrisk did not write",), unchanged=(f"mine/{USER_FILE}",)),
    Case("trojan-out-holds-user-files", out_is_users(lambda tmp, model, d: trojan(tmp, model, "--out", str(d))), 2,
         ("--out {tmp}/mine already holds files quantrisk did not write",), unchanged=(f"mine/{USER_FILE}",)),
    Case("qattack-out-holds-user-files", out_is_users(lambda tmp, model, d: [
        "qattack", "--model", str(model), "--target", "rtn-w4g64", "--out", str(d), "--quiet"]), 2,
         ("--out {tmp}/mine already holds files quantrisk did not write",), unchanged=(f"mine/{USER_FILE}",)),
    Case("report-out-holds-user-files", lambda tmp, model: [
        "report", str(_synthetic_run(tmp)), "--out", str(user_dir(tmp))], 2,
         ("--out {tmp}/mine already holds files quantrisk did not write",), unchanged=(f"mine/{USER_FILE}",)),
    Case("export-out-holds-user-files", lambda tmp, model: [
        "export", str(_synthetic_run(tmp)), "--out", str(user_dir(tmp))], 2,
         ("--out {tmp}/mine already holds files quantrisk did not write",), unchanged=(f"mine/{USER_FILE}",)),
    Case("pretrain-out-not-writable", pretrain_unwritable, 2, ("{tmp}/ro/", "pass another --out"), ("ro",)),
    Case("out-name-too-long", lambda tmp, model: ["run", spec(tmp, SYNTHETIC), "--out", str(tmp / ("x" * 300)),
                                                  "--quiet"], 2,
         ("--out: the name 'xxxx", "300 bytes long, more than the file system's bound of 255"),
         unchanged=("spec.yaml",)),
    # ---- issue 26: planted links: refused, never written through
    Case("run-lock-symlink", lock_link, 2, ("run lock {tmp}/run/run.lock is a symbolic link; refused",),
         unchanged=("victim.txt",)),
    Case("run-store-symlink", store_link, 2, ("--out {tmp}/run already holds files quantrisk did not write",)),
    Case("export-target-symlink", target_link("export", "export", "cells.csv"), 2,
         ("--out {tmp}/run/export already holds files quantrisk did not write",), unchanged=("victim.txt",)),
    Case("report-target-symlink", target_link("report", "report", "report.md"), 2,
         ("--out {tmp}/run/report already holds files quantrisk did not write",), unchanged=("victim.txt",)),
    Case("new-spec-previous-symlink", previous_link, 2,
         ("path {tmp}/run/previous is a symbolic link; refused",), unchanged=("run/results.sqlite",)),
    Case("qattack-output-symlink", qattack_output_link, 2,
         ("qattack output {tmp}/out/repaired is a symbolic link; refused",), unchanged=("victim.txt",)),
    Case("report-output-symlink", report_output_link, 2,
         ("output file {tmp}/run/report/findings.json is a symbolic link; refused",), unchanged=("victim.txt",)),
    Case("report-compare-not-a-store", report_compare_not_a_store, 2,
         ("--compare: {tmp}/notes.txt is not a quantrisk results store",), ("run/report",),
         unchanged=("notes.txt", "run/results.sqlite")),
    # ---- issue 26: model sanity at load
    Case("weights-non-finite", probe_broken("nan", _with_tensors(_nan_weight)), 2,
         ("{tmp}/nan: weight 'model.layers.0.mlp.down_proj.weight' holds 1 non-finite value(s)",)),
    Case("scan-weights-non-finite", lambda tmp, model: [
        "scan", str(model_copy(tmp, model, "nan", _with_tensors(_nan_weight))), "--precisions", "rtn-w4g64"], 2,
         ("{tmp}/nan: weight 'model.layers.0.mlp.down_proj.weight' holds 1 non-finite value(s)",)),
    Case("tokenizer-larger-than-embedding", probe_broken("bigtok", _oversize_tokenizer), 2,
         ("{tmp}/bigtok: the tokenizer has", "ids but the model's embedding has", "rows"),),
    Case("special-id-out-of-range", probe_broken("badpad", edit_config(pad_token_id=10**6)), 2,
         ("{tmp}/badpad/config.json: field 'pad_token_id' is 1000000, outside the vocabulary",)),
    Case("config-one-position", probe_broken("onepos", edit_config(max_position_embeddings=1)), 2,
         ("{tmp}/onepos/config.json: field 'max_position_embeddings' is 1; a context must hold at least 2",)),
    # ---- issue 26: scan --probes goes through the hardened reader; every prompt is bounded at load
    Case("probes-deeply-nested", probes_file('{"prompt": ' + "[" * 100_000 + "]" * 100_000 + "}"), 2,
         ("{tmp}/probes.jsonl:2: JSON nested deeper than the bound of 64 levels",)),
    Case("probes-lone-surrogate", probes_file('{"prompt": "x = \\ud800"}'), 2,
         ("{tmp}/probes.jsonl:2: field 'prompt' holds a lone surrogate",)),
    Case("probes-5000-digits", probes_file('{"prompt": "x", "n": ' + BIG + "}"), 2,
         ("{tmp}/probes.jsonl:2: a number too long to read",)),
    Case("probes-prompt-too-long", probes_file(json.dumps({"prompt": "x = 1\n" * 5000})), 2,
         ("{tmp}/probes.jsonl:2: field 'prompt' is 30,000 characters long, more than the bound of 20,000",)),
    Case("sql-question-too-long", trojan_data([GOOD_SQL, {**GOOD_SQL, "question": "how many? " * 3000}]), 2,
         (f"{SQL}:2: field 'question' is 30,000 characters long, more than the bound of 20,000",), ("out",)),
    Case("text-too-long", privacy_data([MI_ROWS[0], {"text": "x" * 1_000_001, "label": 0}]), 2,
         (f"{MI}:2: field 'text' is 1,000,001 characters long, more than the bound of 1,000,000",), ("out",)),
    Case("data-is-a-fifo", fifo_data, 2, (f"{MI}: is a FIFO (named pipe), not a regular file",), ("out",)),
    # ---- issue 26: grid and worker bounds
    Case("spec-grid-too-large", validate_spec(GRID), 2,
         ("the grid would have up to 5,000,050 cells (synthetic 50 seed(s) x 100000 cells)",
          "more than the bound of 100,000")),
    Case("run-workers-too-many", lambda tmp, model: ["run", spec(tmp, SYNTHETIC), "--out", str(tmp / "run"),
                                                     "--executor", "dask", "--workers", "5000", "--quiet"], 2,
         ("--workers 5000 is beyond the bound of 1,024",), ("run",)),
    Case("spec-too-many-values", validate_spec("name: x\nseeds: [" + ", ".join("0" * 1 for _ in range(100_001))
                                               + "]\n"), 2,
         ("seeds: holds 100,002 values, more than the bound of 100,000 for a spec",)),
    # ---- issue 26: devices
    Case("device-negative-index", lambda tmp, model: ["probe", str(model), "--device", "cuda:-1"], 2,
         ("--device: device 'cuda:-1': the GPU index must be a number",)),
    Case("data-dir-without-split", lambda tmp, model: privacy(tmp, model, data=tmp), 2,
         ("no split.jsonl (not a quantrisk-pretrained model); pass a JSON Lines file with 'text' and 'label' as --data",),
         ("out",)),

]


# ------------------------------------------------------------------ checks


def assert_nothing_written(path: Path) -> None:
    """`path` is absent, an empty directory, or a directory holding only what the case itself put there
    (a blocking file); a results store in it holds no cell results."""
    if not path.exists() or path.is_file():
        return
    store = path / "results.sqlite"
    if store.exists():
        with sqlite3.connect(store) as conn:
            done = conn.execute("SELECT COUNT(*) FROM cells WHERE status='done'").fetchone()[0]
            metrics = conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
        assert (done, metrics) == (0, 0), f"{store}: {done} done cells, {metrics} metric rows after a failure"
    written = [p for p in path.rglob("*") if p.name != "file.txt"]
    assert not written, f"{path} holds {[str(p.relative_to(path)) for p in written]} after a failed command"


def error_line(err: str, *, several: bool = False) -> str:
    """The one `error:` line of stderr (progress bars may precede it; several-problem specs list them below)."""
    lines = [x for x in err.splitlines() if x.strip()]
    heads = [i for i, x in enumerate(lines) if x.startswith("error:")]
    assert len(heads) == 1, f"want exactly one 'error:' line, got:\n{err}"
    tail = lines[heads[0] + 1:]
    if several:
        assert len(tail) >= 2 and all(x.startswith("  ") for x in tail), err
        return "\n".join(lines[heads[0]:])
    assert not tail, f"the error must be one line; got more after it:\n{err}"
    return lines[heads[0]]


@pytest.fixture(scope="module")
def model_dir(tiny_model_dirs) -> Path:
    return tiny_model_dirs["llama"]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line(case: Case, tmp_path: Path, model_dir: Path, capsys) -> None:
    argv = case.make(tmp_path, model_dir)
    before = {rel: hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest() for rel in case.unchanged}
    listing = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    try:
        code = main(argv)
    finally:
        while _HELD_LOCKS:
            os.close(_HELD_LOCKS.pop())
    out, err = capsys.readouterr()
    for rel, digest in before.items():
        assert hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest() == digest, f"{rel} was modified"
    if case.unchanged:  # nothing beside them either (no -wal/-shm files, no output directory)
        assert sorted(p.name for p in tmp_path.iterdir()) == listing
    assert "Traceback" not in out + err
    line = error_line(err, several=case.several)
    assert code == case.code, f"exit code {code}, want {case.code}: {line}"
    for want in case.expect:
        assert want.format(tmp=tmp_path, model=model_dir) in line, f"{want!r} not in {line!r}"
    for rel in case.writes:
        assert_nothing_written(tmp_path / rel)
    record_row(case.id, code, line.replace(str(tmp_path), "TMP").replace(str(model_dir), "MODEL"))


def record_row(case_id: str, code: int, line: str) -> None:
    """With QUANTRISK_BAD_INPUT_TABLE=FILE, append `| case | exit | message |` (docs/bad-inputs.md is made so)."""
    target = os.environ.get("QUANTRISK_BAD_INPUT_TABLE")
    if target:
        cell = line.replace("|", "\\|").replace("\n", " ")
        with open(target, "a", encoding="utf-8") as f:
            f.write(f"| `{case_id}` | {code} | {cell} |\n")


def test_the_cases_cover_the_issue_list() -> None:
    assert len(CASES) >= 32 + 25 + 32 and len({c.id for c in CASES}) == len(CASES)


def test_disk_full_while_storing_a_cell(tmp_path: Path, capsys, monkeypatch) -> None:
    """ENOSPC at the commit of the 2nd cell: exit 1, one clear line, the store intact with no half-written cell,
    and a rerun resumes and finishes."""
    from quantrisk.store import Store

    real_commit = Store._commit

    def commit(self: Store) -> None:
        if self.conn.execute("SELECT COUNT(*) FROM cells WHERE status='done'").fetchone()[0] >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_commit(self)

    monkeypatch.setattr(Store, "_commit", commit)
    argv = ["run", spec(tmp_path, SYNTHETIC), "--out", str(tmp_path / "run"), "--quiet"]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    line = error_line(err)
    store = tmp_path / "run" / "results.sqlite"
    assert f"cannot write results store {store}: the disk is full; nothing of this cell was stored" in line
    assert "free some space, then run the same command again to resume" in line
    with sqlite3.connect(store) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        status = dict(conn.execute("SELECT status, COUNT(*) FROM cells GROUP BY status").fetchall())
        assert status.get("done") == 1 and status.get("running") == 1, status  # the one in flight is not done
        orphans = conn.execute("SELECT COUNT(*) FROM metrics m JOIN cells c ON c.id = m.cell_id "
                               "WHERE c.status != 'done'").fetchone()[0]
        assert orphans == 0
    monkeypatch.setattr(Store, "_commit", real_commit)
    assert main(argv) == 0
    assert "1 already done, 3 run now, 0 failed" in capsys.readouterr().out


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    bad = spec(tmp_path, SYNTHETIC + "    colour: blue\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    plain = subprocess.run([sys.executable, "-m", "quantrisk.cli", "validate", bad], capture_output=True, text=True,
                           env=env, timeout=120)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    debug = subprocess.run([sys.executable, "-m", "quantrisk.cli", "--debug", "validate", bad], capture_output=True,
                           text=True, env=env, timeout=120)
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "quantrisk.errors.UsageError" in debug.stderr and "studies.synthetic.colour: unknown field" in debug.stderr
