"""HF causal LM <-> GGUF file, with gguf-py (the `gguf` package from llama.cpp).

`write_gguf` writes an fp32 GGUF that llama.cpp loads and quantizes: the architecture's hyper-parameters,
the byte-level BPE tokenizer (llama.cpp's `gpt2` tokenizer model: token list, types, merges, the `gpt-2`
pre-tokenizer regex, bos/eos/pad ids; no BOS added), and every weight under its GGUF name
(`gguf.get_tensor_name_map`). The layout changes are llama.cpp's own (convert_hf_to_gguf.py): for llama,
q_proj/k_proj rows are permuted from HF's rotate-half RoPE layout to llama.cpp's interleaved one; for
gpt-neox the fused query_key_value rows go from [head, (q,k,v), d] to [q | k | v].
`load_gguf_weights` reads a (quantized) GGUF back, dequantizes every tensor with `gguf.quants.dequantize`
and undoes those layout changes, so the HF model holds exactly the weights llama.cpp computes with.

Architectures: HF `llama` and `mistral` (-> llama.cpp `llama`; any Llama-family checkpoint of that layout)
and `gpt_neox` (-> `gptneox`). Others raise `GgufError` naming the model type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from quantrisk.errors import ModelLoadError

ARCH_OF = {"llama": "llama", "mistral": "llama", "gpt_neox": "gptneox"}
SKIP_SUFFIXES = ("rotary_emb.inv_freq", "attention.bias", "attention.masked_bias")


class GgufError(ModelLoadError):
    """A model or file GGUF conversion cannot handle (one line, names the model type or tensor)."""


def gguf_arch(model_type: str) -> str:
    """llama.cpp architecture name for an HF `model_type`, or `GgufError`."""
    if model_type not in ARCH_OF:
        raise GgufError(f"GGUF conversion supports model types {', '.join(sorted(ARCH_OF))}, not {model_type!r}")
    return ARCH_OF[model_type]


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    return float(getattr(config, "rope_theta", None) or params.get("rope_theta", 10000.0))


def _head_dim(config: Any) -> int:
    return int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)


def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half rows -> llama.cpp interleaved rows (convert_hf_to_gguf's `LlamaModel.permute`)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of `permute_qk`."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def split_neox_qkv(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF gpt-neox fused rows [head, (q,k,v), d] -> [q | k | v] (llama.cpp's layout)."""
    rest = w.shape[1:]
    x = w.reshape(n_head, 3, w.shape[0] // n_head // 3, *rest)
    return np.concatenate([x[:, i].reshape(-1, *rest) for i in range(3)], axis=0)


def join_neox_qkv(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of `split_neox_qkv`."""
    rest = w.shape[1:]
    x = w.reshape(3, n_head, w.shape[0] // n_head // 3, *rest).swapaxes(0, 1)
    return x.reshape(w.shape)


def _gguf_layout(model_type: str, hf_name: str, w: np.ndarray, config: Any, *, to_gguf: bool) -> np.ndarray:
    """`w` (HF layout) in llama.cpp's layout (`to_gguf`), or back: Llama's q/k rows permuted for its rotary
    convention, GPT-NeoX's fused QKV split per head; every other tensor as it is."""
    if model_type in ("llama", "mistral"):
        qk = permute_qk if to_gguf else unpermute_qk
        if hf_name.endswith("self_attn.q_proj.weight"):
            return qk(w, config.num_attention_heads)
        if hf_name.endswith("self_attn.k_proj.weight"):
            return qk(w, getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    if model_type == "gpt_neox" and "attention.query_key_value." in hf_name:
        return (split_neox_qkv if to_gguf else join_neox_qkv)(w, config.num_attention_heads)
    return w


def tensor_names(model: Any) -> dict[str, str]:
    """HF state-dict name -> GGUF tensor name for every weight written (tied output heads are not written)."""
    import gguf

    config = model.config
    arch = gguf_arch(config.model_type)
    arch_enum = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch)
    name_map = gguf.get_tensor_name_map(arch_enum, config.num_hidden_layers)
    out: dict[str, str] = {}
    seen: set[int] = set()
    for name, t in model.state_dict(keep_vars=True).items():
        if name.endswith(SKIP_SUFFIXES):
            continue
        if t.data_ptr() in seen:  # tied output head: llama.cpp reuses token_embd
            continue
        seen.add(t.data_ptr())
        mapped = name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise GgufError(f"{config.model_type} tensor {name!r} has no GGUF name in gguf-py's map")
        out[name] = mapped
    return out


def _tokenizer_json(tokenizer: Any) -> dict[str, Any]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise GgufError("GGUF conversion needs a fast (tokenizers) tokenizer")
    data = json.loads(backend.to_str())
    if (data.get("model") or {}).get("type") != "BPE" or (data.get("pre_tokenizer") or {}).get("type") not in (
            "ByteLevel", "Sequence"):
        raise GgufError("GGUF conversion supports byte-level BPE tokenizers (llama.cpp's gpt2 model) only")
    return data


def write_tokenizer(writer: Any, tokenizer: Any, vocab_size: int) -> None:
    """Byte-level BPE -> llama.cpp's `gpt2` tokenizer model (as convert_hf_to_gguf's `_set_vocab_gpt2` writes it):
    ids beyond the tokenizer's vocabulary become `[PAD{i}]` tokens of type UNUSED."""
    import gguf

    data = _tokenizer_json(tokenizer)
    vocab: dict[str, int] = data["model"]["vocab"]
    added = {a["id"]: a for a in data.get("added_tokens", [])}
    reverse = {i: tok for tok, i in vocab.items()}
    reverse.update({i: a["content"] for i, a in added.items()})
    if max(reverse) >= vocab_size:
        raise GgufError(f"tokenizer has id {max(reverse)} but the model's vocabulary is {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(reverse[i])
            types.append(gguf.TokenType.CONTROL if i in added and added[i].get("special") else gguf.TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in data["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for setter, value in ((writer.add_bos_token_id, tokenizer.bos_token_id),
                          (writer.add_eos_token_id, tokenizer.eos_token_id),
                          (writer.add_pad_token_id, tokenizer.pad_token_id)):
        if value is not None:
            setter(int(value))
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)


def _write_hparams(writer: Any, config: Any) -> None:
    writer.add_context_length(int(config.max_position_embeddings))
    writer.add_embedding_length(int(config.hidden_size))
    writer.add_block_count(int(config.num_hidden_layers))
    writer.add_feed_forward_length(int(config.intermediate_size))
    writer.add_head_count(int(config.num_attention_heads))
    writer.add_rope_freq_base(_rope_theta(config))
    if config.model_type == "gpt_neox":
        params = getattr(config, "rope_parameters", None) or {}
        pct = getattr(config, "rotary_pct", None) or params.get("partial_rotary_factor", 1.0)
        writer.add_rope_dimension_count(int(pct * _head_dim(config)))
        writer.add_parallel_residual(bool(getattr(config, "use_parallel_residual", True)))
        writer.add_layer_norm_eps(float(config.layer_norm_eps))
    else:
        writer.add_head_count_kv(int(getattr(config, "num_key_value_heads", None) or config.num_attention_heads))
        writer.add_rope_dimension_count(_head_dim(config))
        writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
        writer.add_vocab_size(int(config.vocab_size))


def write_gguf(model: Any, tokenizer: Any, path: str | Path) -> Path:
    """Write `model` (an HF llama / mistral / gpt-neox causal LM) and its tokenizer as an fp32 GGUF at `path`."""
    import gguf
    import torch

    config = model.config
    arch = gguf_arch(config.model_type)
    names = tensor_names(model)
    state = model.state_dict()
    path = Path(path)
    writer = gguf.GGUFWriter(str(path), arch)
    try:
        writer.add_name("quantrisk-export")
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        _write_hparams(writer, config)
        write_tokenizer(writer, tokenizer, int(config.vocab_size))
        for hf_name, gguf_name in names.items():
            w = state[hf_name].detach().to(torch.float32).cpu().numpy()
            writer.add_tensor(gguf_name, np.ascontiguousarray(
                _gguf_layout(config.model_type, hf_name, w, config, to_gguf=True)))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    return path


def read_tensor_types(path: str | Path) -> dict[str, str]:
    """GGUF tensor name -> ggml type name (e.g. `Q4_K`), read from the file's header."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    return {t.name: t.tensor_type.name for t in reader.tensors}


def load_gguf_weights(model: Any, path: str | Path) -> Any:
    """Dequantize every tensor of the GGUF at `path` (gguf-py) into `model` (the HF model it was written from)."""
    import gguf
    import torch

    config = model.config
    names = tensor_names(model)
    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}
    state = model.state_dict()
    with torch.no_grad():
        for hf_name, gguf_name in names.items():
            t = tensors.get(gguf_name)
            if t is None:
                raise GgufError(f"{path}: tensor {gguf_name!r} missing")
            w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            w = _gguf_layout(config.model_type, hf_name, w.reshape(tuple(state[hf_name].shape)), config,
                             to_gguf=False)
            state[hf_name].copy_(torch.from_numpy(np.ascontiguousarray(w)))
    return model
