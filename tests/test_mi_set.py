"""The member / non-member set builder (privacy/mi_set.py) on a small stand-in in MIMIR's format."""

from __future__ import annotations

import json
import random

import pytest

from quantrisk.errors import UsageError
from quantrisk.privacy import mi_set


def _func(i: int, rng: random.Random) -> str:
    body = "\n".join(f"    v{j} = x * {rng.randint(1, 99)} + {j}" for j in range(rng.randint(2, 6)))
    return f"def f{i:05d}(x):\n{body}\n    return x\n"


def _mimir(path, n: int, *, dup_pairs: int = 0, long_members: bool = False):
    rng = random.Random(0)
    rows = []
    for i in range(n):
        m = _func(i, rng) + ("    # " + "pad " * 200 + "\n" if long_members else "")
        rows.append({"member": m, "nonmember": _func(10_000 + i, rng), "member_neighbors": []})
    for i in range(dup_pairs):  # a text on both sides, and an exact duplicate (spacing differs) within members
        rows.append({"member": rows[i]["nonmember"], "nonmember": _func(20_000 + i, rng)})
        rows.append({"member": rows[i + 1]["member"].replace("    ", "  "), "nonmember": _func(30_000 + i, rng)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def test_builds_balanced_labelled_set_with_provenance(tmp_path):
    src = tmp_path / "mimir_github.jsonl"
    _mimir(src, 60, dup_pairs=3)
    out = tmp_path / "code-mi-labelled.jsonl"
    r = mi_set.build(src, None, out, n=40, seed=1)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 80 and sum(x["label"] for x in rows) == 40
    assert r.dropped_duplicates["members"] == 3  # whitespace-normalised exact duplicates
    assert r.dropped_both_sides == 3
    member_texts = {mi_set._norm(x["text"]) for x in rows if x["label"] == 1}
    assert not member_texts & {mi_set._norm(x["text"]) for x in rows if x["label"] == 0}
    prov = json.loads((tmp_path / "code-mi-labelled.jsonl.provenance.json").read_text())
    assert len(prov["inputs"][str(src)]) == 64 and prov["blind"]["ok"] is True
    assert "licence" in prov


def test_blind_check_flags_length_biased_set(tmp_path):
    src = tmp_path / "biased.jsonl"
    _mimir(src, 50, long_members=True)
    r = mi_set.build(src, None, tmp_path / "o.jsonl", n=40)
    assert r.blind["ok"] is False and "separates" in r.blind["reason"] and "length" in r.blind["reason"]


def test_two_file_form(tmp_path):
    rng = random.Random(2)
    (tmp_path / "m.jsonl").write_text("".join(json.dumps({"text": _func(i, rng)}) + "\n" for i in range(12)))
    (tmp_path / "n.jsonl").write_text("".join(json.dumps({"text": _func(99 + i, rng)}) + "\n" for i in range(12)))
    r = mi_set.build(tmp_path / "m.jsonl", tmp_path / "n.jsonl", tmp_path / "o.jsonl", n=10)
    assert r.written == {"members": 10, "nonmembers": 10}


@pytest.mark.parametrize("line,needle", [("{not json", ":2: not JSON"), ('["a"]', ":2: expected a JSON object"),
                                         ('{"member": "", "nonmember": "x"}', ":2: field member must be")])
def test_bad_line_names_file_and_line(tmp_path, line, needle, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"member": "a", "nonmember": "b"}) + "\n" + line + "\n")
    assert mi_set.main(["--members", str(src), "--out", str(tmp_path / "o.jsonl"), "--n", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and needle in err and "\n" not in err
    assert not (tmp_path / "o.jsonl").exists()


def test_too_few_after_dedup_refused(tmp_path):
    src = tmp_path / "s.jsonl"
    _mimir(src, 5)
    with pytest.raises(UsageError, match="5 members and 5 non-members remain"):
        mi_set.build(src, None, tmp_path / "o.jsonl", n=6)


def test_near_duplicate_nonmember_dropped(tmp_path):
    """A non-member that is a member with a comment added (not an exact duplicate) is dropped, MIMIR's rule."""
    src = tmp_path / "s.jsonl"
    rows = _mimir(src, 30)
    long_member = rows[0]["member"] + "".join(f"    w{k} = x - {k} * 3\n" for k in range(8))
    rows[0]["member"] = long_member
    rows.append({"member": _func(40_000, random.Random(5)), "nonmember": "# copied\n" + long_member})
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = mi_set.build(src, None, tmp_path / "o.jsonl", n=30)
    assert r.neardup.startswith("quantrisk.data.dedup: 1 non-members dropped")
    out = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert not any(x["text"].startswith("# copied") for x in out)
