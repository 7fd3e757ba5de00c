"""Code corpus: function extraction, exclusions, deterministic disjoint split, manifest round trip."""

from __future__ import annotations

import json

import pytest

from quantrisk.data.corpus import (
    assign_splits,
    folder_samples,
    jsonl_samples,
    load_corpus,
    load_split,
    sha256_text,
    write_split,
)
from quantrisk.errors import DataError, UsageError

FUNC_A = "def alpha(x):\n    '''Return x doubled, with a docstring long enough.'''\n    y = x * 2\n    return y + 0\n"
CLASS_B = (
    "class Box:\n    def get(self, key, default=None):\n        '''Look a key up and fall back to a default.'''\n"
    "        return self.data.get(key, default)\n"
)


@pytest.fixture()
def code_folder(tmp_path):
    root = tmp_path / "lib"
    (root / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pkg" / "a.py").write_text(FUNC_A + "\n" + CLASS_B)
    (root / "pkg" / "dup.py").write_text(FUNC_A)  # exact duplicate text: dropped
    (root / "pkg" / "test_skip.py").write_text(FUNC_A.replace("alpha", "beta"))
    (root / "tests" / "t.py").write_text(FUNC_A.replace("alpha", "gamma"))
    (root / "pkg" / "broken.py").write_text("def (:\n")
    return root


def test_function_extraction_excludes_tests_and_duplicates(code_folder):
    samples = folder_samples(code_folder, unit="function", min_chars=50)
    ids = sorted(s.id for s in samples)
    assert ids == ["pkg/a.py::Box.get", "pkg/a.py::alpha"]
    get = next(s for s in samples if s.id.endswith("Box.get"))
    assert get.text.startswith("def get(self")  # dedented method
    assert all(s.sha256 == sha256_text(s.text) for s in samples)
    files = folder_samples(code_folder, unit="file", min_chars=10)
    assert {s.id for s in files} == {"pkg/a.py", "pkg/dup.py"}  # broken.py (8 chars) is below min_chars
    assert [s.id for s in folder_samples(code_folder, unit="file")] == ["pkg/a.py"]  # default limits 200..20000 chars
    with pytest.raises(UsageError, match="unit"):
        folder_samples(code_folder, unit="line")


def test_stdlib_split_is_deterministic_disjoint_and_seeded():
    samples = load_corpus("stdlib")
    assert len(samples) > 3000
    assert not any(part in ("test", "tests", "idle_test", "site-packages") for s in samples for part in s.path.split("/"))
    assert all(150 <= len(s.text) <= 1200 for s in samples) and len({s.sha256 for s in samples}) == len(samples)
    assert load_corpus() == samples  # parsed once per process, same answer
    a = assign_splits(samples, seed=0, cap=100)
    b = assign_splits(samples, seed=0, cap=100)
    c = assign_splits(samples, seed=1, cap=100)
    assert [(s.id, s.split) for s in a] == [(s.id, s.split) for s in b]
    assert [(s.id, s.split) for s in a] != [(s.id, s.split) for s in c]
    by_split = {k: {s.id for s in a if s.split == k} for k in ("member", "nonmember", "reference")}
    assert all(len(v) == 100 for v in by_split.values())
    assert not (by_split["member"] & by_split["nonmember"]) and not (by_split["member"] & by_split["reference"])
    full = assign_splits(samples, seed=0)
    counts = {k: sum(s.split == k for s in full) for k in ("member", "nonmember", "reference")}
    assert all(abs(v / len(samples) - 1 / 3) < 0.05 for v in counts.values())


def test_manifest_round_trip_and_errors(tmp_path, code_folder):
    samples = assign_splits(folder_samples(code_folder, min_chars=50), seed=3)
    write_split(tmp_path / "split.jsonl", samples)
    assert load_split(tmp_path) == samples
    lines = (tmp_path / "split.jsonl").read_text().splitlines()
    (tmp_path / "split.jsonl").write_text(lines[0] + "\n{not json\n")
    with pytest.raises(DataError, match=r"split.jsonl:2: malformed JSON"):
        load_split(tmp_path)
    bad = json.loads(lines[0])
    bad["text"] += " tampered"
    (tmp_path / "split.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r":1: sha256 does not match"):
        load_split(tmp_path)
    with pytest.raises(DataError, match="no split manifest"):
        load_split(tmp_path / "nowhere")


def test_jsonl_corpus(tmp_path):
    p = tmp_path / "c.jsonl"
    p.write_text('{"text": "def f():\\n    return 1\\n", "id": "f"}\n\n{"text": "x = 2\\n"}\n{"text": "x = 2\\n"}\n')
    got = jsonl_samples(p)
    assert [s.id for s in got] == ["f", "c.jsonl:3"]  # blank line skipped, duplicate text (line 4) dropped
    assert load_corpus(p) == got
    p.write_text('{"text": "a = 1", "id": "x"}\n{"text": "b = 2", "id": "x"}\n')
    with pytest.raises(DataError, match=r"c.jsonl:2: duplicate id 'x'"):
        jsonl_samples(p)
    p.write_text('{"text": ""}\n')
    with pytest.raises(DataError, match=r"c.jsonl:1: field 'text'"):
        jsonl_samples(p)
    p.write_bytes(b'{"text": "ok"}\n\xff\xfe\n')
    with pytest.raises(DataError, match="not UTF-8"):
        jsonl_samples(p)
