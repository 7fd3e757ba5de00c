"""Member / non-member sets: sources, balanced seeded sampling, duplicates, overlap, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quantrisk.data.corpus import CodeSample, sha256_text, write_split
from quantrisk.errors import DataError, UsageError
from quantrisk.privacy.members import MISample, build_mi_set, load_mi_set


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def samples(n_members: int, n_non: int) -> list[MISample]:
    return [MISample(f"m{i}", f"member text {i}", 1) for i in range(n_members)] + [
        MISample(f"n{i}", f"non-member text {i}", 0) for i in range(n_non)
    ]


def test_balanced_seeded_sampling_and_prefix_pool():
    a = build_mi_set(samples(10, 7), 5, seed=1)
    assert (a.n_members, a.n_nonmembers) == (5, 5)
    assert a.samples == build_mi_set(samples(10, 7), 5, seed=1).samples  # seeded
    assert a.sha256() == build_mi_set(samples(10, 7), 5, seed=1).sha256()
    assert a.samples != build_mi_set(samples(10, 7), 5, seed=2).samples
    # the non-members not drawn (7 - 5 = 2) are the pool for ReCaLL prefixes, never a sampled one
    chosen = {s.text for s in a.samples}
    assert len(a.prefix_pool) == 2 and not set(a.prefix_pool) & chosen
    every = build_mi_set(samples(10, 7), None)  # --n all: as many as the smaller class
    assert (every.n_members, every.n_nonmembers) == (7, 7)


def test_n_larger_than_the_data_says_how_many_there_are():
    with pytest.raises(DataError, match="10 members and 7 non-members; use --n 7"):
        build_mi_set(samples(10, 7), 8, source="x.jsonl")
    with pytest.raises(UsageError):
        build_mi_set(samples(3, 3), 0)


def test_duplicates_empty_texts_and_overlap():
    data = samples(3, 3) + [MISample("m9", "member text 0", 1), MISample("e", "   ", 0)]
    s = build_mi_set(data, 3)
    assert s.skipped == {"exact duplicate": 1, "empty or too short text": 1}
    with pytest.raises(DataError, match="both member and non-member"):
        build_mi_set(samples(3, 3) + [MISample("x", "member text 1", 0)], 3)
    with pytest.raises(DataError, match="'m1' appears twice"):
        build_mi_set(samples(3, 3) + [MISample("m1", "other", 1)], 3)
    with pytest.raises(DataError, match="no non-members"):
        build_mi_set(samples(3, 0), None)


def test_labelled_jsonl_and_two_files(tmp_path):
    rows = [{"text": f"t{i}", "label": i % 2} for i in range(8)]
    s = load_mi_set(write_jsonl(tmp_path / "all.jsonl", rows), 4)
    assert (s.n_members, s.n_nonmembers) == (4, 4)
    assert {x.id for x in s.samples} == {f"all.jsonl:{i}" for i in range(1, 9)}  # default id: file:line
    mem = write_jsonl(tmp_path / "m.jsonl", [{"id": "a", "text": "aa"}, {"id": "b", "text": "bb"}])
    non = write_jsonl(tmp_path / "n.jsonl", [{"id": "c", "text": "cc"}, {"id": "d", "text": "dd"}])
    s = load_mi_set(mem, 2, nonmembers=non)
    assert sorted((x.id, x.label) for x in s.samples) == [("a", 1), ("b", 1), ("c", 0), ("d", 0)]


def test_bad_files_name_file_and_line(tmp_path):
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "a", "label": 1}, {"text": "b", "label": "yes"}])
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'label'"):
        load_mi_set(bad, 1)
    nolabel = write_jsonl(tmp_path / "t.jsonl", [{"label": 1}])
    with pytest.raises(DataError, match=r"t.jsonl:1: field 'text'"):
        load_mi_set(nolabel, 1)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    non = write_jsonl(tmp_path / "n.jsonl", [{"text": "cc"}])
    with pytest.raises(DataError, match="empty.jsonl: no samples .empty member file"):
        load_mi_set(empty, 1, nonmembers=non)
    with pytest.raises(DataError, match="no such file"):
        load_mi_set(tmp_path / "missing.jsonl", 1)
    with pytest.raises(DataError, match="no split.jsonl"):
        load_mi_set(tmp_path, 1)


def test_model_dir_split_manifest(tmp_path):
    rows = [CodeSample(f"f{i}", "f.py", f"def f{i}(): return {i}\n", sha256_text(f"def f{i}(): return {i}\n"), split)
            for i, split in enumerate(["member"] * 4 + ["nonmember"] * 3 + ["reference"] * 2)]
    write_split(tmp_path / "split.jsonl", rows)
    s = load_mi_set(tmp_path, 3, seed=0)
    assert (s.n_members, s.n_nonmembers) == (3, 3)
    assert s.source.endswith("split.jsonl")
    assert sorted(s.prefix_pool) == ["def f7(): return 7\n", "def f8(): return 8\n"]  # the reference split
    assert {x.id for x in s.samples if x.label == 0} == {"f4", "f5", "f6"}
