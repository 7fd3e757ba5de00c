"""Build a labelled member / non-member code set (text, label) for the privacy study from MIMIR-format data.

Inputs (JSONL, one object a line, UTF-8):
- MIMIR's format (Duan et al., 2024, "Do Membership Inference Attacks Work on Large Language Models?",
  https://github.com/iamgroot42/mimir; data at https://huggingface.co/datasets/iamgroot42/mimir, e.g. its `github`
  subset of the Pile with the `ngram_13_0.8` split): one row per pair, fields `member` and `nonmember` (strings;
  `*_neighbors` fields are ignored); or
- any two JSONL files, members and non-members, one text a line in field `text` (or `member` / `nonmember`).

Checks, in order (what each dropped is counted in the provenance record):
1. every line parses, is an object and has a non-empty string in the text field (else `error: FILE:LINE: ...`);
2. exact duplicates (after normalising whitespace) are dropped within each side, and a text on both sides is dropped
   from both: its label would be ambiguous;
3. near-duplicates: non-members whose 13-gram overlap with the members exceeds 0.8 are dropped
   (`quantrisk.data.dedup`, MIMIR's `ngram_13_0.8` rule);
4. the sample: `n` of each side, drawn with `seed`;
5. blind baselines (model-free features that separate the two sides would make any attack's AUC meaningless):
   `quantrisk.privacy.blind.blind_check` (length, zlib ratio, characters per token, bag of words...: the set fails
   when a blind AUC's whole 95% CI lies beyond 0.5 ± `BLIND_MARGIN`).
   The set is written either way; a failed check is printed and recorded, never hidden.

Output: the labelled JSONL (`text`, `label`: 1 member / 0 non-member) and `<out>.provenance.json` with the inputs'
SHA-256, the counts, the checks and the licence note. Licence: MIMIR's data is drawn from the Pile; the GitHub
subset's code keeps the licences of its repositories (the Pile ships no licence of its own for it). Redistribute
the built file only under those terms; quantrisk ships none of it.

`python -m quantrisk.privacy.mi_set --members FILE [--nonmembers FILE] --out FILE [--n 1000] [--seed 0]`
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quantrisk.data.dedup import NGRAM, THRESHOLD, near_duplicates
from quantrisk.errors import UsageError
from quantrisk.privacy import blind
from quantrisk.safefs import write_atomic

MAX_LINE_CHARS = 1_000_000
MAX_ROWS = 1_000_000


@dataclass
class BuildReport:
    """What the builder read, dropped and wrote."""

    inputs: dict[str, str]
    read: dict[str, int]
    dropped_duplicates: dict[str, int]
    dropped_both_sides: int
    neardup: str
    written: dict[str, int]
    seed: int
    blind: dict[str, Any] = field(default_factory=dict)
    licence: str = ("MIMIR (github subset) is drawn from the Pile; its code keeps its repositories' licences. "
                    "The built file is for research use under those terms; quantrisk ships none of it.")


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_jsonl(path: Path, fields: tuple[str, ...]) -> list[dict[str, str]]:
    """Rows of `path` holding the first of `fields` each row has, as {field: text}; bad lines raise UsageError
    naming FILE:LINE."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    rows = []
    with path.open(encoding="utf-8", errors="strict") as f:
        for no, line in enumerate(f, 1):
            if len(line) > MAX_LINE_CHARS:
                raise UsageError(f"{path}:{no}: line longer than {MAX_LINE_CHARS} characters")
            if not line.strip():
                continue
            if len(rows) >= MAX_ROWS:
                raise UsageError(f"{path}:{no}: more than {MAX_ROWS} rows")
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{no}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise UsageError(f"{path}:{no}: expected a JSON object")
            got = {k: obj[k] for k in fields if k in obj}
            if not got:
                raise UsageError(f"{path}:{no}: no field {' or '.join(fields)}")
            for k, v in got.items():
                if not isinstance(v, str) or not v.strip():
                    raise UsageError(f"{path}:{no}: field {k} must be a non-empty string")
            rows.append(got)
    return rows


def load_sides(members: Path, nonmembers: Path | None) -> tuple[list[str], list[str]]:
    """(member texts, non-member texts) from a MIMIR pair file or from two files."""
    if nonmembers is None:
        rows = read_jsonl(members, ("member", "nonmember"))
        for i, r in enumerate(rows, 1):
            if "member" not in r or "nonmember" not in r:
                raise UsageError(f"{members}: row {i}: a MIMIR row needs both member and nonmember "
                                 "(or pass --nonmembers)")
        return [r["member"] for r in rows], [r["nonmember"] for r in rows]
    m = read_jsonl(members, ("text", "member"))
    n = read_jsonl(nonmembers, ("text", "nonmember"))
    return [next(iter(r.values())) for r in m], [next(iter(r.values())) for r in n]


def dedup(members: list[str], nonmembers: list[str]) -> tuple[list[str], list[str], dict[str, int], int]:
    """Exact duplicates (normalised whitespace) dropped within each side; texts on both sides dropped from both."""
    def unique(texts: list[str]) -> tuple[list[str], int]:
        seen, out = set(), []
        for t in texts:
            k = _norm(t)
            if k not in seen:
                seen.add(k)
                out.append(t)
        return out, len(texts) - len(out)

    m, dm = unique(members)
    n, dn = unique(nonmembers)
    both = {_norm(t) for t in m} & {_norm(t) for t in n}
    m = [t for t in m if _norm(t) not in both]
    n = [t for t in n if _norm(t) not in both]
    return m, n, {"members": dm, "nonmembers": dn}, len(both)


def _neardup(members: list[str], nonmembers: list[str]) -> tuple[list[str], list[str], str]:
    drop = set(near_duplicates(nonmembers, members))  # MIMIR's rule: a non-member too close to the members goes
    kept = [t for i, t in enumerate(nonmembers) if i not in drop]
    return members, kept, f"quantrisk.data.dedup: {len(drop)} non-members dropped ({NGRAM}-gram overlap > {THRESHOLD})"


def blind_check(members: list[str], nonmembers: list[str], seed: int) -> dict[str, Any]:
    """Model-free separability of the two sides (`quantrisk.privacy.blind`; see the module docstring, step 5)."""
    texts, labels = members + nonmembers, [1] * len(members) + [0] * len(nonmembers)
    rows = [{"value": r.value, "ci_low": r.ci_low, "ci_high": r.ci_high, "labels": r.labels}
            for r in blind.blind_rows(texts, labels, {"model": "none", "seed": str(seed)}, seed=seed)]
    ok, reason = blind.blind_check(rows)
    return {"method": "quantrisk.privacy.blind", "ok": bool(ok), "reason": "" if ok else reason,
            "rows": [{"baseline": r["labels"].get("baseline"), "auc": r["value"], "ci": [r["ci_low"], r["ci_high"]]}
                     for r in rows]}


def build(members: Path, nonmembers: Path | None, out: Path, n: int, seed: int = 0) -> BuildReport:
    """Read, check, sample and write the labelled set; returns (and writes beside `out`) the provenance."""
    if n < 1:
        raise UsageError(f"--n must be >= 1, got {n}")
    if out.is_symlink():
        raise UsageError(f"{out}: is a symbolic link; refusing to write through it")
    m, nm = load_sides(members, nonmembers)
    read = {"members": len(m), "nonmembers": len(nm)}
    m, nm, dropped, both = dedup(m, nm)
    m, nm, near = _neardup(m, nm)
    if len(m) < n or len(nm) < n:
        raise UsageError(f"after de-duplication {len(m)} members and {len(nm)} non-members remain; --n {n} needs "
                         f"{n} of each")
    rng = random.Random(seed)
    m, nm = rng.sample(m, n), rng.sample(nm, n)
    report = BuildReport(inputs={str(members): _sha256(members), **({str(nonmembers): _sha256(nonmembers)}
                                                                  if nonmembers else {})},
                         read=read, dropped_duplicates=dropped, dropped_both_sides=both, neardup=near,
                         written={"members": n, "nonmembers": n}, seed=seed, blind=blind_check(m, nm, seed))
    rows = [{"text": t, "label": 1} for t in m] + [{"text": t, "label": 0} for t in nm]
    rng.shuffle(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, "".join(json.dumps(r) + "\n" for r in rows))  # a planted link is refused, not followed
    write_atomic(Path(str(out) + ".provenance.json"), json.dumps(asdict(report), indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m quantrisk.privacy.mi_set", description=__doc__.split("\n")[0])
    p.add_argument("--members", required=True, type=Path, help="MIMIR pair JSONL, or the members' JSONL")
    p.add_argument("--nonmembers", type=Path, default=None, help="non-members' JSONL (two-file form)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--n", type=int, default=1000, help="members and non-members each")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    try:
        r = build(a.members, a.nonmembers, a.out, a.n, a.seed)
    except (UsageError, UnicodeDecodeError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"wrote {a.out}: {a.n} + {a.n} (dropped {sum(r.dropped_duplicates.values())} duplicates, "
          f"{r.dropped_both_sides} on both sides); blind check: {'ok' if r.blind['ok'] else 'FAILED: ' + r.blind['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
