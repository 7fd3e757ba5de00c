"""Verify a checkpoint before and while it loads: config sanity, sharded-index safety, weights that fit the config.

A model directory from someone else can be wrong in ways transformers does not refuse:
- a config whose architecture does not match the weights (`model_type: llama` over GPT-NeoX tensors) loads as a
  randomly initialised model, with a 20-line "LOAD REPORT" printed and exit 0 — metrics of noise. `load_verified`
  loads with `output_loading_info=True`, captures the library's report and warnings instead of printing them, and
  raises `ModelLoadError` (exit 2, one line: how many keys, an example) on any missing, unexpected or mismatched
  weight: never a random-init model;
- a zero / negative / non-integer size in config.json fails deep inside (a zero head count used to be blamed on
  the tokenizer); `check_config` names the field;
- a sharded checkpoint's `*.index.json` maps tensors to shard files: a shard may be a pickle (which the
  safetensors-only rule must refuse) or a path outside the model directory; `check_index` refuses both
  (pickle shards are allowed with `allow_pickle`) and checks each safetensors shard's header.
"""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from quantrisk.errors import ModelLoadError

# config.json fields that must be positive integers when present (names differ across architectures).
POSITIVE_INT_FIELDS: tuple[str, ...] = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
    "intermediate_size", "max_position_embeddings", "n_embd", "n_layer", "n_head", "n_positions", "n_ctx",
    "num_layers", "num_heads", "head_dim", "rotary_dim",
)
MAX_CONFIG_INT = 2**31 - 1
CONTEXT_FIELDS: tuple[str, ...] = ("max_position_embeddings", "n_positions", "n_ctx")
# bitsandbytes' per-layer quantization state (int8 row scales, 4-bit absmax / quant maps), made while loading
QUANTIZER_STATE = (".SCB", ".weight_format", ".absmax", ".quant_map", ".nested_absmax", ".nested_quant_map",
                   ".quant_state", ".quant_state.bitsandbytes__nf4", ".quant_state.bitsandbytes__fp4")
MAX_INDEX_BYTES = 50_000_000
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_config(config_file: Path, config: dict[str, Any]) -> None:
    """`ModelLoadError` naming the file and field for a size that is not a positive integer (within 2**31), a
    hidden size not divisible by the head count, or a head count not divisible by the key-value head count."""
    for name in POSITIVE_INT_FIELDS:
        if name not in config or config[name] is None:
            continue
        value = config[name]
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_CONFIG_INT:
            raise ModelLoadError(f"{config_file}: field {name!r} is {value!r}; it must be a positive integer "
                                 f"(at most {MAX_CONFIG_INT}); fix the config")

    def pair(big: str, small: str) -> None:
        a, b = config.get(big), config.get(small)
        if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool) and b > 0 and a % b:
            raise ModelLoadError(f"{config_file}: field {big!r} ({a}) is not divisible by field {small!r} ({b}); "
                                 "fix the config")

    for name in CONTEXT_FIELDS:
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value < 2:
            raise ModelLoadError(f"{config_file}: field {name!r} is {value}; a context must hold at least 2 positions "
                                 "(a prompt token and the next); fix the config")

    vocab = config.get("vocab_size")
    for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
        value = config.get(name)
        for v in value if isinstance(value, list) else [value]:
            if isinstance(v, int) and not isinstance(v, bool) and isinstance(vocab, int) and not 0 <= v < vocab:
                raise ModelLoadError(f"{config_file}: field {name!r} is {v}, outside the vocabulary (field "
                                     f"'vocab_size' is {vocab}); fix the config")

    pair("hidden_size", "num_attention_heads")
    pair("n_embd", "n_head")
    pair("num_attention_heads", "num_key_value_heads")


def check_index(model_dir: Path, *, allow_pickle: bool, check_shard: Callable[[Path], None]) -> None:
    """Check every `*.index.json` of `model_dir`: valid JSON with a `weight_map` of tensor -> shard file; each
    shard a relative path that stays inside `model_dir`, exists, and is safetensors (pickle only with
    `allow_pickle`); `check_shard` runs on each safetensors shard (its header)."""
    root = model_dir.resolve()
    for index in sorted(model_dir.glob("*.index.json")):
        if index.stat().st_size > MAX_INDEX_BYTES:
            raise ModelLoadError(f"{index}: {index.stat().st_size} bytes, more than the bound of {MAX_INDEX_BYTES}")
        try:
            data = json.loads(index.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            raise ModelLoadError(f"{index}: not valid JSON; fix or re-download it") from None
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise ModelLoadError(f"{index}: field 'weight_map' must map tensor names to shard file names")
        for shard_name in sorted(set(weight_map.values())):
            shard = (model_dir / shard_name).resolve()
            if Path(shard_name).is_absolute() or (shard != root and root not in shard.parents):
                raise ModelLoadError(f"{index}: shard {shard_name!r} is outside the model directory {model_dir}; "
                                     "refused (every shard must be a file inside it)")
            if not shard.is_file():
                raise ModelLoadError(f"{index}: shard {shard_name!r} does not exist in {model_dir}; re-download it")
            if shard.name.endswith(".safetensors"):
                check_shard(shard)
            elif not allow_pickle and index.name.endswith(".safetensors.index.json"):  # a pickle index is only
                # read with allow_pickle (use_safetensors=None); a safetensors index is read always
                kind = "a pickle" if shard.name.endswith(PICKLE_SUFFIXES) else "not a safetensors file"
                raise ModelLoadError(f"{index}: shard {shard_name!r} is {kind}; refused because unpickling can run "
                                     "arbitrary code. Convert it to safetensors, or pass --allow-pickle")


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


CAPTURED_LOGGER = "transformers"  # the load report, "layers were not sharded", ...: our verdict replaces them


def _problem(what: str, keys: list[str]) -> str:
    return f"{len(keys)} {what} weight(s) (e.g. {sorted(keys)[0]})"


def load_verified(from_pretrained: Callable[..., Any], source: str, **kwargs: Any) -> Any:
    """`from_pretrained(source, output_loading_info=True, **kwargs)` with the library's load report and warnings
    captured (not printed); `ModelLoadError` if any weight of the model is missing from the checkpoint, any tensor
    of the checkpoint is unused, or a shape does not match: the config does not describe these weights."""
    handler = _Captured()
    library = logging.getLogger(CAPTURED_LOGGER)  # its handler prints every child logger's records
    saved = (library.handlers[:], library.propagate)
    library.handlers = [handler]
    library.propagate = False
    try:
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            model, info = from_pretrained(source, output_loading_info=True, **kwargs)
    finally:
        library.handlers, library.propagate = saved
    missing = list(info.get("missing_keys") or [])
    if kwargs.get("quantization_config") is not None:  # state a quantizer creates at load, never in a checkpoint
        missing = [k for k in missing if not k.endswith(QUANTIZER_STATE)]
    unexpected = list(info.get("unexpected_keys") or [])
    mismatched = [str(k[0] if isinstance(k, (tuple, list)) else k) for k in info.get("mismatched_keys") or []]
    problems = [_problem(w, k) for w, k in (("missing", missing), ("unexpected", unexpected),
                                            ("shape-mismatched", mismatched)) if k]
    if problems:
        model_type = getattr(getattr(model, "config", None), "model_type", "?")
        raise ModelLoadError(f"{source}: the weights do not fit config.json (model_type {model_type!r}): "
                             f"{'; '.join(problems)}; refused rather than run a partly random model. Check that "
                             "config.json belongs to these weights")
    return model


def check_loaded(source: str, model: Any, tokenizer: Any) -> None:
    """`ModelLoadError` (exit 2) for a loaded model that cannot be evaluated: a tokenizer that makes ids the
    embedding has no row for, a special token id (pad, eos, bos; tokenizer or config) outside the embedding, or a
    weight holding NaN or infinity (named). Checked once at load, before any figure is computed from it."""
    import torch

    emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    rows = getattr(emb, "num_embeddings", None)
    if rows is None and getattr(emb, "weight", None) is not None:
        rows = int(emb.weight.shape[0])
    if rows is not None:
        n_tok = len(tokenizer)
        if n_tok > rows:
            raise ModelLoadError(f"{source}: the tokenizer has {n_tok} ids but the model's embedding has {rows} rows; "
                                 "ids past the embedding would crash or read garbage. Check that the tokenizer "
                                 "belongs to these weights")
        config = getattr(model, "config", None)
        for owner, name in [(tokenizer, f"{k}_token_id") for k in ("pad", "eos", "bos")] + [
                (config, f"{k}_token_id") for k in ("pad", "eos", "bos")]:
            value = getattr(owner, name, None)
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, int) and not isinstance(v, bool) and not 0 <= v < rows:
                    where = "tokenizer" if owner is tokenizer else "config.json"
                    raise ModelLoadError(f"{source}: {where} field {name!r} is {v}, outside the embedding's "
                                         f"{rows} rows; fix the {where}")
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and t.numel() and t.device.type != "meta":
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                bad = int((~finite).sum())
                raise ModelLoadError(f"{source}: weight {name!r} holds {bad} non-finite value(s) (NaN or infinity); "
                                     "refused, no figure computed from it would mean anything. Re-download or "
                                     "re-save the model")
