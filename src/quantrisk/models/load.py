"""Load a causal LM + tokenizer from a local directory or a hub id, at a precision, on a device.

Safety: weights load from safetensors only unless the caller opts into pickle (`allow_pickle`);
`trust_remote_code` stays off unless asked, and a config that needs remote code is refused with a
clear message. Offline, a hub id that is not in the local cache fails fast and says to pass a
local directory.

Quantization is the back-end's business (`quantrisk.models.quantizers`): this module reads its
declared facts (`at_load`, `needs_calibration`, `quantize_on_device`, `lora_base`) and never names
one. Adapters (LoRA, from the trojan study): for back-ends that quantize a model in memory and for
plain dtypes, the adapter is merged into the fp32 base first and the merged model is then quantized
— the deployment path "merge, then compress". For back-ends that quantize while loading
(`at_load`, e.g. bitsandbytes) the adapter is attached, unmerged, to the quantized base (as QLoRA
inference does). Calibrated back-ends get token ids of the calibration samples
(`quantrisk.data.calibration`; default: 128 samples of the model's reference split), recorded in
the load record.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from quantrisk.data.calibration import CalibrationSet, CalibrationSpec, load_calibration, token_batches
from quantrisk.errors import ModelLoadError
from quantrisk.models.checkpoint import check_config, check_index, check_loaded, load_verified
from quantrisk.models.memory import packed_bytes, weight_memory
from quantrisk.models.quantizers import (
    Precision,
    device_type,
    get_quantizer,
    require_available,
    require_lora_base,
)

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
# Any one of these in a model directory means it ships a tokenizer (fast, BPE, SentencePiece or WordPiece).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "spiece.model",
                   "vocab.txt")
SAFETENSORS_MAX_HEADER = 100_000_000
ATTENTION = "sdpa"  # the attention implementation every model loads with (eager where an architecture has no SDPA)  # the safetensors format's own limit on the JSON header


@dataclass
class LoadRecord:
    """What `load_model` did. Bytes are of the weights really held; fp16_bytes is the fp16 baseline;
    nominal_bytes is the packed size a real format would need at this precision (`memory.packed_bytes`)."""

    source: str
    precision: str
    backend: str
    library: str | None
    library_version: str | None
    implementation: str
    device: str
    compute_dtype: str
    weight_bytes: int
    fp16_bytes: int
    nominal_bytes: int
    n_params: int
    load_seconds: float
    model_type: str
    adapter: str | None = None
    allow_pickle: bool = False
    trust_remote_code: bool = False
    activations: str = "float"
    calibration: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    record: LoadRecord


def resolve_device(device: str | None) -> str:
    """`None`/`auto` -> `cuda` if torch sees a GPU, else `cpu`; otherwise validates and returns `device`."""
    if device is None or device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    kind = device_type(device)
    if kind == "cpu":
        if device.strip().lower() != "cpu":
            raise ModelLoadError(f"unknown device {device!r}; valid: cpu, cuda, cuda:N (N = 0, 1, ...) or auto")
        return device
    _, colon, index = device.partition(":")
    if colon and not (index.isascii() and index.isdigit() and len(index) <= 4):
        raise ModelLoadError(f"device {device!r}: the GPU index must be a number 0, 1, ... (e.g. cuda:0)")
    import torch

    if not torch.cuda.is_available():
        raise ModelLoadError(f"{device} was asked for, but torch sees no CUDA device on this machine (torch "
                             f"{torch.__version__}); use --device cpu, or auto")
    if colon and int(index) >= torch.cuda.device_count():
        raise ModelLoadError(f"{device}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")
    return device


def _offline() -> bool:
    """The user asked for offline mode (quantrisk's own default, `network.py`, does not count)."""
    from quantrisk.network import user_offline

    return user_offline()


def _hub_reachable(timeout: float = 3.0) -> bool:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def check_model_dir(path: Path, *, allow_pickle: bool, trust_remote_code: bool) -> dict[str, Any]:
    """Validate a local model directory before anything reads its weights; returns its config.json."""
    if not path.exists():
        raise ModelLoadError(f"model directory {path} does not exist; pass a local model directory or a hub id "
                             "(or make one with `quantrisk pretrain`)")
    if not path.is_dir():
        raise ModelLoadError(f"{path} is a file, not a model directory; pass the directory that holds config.json + "
                             "*.safetensors")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ModelLoadError(f"{path} is not a model directory: no config.json; pass the directory that "
                             "save_pretrained wrote")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{config_file}: not valid JSON ({exc}); fix or re-download it") from None
    if not isinstance(config, dict):
        raise ModelLoadError(f"{config_file}: expected a JSON object; fix or re-download it")
    if config.get("auto_map") and not trust_remote_code:
        raise ModelLoadError(
            f"{config_file} asks for remote code (auto_map); refused. Pass --trust-remote-code only if you trust it"
        )
    _check_model_type(config_file, config)
    check_config(config_file, config)
    files = sorted(p.name for p in path.iterdir())
    has_safetensors = any(f.endswith(".safetensors") or f.endswith(".safetensors.index.json") for f in files)
    has_pickle = any(f.endswith(PICKLE_SUFFIXES) and f != "training_args.bin" for f in files)
    if not has_safetensors:
        if has_pickle and not allow_pickle:
            raise ModelLoadError(
                f"{path} holds only pickle weights ({', '.join(f for f in files if f.endswith(PICKLE_SUFFIXES))}); "
                "refused because unpickling can run arbitrary code. Convert to safetensors, or pass --allow-pickle"
            )
        if not has_pickle:
            raise ModelLoadError(f"{path} has a config.json but no weights (*.safetensors); save them there with "
                                 "save_pretrained(DIR)")
    for name in files:
        if name.endswith(".safetensors"):
            check_safetensors(path / name)
    check_index(path, allow_pickle=allow_pickle, check_shard=check_safetensors)
    if not any(f in TOKENIZER_FILES for f in files):
        raise ModelLoadError(
            f"{path} has no tokenizer ({', '.join(TOKENIZER_FILES[:4])}, ...); save the model's tokenizer into it "
            "(tokenizer.save_pretrained(DIR))"
        )
    return config


def _check_model_type(config_file: Path, config: dict[str, Any]) -> None:
    """`ModelLoadError` naming the file and field when `model_type` is not an architecture transformers knows."""
    model_type = config.get("model_type")
    if model_type is None or config.get("auto_map"):
        return
    import transformers
    from transformers import CONFIG_MAPPING

    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        raise ModelLoadError(
            f"{config_file}: field 'model_type' is {model_type!r}, an architecture transformers "
            f"{transformers.__version__} does not know; check the config (e.g. llama, gpt_neox) or upgrade transformers"
        )


def check_safetensors(file: Path) -> None:
    """Read a safetensors file's header (not its tensors): `ModelLoadError` naming the file when the header is not
    valid or the file is shorter than the tensors it declares (truncated download, overwritten file)."""
    size = file.stat().st_size

    def corrupt(why: str) -> ModelLoadError:
        return ModelLoadError(f"could not load a causal LM from {file.parent}: {file} is not a valid safetensors file "
                              f"({why}); it is corrupt or truncated, re-download or re-save the model")

    try:
        with file.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise corrupt(f"{size} bytes, shorter than the 8-byte header length")
            n = int.from_bytes(head, "little")
            if n > min(size - 8, SAFETENSORS_MAX_HEADER):
                raise corrupt(f"header length {n} does not fit in the file of {size} bytes")
            header = json.loads(fh.read(n).decode("utf-8"))
    except OSError as exc:
        raise ModelLoadError(f"{file}: cannot read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupt("its header is not valid JSON") from None
    if not isinstance(header, dict):
        raise corrupt("its header is not a JSON object")
    try:
        end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
    except (TypeError, KeyError, IndexError, ValueError):
        raise corrupt("a tensor entry has no valid data_offsets") from None
    if 8 + n + end > size:
        raise corrupt(f"the tensors need {8 + n + end} bytes but the file has {size}")


def resolve_source(source: str | Path, *, allow_pickle: bool = False, trust_remote_code: bool = False) -> str:
    """Local directory (validated) or hub id (cached, or reachable) -> what `from_pretrained` should get."""
    text = str(source).strip()
    if not text:
        raise ModelLoadError("empty model source; pass a local directory or a hub id like EleutherAI/pythia-160m")
    path = Path(text).expanduser()
    looks_local = path.exists() or text.startswith((".", "/", "~")) or os.sep + os.sep in text or text.count("/") > 1
    if looks_local or not HUB_ID.match(text):
        check_model_dir(path, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        return str(path)
    # a hub id: the local cache first, the network only when allowed and reachable
    try:
        from huggingface_hub import snapshot_download

        cached = Path(snapshot_download(text, local_files_only=True))
        check_model_dir(cached, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
        return str(cached)
    except ModelLoadError:
        raise
    except Exception:  # noqa: BLE001 - not in the cache
        pass
    if _offline():
        raise ModelLoadError(
            f"{text!r} is a hub id that is not in the local cache and offline mode is on; pass a local model directory"
        )
    if not _hub_reachable():
        raise ModelLoadError(
            f"{text!r} looks like a hub id, but the hub is unreachable from here and it is not cached; "
            "pass a local model directory (or `quantrisk pretrain` one)"
        )
    from quantrisk.network import allow_hub

    allow_hub()  # the user named a hub id that is not cached: downloading it is what they asked for
    return text


def load_tokenizer(source: str, *, trust_remote_code: bool = False) -> Any:
    """The model's tokenizer, with a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"could not load a tokenizer from {source}: {_first_line(exc)}") from None
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ModelLoadError(f"tokenizer of {source} has neither a pad nor an eos token")
        tok.pad_token = tok.eos_token
    return tok


def _first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (its type name when it has none)."""
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return lines[0].rstrip(":") if lines else type(exc).__name__


def _from_pretrained(source: str, kwargs: dict[str, Any], *, allow_pickle: bool, trust_remote_code: bool) -> Any:
    from transformers import AutoModelForCausalLM

    def load(attention: str) -> Any:
        return load_verified(  # weights must fit the config; the library's load report is captured
            AutoModelForCausalLM.from_pretrained,
            source,
            use_safetensors=None if allow_pickle else True,
            trust_remote_code=trust_remote_code,
            attn_implementation=attention,  # pinned: never a flash / hub kernel chosen behind the user's back
            **kwargs,
        )

    try:
        try:
            return load(ATTENTION)
        except ValueError as exc:  # an architecture without SDPA attention (GPT-Neo): the eager one
            if "attn_implementation" not in str(exc):
                raise
            return load("eager")
    except (MemoryError, ModelLoadError):
        raise
    except Exception as exc:  # noqa: BLE001 - safetensors/transformers errors become one clear line
        raise ModelLoadError(f"could not load a causal LM from {source}: {_first_line(exc)}") from None


def _apply_adapter(model: Any, adapter: str, *, merge: bool) -> Any:
    from peft import PeftModel

    try:
        wrapped = PeftModel.from_pretrained(model, adapter, is_trainable=False)
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"could not apply adapter {adapter}: {_first_line(exc)}") from None
    return wrapped.merge_and_unload() if merge else wrapped


def check_adapter_dir(adapter: str | Path, *, allow_pickle: bool) -> str:
    """Validate a peft adapter directory (adapter_config.json + safetensors weights)."""
    path = Path(adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise ModelLoadError(f"{path} is not a LoRA adapter directory: no adapter_config.json")
    if not (path / "adapter_model.safetensors").is_file():
        if any(path.glob("adapter_model.bin")) and not allow_pickle:
            raise ModelLoadError(f"{path} holds a pickle adapter (adapter_model.bin); refused without --allow-pickle")
        if not any(path.glob("adapter_model.bin")):
            raise ModelLoadError(f"{path} has no adapter weights (adapter_model.safetensors)")
    return str(path)


def quantize_model(model: Any, precision: Precision | str, device: str = "cpu", *,
                   calibration: Sequence[Any] | None = None) -> Any:
    """Apply an in-memory back-end (anything not `at_load`: dtype casts included) to an fp32 model; returns it on
    `device`. `calibration`: token-id tensors (1, T) for back-ends that need them."""
    p = require_available(precision, device)
    quantizer = get_quantizer(p)
    if quantizer.at_load:
        raise ModelLoadError(f"{p.name} quantizes while loading; use load_model(source, '{p.name}') instead")
    if quantizer.calibrates(p) and not calibration:
        raise ModelLoadError(f"{p.name} needs calibration samples; pass calibration token batches")
    model = model.to(quantizer.compute_dtype(p, device))
    if quantizer.quantize_on_device:
        model = model.to(device)
    model = quantizer.apply(model, p, device, calibration if quantizer.calibrates(p) else None)
    return model.to(device)


def resolve_calibration(precision: Precision, source: str, tokenizer: Any, model: Any,
                        calibration: CalibrationSpec | CalibrationSet | None) -> tuple[list[Any] | None, CalibrationSet | None]:
    """Token batches + the resolved set for a back-end that needs calibration (None, None otherwise)."""
    if not get_quantizer(precision).calibrates(precision):
        return None, None
    cal = calibration if isinstance(calibration, CalibrationSet) else load_calibration(calibration or CalibrationSpec(), source)
    ctx = int(getattr(model.config, "max_position_embeddings", 0) or getattr(model.config, "n_positions", 0) or 0)
    batches = token_batches(tokenizer, cal.texts, **({"max_tokens": min(ctx, 512)} if ctx else {}))
    if not batches:
        raise ModelLoadError(f"calibration {cal.spec.source}: none of its {len(cal.texts)} texts has any token")
    return batches, cal


def _check_fits(resolved: str, precision: Precision, device: str, trust_remote_code: bool) -> None:
    """Refuse up front (one line, with the estimate) a load that would not fit the device (`models.fit`)."""
    from quantrisk.models.fit import check_fits, device_memory

    if device_memory(device)[0] is None:
        return
    from transformers import AutoConfig

    check_fits(AutoConfig.from_pretrained(resolved, trust_remote_code=trust_remote_code), precision, device)


def load_model(
    source: str | Path,
    precision: Precision | str = "fp32",
    device: str = "cpu",
    *,
    adapter: str | Path | None = None,
    for_training: bool = False,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    calibration: CalibrationSpec | CalibrationSet | None = None,
) -> LoadedModel:
    """Load `source` at `precision` on `device` (optionally with a LoRA `adapter`) and say what was done.
    `calibration` (used only by back-ends that need it): a spec resolved against the model directory, or a set
    already resolved (and checked against the evaluation data) by the caller; default: `CalibrationSpec()`."""
    device = resolve_device(device)
    p = require_available(precision, device)
    if for_training:
        require_lora_base(p)
    start = time.perf_counter()
    resolved = resolve_source(source, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code)
    adapter_path = check_adapter_dir(adapter, allow_pickle=allow_pickle) if adapter is not None else None
    quantizer = get_quantizer(p)
    _check_fits(resolved, p, device, trust_remote_code)
    tokenizer = load_tokenizer(resolved, trust_remote_code=trust_remote_code)
    cal = None
    if quantizer.at_load:
        model = _from_pretrained(resolved, quantizer.load_kwargs(p, device), allow_pickle=allow_pickle,
                                 trust_remote_code=trust_remote_code)
        check_loaded(str(source), model, tokenizer)
        if for_training:
            model = quantizer.prepare_for_training(model)
        if adapter_path:
            model = _apply_adapter(model, adapter_path, merge=False)
    else:
        import torch

        first_dtype = torch.float32 if adapter_path else quantizer.load_dtype(p, device)
        model = _from_pretrained(resolved, {"dtype": first_dtype}, allow_pickle=allow_pickle,
                                 trust_remote_code=trust_remote_code)
        check_loaded(str(source), model, tokenizer)
        if adapter_path:
            model = _apply_adapter(model, adapter_path, merge=True)
        batches, cal = resolve_calibration(p, resolved, tokenizer, model, calibration)
        model = quantize_model(model, p, device, calibration=batches)
    model.train(for_training)
    if not for_training:
        model.requires_grad_(False)

    memory = weight_memory(model)
    held_dtype = next((t.dtype for t in model.parameters() if t.is_floating_point()), None)
    record = LoadRecord(
        source=str(source),
        precision=p.name,
        backend=p.backend,
        library=quantizer.library or "torch",
        library_version=quantizer.library_version(),
        implementation=quantizer.implementation(p),
        device=device,
        compute_dtype=str(held_dtype).replace("torch.", "") if held_dtype is not None else "int8",
        weight_bytes=memory.bytes,
        fp16_bytes=memory.fp16_bytes,
        nominal_bytes=packed_bytes(model, p),
        n_params=memory.logical_params,
        load_seconds=round(time.perf_counter() - start, 4),
        model_type=str(getattr(getattr(model, "config", None), "model_type", "unknown")),
        adapter=adapter_path,
        allow_pickle=allow_pickle,
        trust_remote_code=trust_remote_code,
        activations=p.activations,
        calibration=cal.record() if cal is not None else None,
    )
    return LoadedModel(model=model, tokenizer=tokenizer, record=record)
