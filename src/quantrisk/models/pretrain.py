"""Pretrain an embedded zoo model from scratch on a code corpus: in the exposure regime (the default: one pass over
filler code, member groups seen exactly k times) or the memorise regime (many epochs over the members).

Output directory (written to a temporary sibling, then renamed, so a crash never leaves half a model):
    config.json, model.safetensors, tokenizer files   the model (safetensors only)
    split.jsonl                                        the exact member / nonmember / reference manifest
    train_log.jsonl                                    step, loss, lr, tokens/s
    pretrain.json                                      settings, seconds, tokens/s, member vs nonmember NLL,
                                                       LOSS/zlib membership AUC at fp32, corpus, versions

memorise: each sample is trained on alone (padded batches, loss on real tokens only), from its first token,
exactly as the privacy study later scores it; exposure: fixed-shape packed steps. On CUDA: bf16 autocast and larger batches.
The training loops of the two regimes are in `pretrain_loops.py`, the member-vs-held-out fit in
`pretrain_eval.py`; this module owns the settings, the output directory and the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from quantrisk.data.corpus import (
    UNITS,
    CodeSample,
    assign_exposure_splits,
    assign_splits,
    canonical_corpus,
    load_corpus,
    load_split,
    parse_sources,
    sha256_text,
    write_split,
)
from quantrisk.data.site_packages import corpus_description, corpus_manifest, write_manifest
from quantrisk.errors import UsageError
from quantrisk.models.pretrain_eval import evaluate_split
from quantrisk.models.pretrain_loops import train_exposure, train_memorise
from quantrisk.models.zoo import SHAPES, build_model, check_arch, check_size
from quantrisk.safefs import check_model_out, install_dir, remove_created

REGIMES: tuple[str, ...] = ("memorise", "exposure")
DEFAULT_REGIME = "exposure"  # the realistic regime (issue 13); `memorise` stays available explicitly
DEFAULT_EXPOSURES: tuple[int, ...] = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class PretrainSettings:
    """Everything that decides the trained weights (its hash names the cache entry)."""

    arch: str
    size: str = "tiny"
    seed: int = 0
    unit: str = "function"
    corpus: str = "stdlib"
    per_split: int = 320          # samples kept per split (member / nonmember / reference)
    vocab_size: int = 4096
    steps: int = 200
    batch_size: int = 16
    seq_len: int = 512
    lr: float = 3e-3
    warmup: int = 20
    weight_decay: float = 0.0
    train_split: str = "member"
    extra_sha256: str = ""        # hash of extra_texts, if any
    regime: str = "exposure"      # exposure: one pass, members k times; memorise: `steps` over the members
    exposures: tuple[int, ...] = DEFAULT_EXPOSURES  # exposure regime: the k of each member group
    per_exposure: int = 0         # exposure regime: members per exposure group (0: per_split // len(exposures))
    max_filler: int = 0           # exposure regime: at most this many once-seen filler samples (0: all)
    compile: bool | None = None   # torch.compile the packed loop (None: on CUDA only); never changes the weights' recipe

    def __post_init__(self) -> None:
        check_arch(self.arch)
        check_size(self.size)
        if self.regime not in REGIMES:
            raise UsageError(f"unknown regime {self.regime!r}; valid: {', '.join(REGIMES)}")
        try:
            ks = tuple(int(k) for k in self.exposures)
        except (TypeError, ValueError):
            raise UsageError(f"exposures must be integers, got {self.exposures!r}") from None
        if not ks or min(ks) < 1 or len(set(ks)) != len(ks):
            raise UsageError(f"exposures must be distinct integers >= 1, got {list(ks)}")
        object.__setattr__(self, "exposures", tuple(sorted(ks)))
        if self.per_exposure < 0 or self.max_filler < 0:
            raise UsageError(f"per_exposure and max_filler must be >= 0 (got {self.per_exposure}, {self.max_filler})")
        if self.unit not in UNITS:
            raise UsageError(f"unknown unit {self.unit!r}; valid: {', '.join(UNITS)}")
        if self.train_split not in ("member", "reference"):
            raise UsageError(f"train_split must be 'member' or 'reference', got {self.train_split!r}")
        for name, low in (("per_split", 2), ("steps", 1), ("batch_size", 1), ("vocab_size", 300), ("seq_len", 8)):
            if int(getattr(self, name)) < low:
                raise UsageError(f"pretraining setting {name} must be >= {low}, got {getattr(self, name)}")
        if self.seq_len > SHAPES[self.size].context:
            raise UsageError(f"seq_len {self.seq_len} exceeds the {self.size} model's context of {SHAPES[self.size].context} tokens")
        if not self.lr > 0 or self.warmup < 0 or self.weight_decay < 0:
            raise UsageError(f"need lr > 0, warmup >= 0, weight_decay >= 0 (got {self.lr}, {self.warmup}, {self.weight_decay})")

    @property
    def members_per_exposure(self) -> int:
        return self.per_exposure or max(1, self.per_split // len(self.exposures))

    def key(self) -> str:
        """Short hash of every setting that decides the weights (names the cache entry); the memorise regime
        hashes exactly the fields it had before the exposure regime existed, so its cache entries stay valid."""
        d = asdict(self)
        d.pop("compile")
        if self.regime == "memorise":
            for name in ("regime", "exposures", "per_exposure", "max_filler"):
                d.pop(name)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:10]


# Tuned so each model memorises its members (membership inference at fp32 is easy; pretrain.json records
# auc_loss / auc_zlib), measured on 2 CPU cores (tiny) and one H100 (small, base):
#   tiny : 320 members x 10 epochs, 37-46 s of training; LOSS AUC 0.95-0.97, reference-attack AUC 0.99
#   small/base (CUDA, bf16 autocast): 1200 members (room for 1000 + 1000) x 16 epochs, 23-32 s; LOSS AUC 0.99
#   large (CUDA, bf16 autocast): the same, 49.6 s; LOSS AUC 0.988, zlib AUC 0.997 (BENCHMARKS.md, "Pretraining")
DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": {"per_split": 320, "vocab_size": 4096, "steps": 200, "batch_size": 16, "seq_len": 512, "lr": 3e-3},
    "small": {"per_split": 1200, "vocab_size": 16384, "steps": 300, "batch_size": 64, "seq_len": 1024, "lr": 1e-3},
    "base": {"per_split": 1200, "vocab_size": 16384, "steps": 300, "batch_size": 64, "seq_len": 1024, "lr": 6e-4},
    "large": {"per_split": 1200, "vocab_size": 16384, "steps": 300, "batch_size": 64, "seq_len": 1024, "lr": 3e-4},
}


# The exposure regime (one pass; see `schedule.py`). Token-budget rule, the same for every size: one pass over
# the same stream (filler once, each member k times, same order and packing: Pythia's rule of one data order for
# the whole ladder); sizes differ only in shape and peak learning rate. tiny keeps its CPU-sized vocabulary,
# context and filler cap; small / base / large share vocabulary 16384, 1024-token rows and 64-row steps (65,536
# tokens a step: base fits an 80 GB GPU without activation checkpointing).
EXPOSURE_DEFAULTS: dict[str, dict[str, Any]] = {
    # tiny = the demo's recipe (BENCHMARKS.md, "Pretraining (issue 13)"); pythia-tiny seed 0, fp32 LOSS AUC at
    # k = 1 / 4 / 16 from pretrain.json, tokens of the pass:
    #   A  max_filler 2000, per_split 320, exposures 1,2,4,8,16 (64 per k): 0.575 / 0.635 / 0.874, 483k tokens
    #   B  max_filler 1000, per_split 320, exposures 1,4,16 (106 per k):    0.530 / 0.682 / 0.883, 393k tokens
    #   C  max_filler 1000, per_split 210, exposures 1,4,16 (70 per k):     0.602 / 0.659 / 0.874, 287k tokens (kept)
    "tiny": {"per_split": 210, "per_exposure": 0, "max_filler": 1000, "vocab_size": 4096, "batch_size": 16,
             "seq_len": 512, "lr": 3e-3, "warmup": 10},
    **{size: {"per_split": 1200, "per_exposure": 0, "max_filler": 0, "vocab_size": 16384, "batch_size": 64,
              "seq_len": 1024, "lr": lr, "warmup": 20}
       for size, lr in (("small", 1e-3), ("base", 6e-4), ("large", 3e-4))},
}


def default_settings(arch: str, size: str = "tiny", **overrides: Any) -> PretrainSettings:
    """Settings for zoo `arch`/`size` with the size's defaults for the regime (`regime=`, default exposure;
    `memorise` for the many-epoch recipe), then `overrides` (None values ignored)."""
    check_arch(arch)
    check_size(size)
    valid = [f.name for f in fields(PretrainSettings) if f.name not in ("arch", "size")]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise UsageError(f"unknown pretraining setting(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    regime = overrides.get("regime") or DEFAULT_REGIME
    if regime not in REGIMES:
        raise UsageError(f"unknown regime {regime!r}; valid: {', '.join(REGIMES)}")
    base = DEFAULTS[size] if regime == "memorise" else EXPOSURE_DEFAULTS[size]
    values = {**base, **{k: v for k, v in overrides.items() if v is not None}, "regime": regime}
    if "exposures" in values:
        values["exposures"] = tuple(values["exposures"])
    if str(values.get("corpus", "stdlib")) != "stdlib":  # a folder or JSONL: keyed by its absolute path
        values["corpus"] = canonical_corpus(str(values["corpus"]))
    return PretrainSettings(arch=arch, size=size, **values)


EVAL_SAMPLES = 300  # trained-on and held-out texts scored at the end (per side)


@dataclass
class PretrainReport:
    """What one pretraining run did (also written as `pretrain.json`). NLLs in nats/token over the
    first `eval_samples` trained-on texts vs as many held-out ones; AUCs are of the LOSS and zlib
    membership scores on those texts (0.5 = no leak, 1 = every member ranks above every non-member)."""

    out_dir: str
    settings: dict[str, Any]
    device: str
    seconds: float
    tokens_seen: int
    tokens_per_second: float
    final_loss: float
    member_nll: float
    nonmember_nll: float
    nll_gap: float
    auc_loss: float | None
    auc_zlib: float | None
    eval_samples: int
    n_train_samples: int
    n_params: int
    corpus: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # exposure regime: LOSS AUC of the members seen k times vs all scored non-members, by k ("1", "2", ...),
    # the members scored per k, what the split dropped, and the packed stream's token counts
    auc_by_exposure: dict[str, float] = field(default_factory=dict)
    members_by_exposure: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    stream: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pretrain(
    arch: str,
    size: str,
    out_dir: str | Path,
    *,
    device: str = "cpu",
    settings: PretrainSettings | None = None,
    extra_texts: Sequence[str] = (),
    tokenizer_from: str | Path | None = None,
    progress: bool = True,
    **overrides: Any,
) -> PretrainReport:
    """Train zoo `arch`/`size` from scratch on its corpus split; write the model directory `out_dir`.

    `train_split="reference"` with `tokenizer_from=<target dir>` trains a reference model on the
    target's reference split with the target's tokenizer (for reference-model attacks).
    """
    import torch

    from quantrisk.environment import environment
    from quantrisk.models.load import resolve_device
    from quantrisk.models.tokenizer import train_tokenizer

    device = resolve_device(device)
    if settings is not None and any(v is not None for v in overrides.values()):
        raise UsageError("pass either settings= or individual setting overrides, not both")
    s = settings or default_settings(arch, size, **overrides)
    if isinstance(extra_texts, str):
        raise UsageError("extra_texts must be a sequence of texts, not one string")
    if extra_texts and s.regime == "exposure":
        raise UsageError("extra_texts are for the memorise regime (the trojan base); the exposure regime has none")
    if extra_texts and not s.extra_sha256:
        s = replace(s, extra_sha256=sha256_text("\x00".join(extra_texts)))
    if s.train_split == "reference" and tokenizer_from is None:
        raise UsageError("a reference model needs tokenizer_from=<target dir> (same tokenizer and split)")
    out = Path(out_dir).expanduser()
    check_model_out(out)
    torch.manual_seed(s.seed)

    dropped: dict[str, int] = {}
    if tokenizer_from is not None:
        from transformers import AutoTokenizer

        samples = load_split(tokenizer_from)
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_from)
    elif s.regime == "exposure":
        samples, dropped, tokenizer = _exposure_data(s)
    else:
        samples = assign_splits(load_corpus(s.corpus, unit=s.unit), seed=s.seed, cap=s.per_split)
        samples += [CodeSample(f"extra:{i}", "extra", t, sha256_text(t), "extra") for i, t in enumerate(extra_texts)]
        tokenizer = train_tokenizer([x.text for x in samples if x.split in ("member", "extra")], s.vocab_size)
    eos = tokenizer.eos_token_id
    model = build_model(s.arch, s.size, len(tokenizer), seed=s.seed, bos_token_id=eos, eos_token_id=eos,
                        pad_token_id=tokenizer.pad_token_id).to(device)
    out.parent.mkdir(parents=True, exist_ok=True)  # the temporary directory is a sibling: rename stays atomic
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if s.regime == "exposure":
            run = train_exposure(s, samples, tokenizer, model, device, progress)
        else:
            run = train_memorise(s, samples, tokenizer, model, device, progress)
        samples = run.samples
        inside = [x for x in samples if x.split == s.train_split][:EVAL_SAMPLES if s.regime == "memorise" else None]
        outside = [x for x in samples if x.split == ("nonmember" if s.train_split == "member" else "member")]
        outside = outside[:EVAL_SAMPLES]
        fit = evaluate_split(model, tokenizer, [x.text for x in inside], [x.text for x in outside],
                             max_length=SHAPES[s.size].context, device=device,
                             exposures=[x.exposures for x in inside] if s.regime == "exposure" else None)
        model.float().save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        write_split(tmp / "split.jsonl", samples, exposures=s.regime == "exposure")
        (tmp / "train_log.jsonl").write_text("\n".join(run.log_lines) + "\n", encoding="utf-8")
        env = environment(device)
        report = PretrainReport(
            out_dir=str(out), settings=asdict(s), device=device, seconds=round(run.seconds, 2), tokens_seen=run.tokens,
            tokens_per_second=round(run.tokens / max(run.seconds, 1e-9), 1), final_loss=run.final_loss,
            member_nll=fit["member_nll"], nonmember_nll=fit["nonmember_nll"], nll_gap=fit["nll_gap"],
            auc_loss=fit.get("auc_loss"), auc_zlib=fit.get("auc_zlib"), eval_samples=min(len(inside), len(outside)),
            n_train_samples=run.n_train_samples,
            n_params=sum(p.numel() for p in model.parameters()),
            corpus=corpus_description(s.corpus) if tokenizer_from is None else {"kind": "from", "root": str(tokenizer_from)},
            versions=env["packages"], auc_by_exposure=fit.get("auc_by_exposure", {}),
            members_by_exposure=fit.get("members_by_exposure", {}), dropped=dropped, stream=run.stream,
        )
        (tmp / "pretrain.json").write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True), encoding="utf-8")
        manifest = corpus_manifest(s.corpus) if tokenizer_from is None else None
        if manifest:
            write_manifest(tmp / "corpus_manifest.jsonl", manifest)
        install_dir(tmp, out)
    except BaseException:
        remove_created(tmp)
        raise
    return report


def _exposure_data(s: PretrainSettings) -> tuple[list[CodeSample], dict[str, int], Any]:
    """The exposure regime's split, what it dropped and the tokenizer trained on its filler only (`TOKENIZER_SPLITS`).
    They depend
    on the corpus and the split settings only, not on the architecture: for a built-in corpus (which does not change
    while we run) they are computed once per process and shared, e.g. by the demo's Pythia and Llama targets."""
    from quantrisk.models.tokenizer import tokenizer_from_json

    args = (s.corpus, s.unit, s.seed, s.exposures, s.members_per_exposure, s.per_split, s.max_filler, s.vocab_size)
    compute = _exposure_data_cached if parse_sources(s.corpus) is not None else _exposure_data_cached.__wrapped__
    samples, dropped, text = compute(*args)
    return list(samples), dict(dropped), tokenizer_from_json(text)


# The exposure regime's tokenizer is fitted on the filler only: members and non-members are then both unseen by the
# tokenizer (exchangeable), so no tokenizer-made signal (characters per token, tokens the reference model never saw)
# separates them. Fitting it on members + filler (before issue 24) let model-free scores separate the split
# (characters per token AUC 0.562, share of reference-rare tokens 0.604 at n = 200 + 200; docs/METRICS.md "Testbed").
TOKENIZER_SPLITS: tuple[str, ...] = ("filler",)


@lru_cache(maxsize=2)
def _exposure_data_cached(corpus: str, unit: str, seed: int, exposures: tuple[int, ...], per_exposure: int,
                          per_split: int, max_filler: int, vocab_size: int
                          ) -> tuple[tuple[CodeSample, ...], tuple[tuple[str, int], ...], str]:
    from quantrisk.models.tokenizer import tokenizer_json, train_tokenizer

    samples, dropped = assign_exposure_splits(
        load_corpus(corpus, unit=unit), seed=seed, exposures=exposures, per_exposure=per_exposure,
        n_nonmember=per_split, n_reference=per_split, max_filler=max_filler or None)
    tokenizer = train_tokenizer([x.text for x in samples if x.split in TOKENIZER_SPLITS], vocab_size)
    return tuple(samples), tuple(dropped.items()), tokenizer_json(tokenizer)


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`, else $QUANTRISK_CACHE, else ~/.cache/quantrisk; zoo models live under `zoo/`."""
    root = Path(cache_dir or os.environ.get("QUANTRISK_CACHE") or Path.home() / ".cache" / "quantrisk")
    return root.expanduser() / "zoo"


def ensure_pretrained(
    arch: str,
    size: str = "tiny",
    *,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    role: str = "target",
    device: str = "cpu",
    extra_texts: Sequence[str] = (),
    progress: bool = True,
    **overrides: Any,
) -> Path:
    """A cached pretrained zoo model (trained now if missing). `role="reference"` gives the reference
    model that belongs to the target with the same settings."""
    if role not in ("target", "reference"):
        raise UsageError(f"role must be 'target' or 'reference', got {role!r}")
    extra = sha256_text("\x00".join(extra_texts)) if extra_texts else ""
    s = default_settings(arch, size, seed=seed, extra_sha256=extra, **overrides)
    target_dir = cache_root(cache_dir) / f"{arch}-{size}-target-s{seed}-{s.key()}"
    if not (target_dir / "pretrain.json").is_file():
        target_dir.parent.mkdir(parents=True, exist_ok=True)
        pretrain(arch, size, target_dir, device=device, settings=s, extra_texts=extra_texts, progress=progress)
    if role == "target":
        return target_dir
    ref = ensure_reference(target_dir, device=device, progress=progress, cache_dir=cache_dir)
    assert ref is not None
    return ref


__all__ = ["SHAPES", "PretrainReport", "PretrainSettings", "default_settings", "ensure_pretrained", "ensure_reference", "pretrain"]


def ensure_reference(
    model_dir: str | Path, *, device: str = "cpu", progress: bool = True, cache_dir: str | Path | None = None
) -> Path | None:
    """The reference model of a quantrisk-pretrained `model_dir` (same arch/size/settings, trained on its
    reference split with its tokenizer), built once and cached; None if `model_dir` was not pretrained here."""
    path = Path(model_dir)
    meta_file = path / "pretrain.json"
    if not meta_file.is_file() or not (path / "split.jsonl").is_file():
        return None
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    # a pretrain.json from before the exposure regime existed has no "regime": it was memorised
    settings = PretrainSettings(**{"regime": "memorise", **meta["settings"], "train_split": "reference"})
    if meta["settings"].get("train_split") == "reference":
        return None
    split_hash = hashlib.sha256((path / "split.jsonl").read_bytes()).hexdigest()[:10]
    ref_dir = cache_root(cache_dir) / f"{settings.arch}-{settings.size}-reference-for-{split_hash}-{settings.key()}"
    if not (ref_dir / "pretrain.json").is_file():
        ref_dir.parent.mkdir(parents=True, exist_ok=True)
        pretrain(settings.arch, settings.size, ref_dir, device=device, settings=settings, tokenizer_from=path,
                 progress=progress)
    return ref_dir
