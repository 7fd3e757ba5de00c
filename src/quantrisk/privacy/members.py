"""Member / non-member sample sets for membership inference.

Sources: a pretrained model directory (its `split.jsonl`), one JSONL with `text` + `label`
(1 = member, 0 = non-member), two JSONL files (members, non-members; field `text`), or a local
Hugging Face dataset directory (`datasets.load_from_disk`, if the package is installed).
Sampling is balanced (N + N) and seeded. Exact duplicates within a class are dropped and counted;
the same text on both sides is a data error (the ground truth would be contradictory).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from quantrisk.data.corpus import load_split
from quantrisk.data.jsonl import read_jsonl
from quantrisk.errors import DataError, UsageError

NEAR_DUPLICATE = "near-duplicate non-member (13-gram overlap > 0.8 with a member)"


@dataclass(frozen=True)
class MISample:
    id: str
    text: str
    label: int  # 1 member, 0 non-member
    exposure: int | None = None  # times a member was trained on (exposure regime of a quantrisk model), else None


@dataclass
class MISet:
    """Balanced samples plus what was left out and why."""

    samples: list[MISample]
    skipped: dict[str, int] = field(default_factory=dict)
    source: str = ""
    prefix_pool: list[str] = field(default_factory=list)  # known non-members not in `samples` (ReCaLL prefix)

    @property
    def n_members(self) -> int:
        return sum(s.label for s in self.samples)

    @property
    def n_nonmembers(self) -> int:
        return len(self.samples) - self.n_members

    def sha256(self) -> str:
        h = hashlib.sha256()
        for s in self.samples:
            h.update(f"{s.id}\x00{s.label}\x00{s.text}\x01".encode())
        return h.hexdigest()


def _from_model_dir(path: Path) -> tuple[list[MISample], list[str]]:
    split = load_split(path)
    counted = any(s.exposures for s in split)  # the exposure regime records how often each member was seen
    samples = [MISample(s.id, s.text, 1 if s.split == "member" else 0, s.exposures if counted else None)
               for s in split if s.split in ("member", "nonmember")]
    return samples, [s.text for s in split if s.split == "reference"]


def _from_labelled_jsonl(path: Path) -> list[MISample]:
    out = []
    for lineno, obj in read_jsonl(path):
        text, label = obj.get("text"), obj.get("label")
        if not isinstance(text, str):
            raise DataError(f"{path}:{lineno}: field 'text' missing or not a string")
        if label not in (0, 1) or isinstance(label, bool):
            raise DataError(f"{path}:{lineno}: field 'label' must be 1 (member) or 0 (non-member), got {label!r}")
        out.append(MISample(str(obj.get("id", f"{path.name}:{lineno}")), text, int(label)))
    if not out:
        raise DataError(f"{path}: no samples (empty file)")
    return out


def _from_text_jsonl(path: Path, label: int) -> list[MISample]:
    out = []
    for lineno, obj in read_jsonl(path):
        text = obj.get("text")
        if not isinstance(text, str):
            raise DataError(f"{path}:{lineno}: field 'text' missing or not a string")
        out.append(MISample(str(obj.get("id", f"{path.name}:{lineno}")), text, label))
    if not out:
        raise DataError(f"{path}: no samples (empty {'member' if label else 'non-member'} file)")
    return out


def _from_hf_dataset(path: Path) -> list[MISample]:
    try:
        from datasets import load_from_disk
    except ImportError:
        raise UsageError(f"{path} looks like a Hugging Face dataset; install `datasets` to read it") from None
    ds = load_from_disk(str(path))
    if hasattr(ds, "keys") and "train" in ds:  # a DatasetDict
        ds = ds["train"]
    for col in ("text", "label"):
        if col not in ds.column_names:
            raise DataError(f"{path}: dataset has no column {col!r} (columns: {', '.join(ds.column_names)})")
    return [MISample(str(i), r["text"], int(r["label"])) for i, r in enumerate(ds)]


def read_samples(source: str | Path, nonmembers: str | Path | None = None) -> tuple[list[MISample], list[str], str]:
    """All labelled samples from a source (see module doc), the non-member prefix pool, and a description."""
    path = Path(source).expanduser()
    if nonmembers is not None:
        return _from_text_jsonl(path, 1) + _from_text_jsonl(Path(nonmembers).expanduser(), 0), [], f"{path} + {nonmembers}"
    if path.is_dir() and (path / "split.jsonl").is_file():
        samples, pool = _from_model_dir(path)
        return samples, pool, f"{path}/split.jsonl"
    if path.is_dir() and ((path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file()):
        return _from_hf_dataset(path), [], str(path)
    if path.is_file():
        return _from_labelled_jsonl(path), [], str(path)
    if path.is_dir():
        raise DataError(f"{path}: no split.jsonl (not a quantrisk-pretrained model); pass a JSON Lines file with 'text' and 'label' as --data (or members as --data and non-members as --nonmembers)")
    raise DataError(f"{path}: no such file or directory")


def build_mi_set(
    samples: Sequence[MISample],
    n: int | None,
    *,
    seed: int = 0,
    min_chars: int = 1,
    source: str = "",
    prefix_pool: Sequence[str] = (),
) -> MISet:
    """Clean and balance: drop empty texts and within-class duplicates (counted), reject cross-class
    overlap, drop non-members that near-duplicate a member (13-gram overlap > 0.8, `data.dedup`; counted), then draw `n` members and `n` non-members (seeded); `n=None` takes min(#members, #non-members)."""
    skipped: dict[str, int] = {}
    seen: dict[str, int] = {}
    ids: set[str] = set()
    by_label: dict[int, list[MISample]] = {0: [], 1: []}
    for s in samples:
        if s.id in ids:
            raise DataError(f"{source or 'data'}: sample id {s.id!r} appears twice; ids must be unique")
        ids.add(s.id)
        if len(s.text.strip()) < min_chars:
            skipped["empty or too short text"] = skipped.get("empty or too short text", 0) + 1
            continue
        if s.text in seen:
            if seen[s.text] != s.label:
                raise DataError(f"sample {s.id!r}: the same text is labelled both member and non-member")
            skipped["exact duplicate"] = skipped.get("exact duplicate", 0) + 1
            continue
        seen[s.text] = s.label
        by_label[s.label].append(s)
    if by_label[1] and by_label[0]:  # MIMIR's filter: a non-member that near-duplicates a member is mislabelled
        from quantrisk.data.dedup import near_duplicates

        bad = set(near_duplicates([s.text for s in by_label[0]], [s.text for s in by_label[1]]))
        if bad:
            skipped[NEAR_DUPLICATE] = len(bad)
            by_label[0] = [s for i, s in enumerate(by_label[0]) if i not in bad]
    if not by_label[1]:
        raise DataError(f"{source or 'data'}: no members")
    if not by_label[0]:
        raise DataError(f"{source or 'data'}: no non-members")
    available = min(len(by_label[0]), len(by_label[1]))
    if n is None:
        n = available
    if n < 1:
        raise UsageError(f"n must be at least 1, got {n}")
    if n > available:
        raise DataError(
            f"{source or 'data'}: asked for {n} + {n} samples but there are {len(by_label[1])} members and "
            f"{len(by_label[0])} non-members; use --n {available} (or --n all)"
        )
    rng = random.Random(seed)
    chosen = []
    for label in (1, 0):
        pool = sorted(by_label[label], key=lambda s: s.id)
        groups: dict[int, list[MISample]] = {}
        for s in pool:
            groups.setdefault(s.exposure or 0, []).append(s)
        quotas = {k: n // len(groups) + (i < n % len(groups)) for i, k in enumerate(sorted(groups))}
        if len(groups) > 1 and all(len(groups[k]) >= q for k, q in quotas.items()):  # as many of each exposure
            chosen += [s for k in sorted(groups) for s in rng.sample(groups[k], quotas[k])]
        else:
            chosen += rng.sample(pool, n)
    taken = {s.id for s in chosen}
    unused_nonmembers = [s.text for s in sorted(by_label[0], key=lambda s: s.id) if s.id not in taken]
    return MISet(chosen, skipped, source, list(prefix_pool) or unused_nonmembers)


def load_mi_set(source: str | Path, n: int | None = 1000, *, nonmembers: str | Path | None = None, seed: int = 0) -> MISet:
    """Read a source and build the balanced N + N set (see `build_mi_set`)."""
    samples, pool, desc = read_samples(source, nonmembers)
    return build_mi_set(samples, n, seed=seed, source=desc, prefix_pool=pool)
