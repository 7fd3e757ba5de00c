"""Code corpora with an exact, seeded member / non-member / reference split.

Default corpus: the running interpreter's standard library (`sysconfig.get_paths()["stdlib"]`,
PSF licence), test suites excluded. A sample is a top-level function or method (unit `function`,
via `ast`, dedented) or a whole file (unit `file`). Also: any folder of `.py` files, or a JSONL
file with a `text` field (and optional `id`). The site-packages source, its licence filter and the
file manifest live in `site_packages.py`; the sample value and the cutting of files into units in `code_units.py`.

The split is a pure function of (seed, sample id): u = sha256(f"{seed}:{id}") / 2**256 falls in
[0, f_member) → member, [f_member, f_member + f_nonmember) → nonmember, else reference. The
manifest `split.jsonl` records id, path, sha256, split and the text itself, so the study reads
exactly what the model was (or was not) trained on, on any machine.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path

from quantrisk.data.code_units import (  # noqa: F401 - also importable from here, as before code_units.py
    UNIT_LIMITS,
    CodeSample,
    _functions,
    _python_files,
    canonical_corpus,
    normalise_code,
    parse_sources,
    sha256_text,
    stdlib_root,
)
from quantrisk.data.jsonl import read_jsonl
from quantrisk.data.site_packages import site_packages_samples
from quantrisk.errors import DataError, UsageError
from quantrisk.results import atomic_write_text

SPLITS: tuple[str, ...] = ("member", "nonmember", "reference", "extra", "filler")
UNITS: tuple[str, ...] = ("function", "file")


def folder_samples(
    root: Path, *, unit: str = "function", min_chars: int | None = None, max_chars: int | None = None
) -> list[CodeSample]:
    """Samples from every `.py` file under `root` (test suites excluded) whose length in characters is in
    [min_chars, max_chars] (default: `UNIT_LIMITS[unit]`), exact duplicate texts dropped (first kept).
    Ids are `relative/path.py` (unit file) or `relative/path.py::Class.method` (unit function)."""
    if unit not in UNITS:
        raise UsageError(f"unknown unit {unit!r}; valid: {', '.join(UNITS)}")
    min_chars = UNIT_LIMITS[unit][0] if min_chars is None else min_chars
    max_chars = UNIT_LIMITS[unit][1] if max_chars is None else max_chars
    if not root.is_dir():
        raise UsageError(f"corpus folder {root} does not exist")
    seen: set[str] = set()
    ids: set[str] = set()
    out: list[CodeSample] = []
    for path in _python_files(root):
        try:
            source = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        rel = path.relative_to(root).as_posix()
        items = [(rel, source)] if unit == "file" else [(f"{rel}::{q}", s) for q, s in _functions(source)]
        for sid, text in items:
            if not (min_chars <= len(text) <= max_chars) or not text.strip():
                continue
            digest = sha256_text(text)
            if digest in seen:
                continue
            seen.add(digest)
            base, n = sid, 2
            while sid in ids:
                sid, n = f"{base}#{n}", n + 1
            ids.add(sid)
            out.append(CodeSample(sid, rel, text, digest))
    return out


def jsonl_samples(path: Path) -> list[CodeSample]:
    """Samples from a JSONL file with a non-empty string `text` field (optional `id`, `path`); exact
    duplicate texts are dropped (first kept), a repeated id is a DataError naming file:line."""
    out: list[CodeSample] = []
    seen: set[str] = set()
    texts: set[str] = set()
    for lineno, obj in read_jsonl(path):
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{path}:{lineno}: field 'text' must be a non-empty string")
        sid = str(obj.get("id", f"{path.name}:{lineno}"))
        if sid in seen:
            raise DataError(f"{path}:{lineno}: duplicate id {sid!r}")
        seen.add(sid)
        digest = sha256_text(text)
        if digest in texts:
            continue
        texts.add(digest)
        out.append(CodeSample(sid, str(obj.get("path", path.name)), text, digest))
    if not out:
        raise DataError(f"{path}: no samples (empty file)")
    return out


def check_mi_jsonl(data: str | Path, nonmembers: str | Path | None = None) -> None:
    """Check membership-inference JSONL input before any work, every problem as one `DataError` naming file:line
    and field: `data` alone holds `text` + `label` (1 member, 0 non-member); with `nonmembers`, `data` holds the
    members and `nonmembers` the non-members (field `text`). `text` must be a non-empty string; an `id`, when
    given, must be unique across both files; the same text may not be both member and non-member.
    A `data` that is a directory (a model's split, a dataset) is left to its own reader."""
    labels = {1: "member", 0: "non-member"}
    files = [(Path(data).expanduser(), None if nonmembers is None else 1)]
    if nonmembers is not None:
        files.append((Path(nonmembers).expanduser(), 0))
    if files[0][0].is_dir() and nonmembers is None:
        return
    ids: dict[str, str] = {}
    texts: dict[str, tuple[int, str]] = {}
    for path, fixed in files:
        n = 0
        for lineno, obj in read_jsonl(path):
            where = f"{path}:{lineno}"
            text = obj.get("text")
            if "text" not in obj:
                raise DataError(f"{where}: field 'text' is missing (each line needs a non-empty string 'text')")
            if not isinstance(text, str):
                raise DataError(f"{where}: field 'text' must be a string, got {type(text).__name__}")
            if not text.strip():
                raise DataError(f"{where}: field 'text' is empty; remove the line or give the sample's text")
            label = fixed
            if fixed is None:
                label = obj.get("label")
                if "label" not in obj:
                    raise DataError(f"{where}: field 'label' is missing (1 = member, 0 = non-member)")
                if label not in (0, 1) or isinstance(label, bool):
                    raise DataError(f"{where}: field 'label' must be 1 (member) or 0 (non-member), got {label!r}")
            if "id" in obj:
                if not isinstance(obj["id"], (str, int)) or isinstance(obj["id"], bool) or str(obj["id"]) == "":
                    raise DataError(f"{where}: field 'id' must be a non-empty string or an integer, got {obj['id']!r}")
                sid = str(obj["id"])
                if sid in ids:
                    raise DataError(f"{where}: field 'id': {sid!r} is already used at {ids[sid]}; ids must be unique")
                ids[sid] = where
            first = texts.setdefault(text, (int(label), where))  # type: ignore[arg-type]
            if first[0] != label:
                raise DataError(f"{where}: field 'text' is the same text as {first[1]}, which is labelled "
                                f"{labels[first[0]]}; a sample cannot be both member and non-member (remove one)")
            n += 1
        if not n:
            kind = "" if fixed is None else f" {labels[fixed]}"
            fields = "'text' and 'label'" if fixed is None else "'text'"
            raise DataError(f"{path}: no samples (empty{kind} file); give one JSON object per line with {fields}")


def load_corpus(corpus: str | Path | None = None, *, unit: str = "function") -> list[CodeSample]:
    """`None`/"stdlib" → the standard library; "stdlib,site-packages[:dist,...]" → the standard library and the
    permissively licensed installed distributions (see `site_packages.site_packages_samples`); a folder → its .py files; a
    .jsonl file → its `text` rows. Exact duplicate texts across sources are dropped (first kept)."""
    sources = parse_sources(corpus)
    if sources is not None:
        out, seen = [], set()
        for name, dists in sources:
            part = _stdlib_samples(unit) if name == "stdlib" else site_packages_samples(unit, dists)[0]
            for s in part:
                if s.sha256 not in seen:
                    seen.add(s.sha256)
                    out.append(s)
        return out
    path = Path(str(corpus)).expanduser()
    if path.is_dir():
        return folder_samples(path, unit=unit)
    if path.suffix == ".jsonl" or path.is_file():
        return jsonl_samples(path)
    raise UsageError(f"corpus {corpus} is neither 'stdlib', 'stdlib,site-packages[:dist,...]', a folder of .py files, "
                     "nor a .jsonl file")


@lru_cache(maxsize=2)
def _stdlib_samples(unit: str) -> tuple[CodeSample, ...]:
    """The standard library's samples, parsed once per process (it does not change while we run)."""
    return tuple(folder_samples(stdlib_root(), unit=unit))


def split_fraction(seed: int, sample_id: str) -> float:
    """Deterministic u in [0, 1) from (seed, id)."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    samples: Iterable[CodeSample],
    *,
    seed: int = 0,
    fractions: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3),
    cap: int | None = None,
) -> list[CodeSample]:
    """Split samples into member / nonmember / reference by the seeded hash of their id.

    `cap` keeps at most that many per split: those with the smallest second hash (seeded, so the
    choice is reproducible). Returns samples sorted by (split, id).
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise UsageError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    buckets: dict[str, list[CodeSample]] = {"member": [], "nonmember": [], "reference": []}
    for s in samples:
        u = split_fraction(seed, s.id)
        split = "member" if u < fractions[0] else "nonmember" if u < fractions[0] + fractions[1] else "reference"
        buckets[split].append(s.with_split(split))
    out: list[CodeSample] = []
    for items in buckets.values():
        items.sort(key=lambda s: split_fraction(seed + 7919, s.id))
        out.extend(sorted(items[:cap] if cap is not None else items, key=lambda s: s.id))
    return out


def drop_normalised_collisions(samples: list[CodeSample]) -> tuple[list[CodeSample], dict[str, int]]:
    """Drop samples whose normalised text (see `normalise_code`) occurs in more than one split (all copies of
    it go: either side would be a mislabelled near-duplicate), and later copies within one split (first kept).
    Returns the kept samples (input order) and the counts dropped by reason."""
    splits_of: dict[str, set[str]] = {}
    norms = [hashlib.sha256(normalise_code(s.text).encode()).hexdigest() for s in samples]
    for s, n in zip(samples, norms, strict=True):
        splits_of.setdefault(n, set()).add(s.split)
    kept, seen = [], set()
    dropped = {"normalised text in two splits": 0, "normalised duplicate within a split": 0}
    for s, n in zip(samples, norms, strict=True):
        if len(splits_of[n]) > 1:
            dropped["normalised text in two splits"] += 1
        elif n in seen:
            dropped["normalised duplicate within a split"] += 1
        else:
            seen.add(n)
            kept.append(s)
    return kept, dropped


NEAR_DUPLICATE = "near-duplicate non-member (13-gram overlap > 0.8 with training text)"


def _drop_near_duplicate_nonmembers(samples: list[CodeSample], max_filler: int | None
                                    ) -> tuple[list[CodeSample], dict[str, int]]:
    """Drop the non-members whose n-gram overlap with the training text (members + the filler kept under
    `max_filler`, in rank order) is above the threshold (`data.dedup`, MIMIR's 13-gram / 0.8 filter)."""
    from quantrisk.data.dedup import near_duplicates

    filler = [s for s in samples if s.split == "filler"]
    train = [s.text for s in samples if s.split == "member"] + [s.text for s in filler[:max_filler]]
    nonmembers = [i for i, s in enumerate(samples) if s.split == "nonmember"]
    bad = {nonmembers[j] for j in near_duplicates([samples[i].text for i in nonmembers], train)}
    return [s for i, s in enumerate(samples) if i not in bad], {NEAR_DUPLICATE: len(bad)}


def assign_exposure_splits(
    samples: Iterable[CodeSample],
    *,
    seed: int,
    exposures: tuple[int, ...],
    per_exposure: int,
    n_nonmember: int,
    n_reference: int,
    max_filler: int | None = None,
) -> tuple[list[CodeSample], dict[str, int]]:
    """The exposure regime's split, a pure function of (seed, sample ids): samples ranked by the seeded hash
    u = sha256(f"{seed}:{id}"); the first `per_exposure * len(exposures)` are members, the next `n_nonmember`
    non-members, the next `n_reference` reference, the rest filler (at most `max_filler`; trained on once, never
    scored). Members get exposure `exposures[i % len(exposures)]` by their rank i in a second seeded hash.
    Normalised-text collisions across the split are dropped first (see `drop_normalised_collisions`), then the
    non-members that near-duplicate training text (13-gram overlap > 0.8, `data.dedup`).
    Returns samples sorted by (split, id) with `exposures` set (0 except members), and the counts dropped."""
    if not exposures or any(int(k) < 1 for k in exposures) or len(set(exposures)) != len(exposures):
        raise UsageError(f"exposures must be distinct integers >= 1, got {list(exposures)}")
    ranked = sorted(samples, key=lambda s: split_fraction(seed, s.id))
    n_member = per_exposure * len(exposures)
    bounds = (("member", n_member), ("nonmember", n_nonmember), ("reference", n_reference))

    def label(items: list[CodeSample]) -> list[CodeSample]:
        out, i = [], 0
        for split, n in bounds:
            out += [s.with_split(split) for s in items[i : i + n]]
            i += n
        return out + [s.with_split("filler") for s in items[i:]]

    # label by rank and drop collisions, then near-duplicates of training text, until none is left (a drop moves
    # later samples across a boundary)
    dropped: dict[str, int] = {NEAR_DUPLICATE: 0}
    kept = label(ranked)
    while True:
        kept, more = drop_normalised_collisions(kept)
        if not sum(more.values()):
            kept, more = _drop_near_duplicate_nonmembers(kept, max_filler)
        for reason, n in more.items():
            dropped[reason] = dropped.get(reason, 0) + n
        if not sum(more.values()):
            break
        kept = label(kept)
    by: dict[str, list[CodeSample]] = {}
    for s in kept:
        by.setdefault(s.split, []).append(s)
    for split, n in bounds:
        if len(by.get(split, [])) < n:
            raise UsageError(f"the corpus has {len(by.get(split, []))} usable {split} samples after deduplication, "
                             f"need {n}; lower per_exposure / per_split or use a bigger corpus")
    filler = by.get("filler", [])
    if max_filler is not None and len(filler) > max_filler:
        dropped["filler beyond max_filler"] = len(filler) - max_filler
        filler = filler[:max_filler]
    members = sorted(by["member"], key=lambda s: split_fraction(seed + 7919, s.id))
    members = [replace(s, exposures=int(exposures[j % len(exposures)])) for j, s in enumerate(members)]
    out = sorted(members, key=lambda s: s.id)
    for split in ("nonmember", "reference"):
        out += sorted(by[split], key=lambda s: s.id)
    out += sorted(filler, key=lambda s: s.id)
    return out, dropped


def write_split(path: str | Path, samples: Iterable[CodeSample], *, exposures: bool = False) -> None:
    """Write the manifest: one JSON object per sample (id, path, sha256, split, text; with `exposures` also
    `exposures` and `steps`), atomically."""
    def row(s: CodeSample) -> dict:
        d = asdict(s)
        if not exposures:
            d.pop("exposures"), d.pop("steps")
        return d

    atomic_write_text(Path(path), "".join(json.dumps(row(s), sort_keys=True) + "\n" for s in samples))


def load_split(model_dir: str | Path) -> list[CodeSample]:
    """Read `model_dir/split.jsonl` (or a manifest path); checks fields, splits and sha256 of each text."""
    path = Path(model_dir)
    path = path / "split.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise DataError(f"{path}: no split manifest (models pretrained by quantrisk have one)")
    out = []
    for lineno, obj in read_jsonl(path):
        for field in ("id", "path", "sha256", "split", "text"):
            if not isinstance(obj.get(field), str):
                raise DataError(f"{path}:{lineno}: field {field!r} missing or not a string")
        if obj["split"] not in SPLITS:
            raise DataError(f"{path}:{lineno}: field 'split' is {obj['split']!r}; valid: {', '.join(SPLITS)}")
        if sha256_text(obj["text"]) != obj["sha256"]:
            raise DataError(f"{path}:{lineno}: sha256 does not match the text of {obj['id']!r}")
        k, steps = obj.get("exposures", 0), obj.get("steps", [])
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise DataError(f"{path}:{lineno}: field 'exposures' must be an integer >= 0, got {k!r}")
        if not isinstance(steps, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in steps):
            raise DataError(f"{path}:{lineno}: field 'steps' must be a list of integers")
        out.append(CodeSample(obj["id"], obj["path"], obj["text"], obj["sha256"], obj["split"], k, tuple(steps)))
    if not out:
        raise DataError(f"{path}: empty split manifest")
    return out
