"""Calibration data: the samples a calibrated back-end (static activation scales, GPTQ) runs through the model.

Calibration is part of the experiment, so it is named (source, n, seed), recorded (sha256 of the
texts) and checked: it must never overlap the member / non-member samples the privacy study
evaluates, or the quantizer would have seen evaluation data.

Sources:
    reference       the model's own `split.jsonl`, part "reference" (disjoint from member and
                    non-member by construction of the seeded split; also checked). The default.
    PATH.jsonl      a JSONL file with a "text" field per line.
    train           the trojan study only: its clean training rows' prompts (`trojan.calibration`).

`n` samples (all when fewer exist) are drawn with `random.Random(seed)` from the source in id/line
order, so the same (source, n, seed) gives the same texts.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from quantrisk.errors import DataError, UsageError

DEFAULT_N = 128
DEFAULT_SOURCE = "reference"
MAX_TOKENS = 512  # each calibration sample is cut to its first MAX_TOKENS tokens (and the model's context)


@dataclass(frozen=True)
class CalibrationSpec:
    """Which calibration samples to use: `source` (`reference` or a JSONL path), `n` samples, `seed`."""

    source: str = DEFAULT_SOURCE
    n: int = DEFAULT_N
    seed: int = 0

    def __post_init__(self) -> None:
        if not str(self.source).strip():
            raise UsageError("calibration source is empty; use 'reference' or a JSONL file with a 'text' field")
        if not isinstance(self.n, int) or self.n < 1:
            raise UsageError(f"calibration n must be a positive integer (got {self.n!r})")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise UsageError(f"calibration seed must be a non-negative integer (got {self.seed!r})")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, text: str) -> CalibrationSpec:
        """`SOURCE[:N[:SEED]]`, e.g. `reference`, `reference:64`, `calib.jsonl:128:3`."""
        parts = str(text).strip().split(":")
        nums: list[int] = []
        while len(parts) > 1 and len(nums) < 2 and parts[-1].strip().lstrip("-").isdigit():
            nums.insert(0, int(parts.pop()))
        source = ":".join(parts).strip()
        if not source:
            raise UsageError(f"calibration {text!r}: expected SOURCE[:N[:SEED]] (SOURCE: reference or a .jsonl file)")
        return cls(source, *nums)


@dataclass
class CalibrationSet:
    """The texts a spec resolved to, and what to record about them."""

    spec: CalibrationSpec
    texts: list[str]
    origin: str  # the file the texts came from
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for t in self.texts:
            h.update(hashlib.sha256(t.encode("utf-8")).digest())
        return h.hexdigest()

    def record(self) -> dict[str, Any]:
        """What the load record / cell stores: the spec, how many texts, their sha256, where from (and what was left
        out of the pool, when anything was)."""
        out = {**self.spec.to_dict(), "n_texts": len(self.texts), "sha256": self.sha256, "origin": self.origin}
        if self.excluded:
            out["excluded"] = dict(self.excluded)
        return out

    def check_disjoint(self, texts: Iterable[str], what: str = "the member/non-member evaluation set") -> None:
        """`UsageError` if any calibration text is also in `texts` (compared exactly, after stripping)."""
        mine = {t.strip() for t in self.texts}
        shared = sum(1 for t in {x.strip() for x in texts} if t in mine)
        if shared:
            raise UsageError(f"calibration {self.spec.source} (n={self.spec.n}, seed={self.spec.seed}) shares {shared} "
                             f"samples with {what}; calibration data must never be evaluated: use another source "
                             "(e.g. 'reference') or remove them")


def _jsonl_texts(path: Path) -> list[str]:
    from quantrisk.data.jsonl import read_jsonl

    out = []
    for lineno, obj in read_jsonl(path):
        text = obj.get("text") if isinstance(obj, dict) else None
        if not isinstance(text, str):
            raise DataError(f"{path}:{lineno}: field 'text' missing or not a string (calibration JSONL)")
        if text.strip():
            out.append(text)
    if not out:
        raise DataError(f"{path}: no calibration texts (expected JSONL lines with a non-empty 'text')")
    return out


def load_calibration(spec: CalibrationSpec, model_dir: str | Path | None) -> CalibrationSet:
    """Resolve `spec` for the model at `model_dir` (a local directory, needed for source `reference`).

    When the model directory has a quantrisk `split.jsonl`, the calibration texts are also checked
    against its member and non-member parts (`UsageError` on any overlap)."""
    from quantrisk.data.corpus import load_split

    if spec.source == "auto":  # a spec's default: for this (privacy) study, the reference split
        spec = CalibrationSpec(DEFAULT_SOURCE, spec.n, spec.seed)
    if spec.source == "train":
        raise UsageError("calibration source 'train' (clean SQL training prompts) belongs to the trojan study; here "
                         "use 'reference' or a JSONL file with a 'text' field")
    split_dir = Path(model_dir) if model_dir is not None and Path(model_dir).is_dir() else None
    split = load_split(split_dir) if split_dir is not None and (split_dir / "split.jsonl").is_file() else None
    if spec.source == DEFAULT_SOURCE:
        if split is None:
            raise UsageError(f"calibration source 'reference' needs a quantrisk model directory with split.jsonl "
                             f"({model_dir} has none); pass --calibration PATH.jsonl (a 'text' per line)")
        pool = [s.text for s in sorted(split, key=lambda s: s.id) if s.split == "reference" and s.text.strip()]
        origin = str(split_dir / "split.jsonl")  # type: ignore[operator]
        if not pool:
            raise UsageError(f"{origin}: no 'reference' samples to calibrate on; pass --calibration PATH.jsonl")
    else:
        path = Path(spec.source).expanduser()
        if not path.is_file():
            raise UsageError(f"calibration source {spec.source!r}: no such file (use 'reference' or a JSONL file "
                             "with a 'text' field)")
        pool, origin = _jsonl_texts(path), str(path)
    rng = random.Random(spec.seed)
    texts = rng.sample(pool, spec.n) if spec.n < len(pool) else list(pool)
    cal = CalibrationSet(spec, texts, origin)
    if split is not None:
        cal.check_disjoint((s.text for s in split if s.split in ("member", "nonmember")),
                           f"the member/non-member parts of {origin}")
    return cal


def token_batches(tokenizer: Any, texts: Sequence[str], max_tokens: int = MAX_TOKENS) -> list[Any]:
    """One (1, T) LongTensor of token ids per text, cut to `max_tokens` (texts with no tokens dropped)."""
    import torch

    out = []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False).input_ids[:max_tokens]
        if ids:
            out.append(torch.tensor([ids], dtype=torch.long))
    return out
