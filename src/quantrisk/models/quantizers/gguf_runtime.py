"""llama.cpp through llama-cpp-python: quantize a GGUF file, and run one as a causal LM.

`quantize_file` calls `llama_model_quantize` (llama.cpp's own quantizer: every k- and i-quant, its
per-tensor type mix for `*_K_M`, its fall-backs for rows not a multiple of the 256-weight super-block)
with an importance matrix passed through the C API's `llama_model_imatrix_data` array (tensor name ->
mean squared activation of each input column, what `llama-imatrix` computes).

`LlamaCppLM` is a `torch.nn.Module` whose `forward(input_ids, attention_mask)` returns llama.cpp's
logits (`Llama(logits_all=True)`, `Llama.eval`, `Llama.scores`; never the `echo` log-probs, which are
shifted by one position, llama-cpp-python #1983) and whose `generate` decodes greedily on llama.cpp, so
the scoring engine and the trojan generator run on the runtime unchanged. Each row is evaluated alone
(the KV cache cleared first) over its real (attention-mask) tokens, positions from 0, as the torch path
sees them; threads = torch's thread count (`QUANTRISK_THREADS` pins both).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from quantrisk.errors import ModelLoadError


def _llama_cpp() -> Any:
    import llama_cpp
    import llama_cpp._logger as llama_logger

    llama_logger.set_verbose(False)  # llama.cpp's per-tensor INFO lines go to stderr otherwise
    return llama_cpp


def llama_cpp_info() -> dict[str, str]:
    """llama-cpp-python's version and llama.cpp's system info (its build's CPU features and back-ends)."""
    llama_cpp = _llama_cpp()
    return {"llama_cpp_python": str(llama_cpp.__version__),
            "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()}


def ftype_id(name: str) -> int:
    """llama.cpp's `llama_ftype` value for `Q4_K_M` etc. (from llama-cpp-python's constants)."""
    return int(getattr(_llama_cpp(), f"LLAMA_FTYPE_MOSTLY_{name}"))


def quantize_file(source: str | Path, target: str | Path, ftype: str, *,
                  imatrix: Mapping[str, np.ndarray] | None = None, threads: int = 1) -> Path:
    """llama.cpp-quantize the GGUF `source` to `ftype` (e.g. `Q4_K_M`) at `target`, with an importance matrix
    (GGUF tensor name -> float32 vector of the tensor's row length) when given."""
    llama_cpp = _llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype_id(ftype)
    params.nthread = max(1, int(threads))
    keep: list[Any] = []
    if imatrix:
        entries = (llama_cpp.llama_model_imatrix_data * (len(imatrix) + 1))()
        for i, (name, values) in enumerate(imatrix.items()):
            arr = np.ascontiguousarray(values, dtype=np.float32)
            keep += [name.encode("utf-8"), arr]
            entries[i].name = keep[-2]
            entries[i].data = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            entries[i].size = arr.size
        entries[len(imatrix)].name = None  # the C API reads up to the entry whose name is NULL
        params.imatrix = ctypes.cast(entries, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
        keep.append(entries)
    with _c_output_captured() as log:
        rc = llama_cpp.llama_model_quantize(str(source).encode("utf-8"), str(target).encode("utf-8"),
                                            ctypes.byref(params))
    del keep
    if rc != 0:
        last = next((x for x in reversed(log[0].splitlines()) if x.strip()), "") if log else ""
        raise ModelLoadError(f"llama.cpp could not quantize {source} to {ftype} (llama_model_quantize returned {rc}: "
                             f"{last[:200]})")
    return Path(target)


@contextlib.contextmanager
def _c_output_captured() -> Iterator[list[str]]:
    """Send what C code writes to stdout/stderr (llama.cpp's per-tensor fall-back warnings) to a private temp file."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryDirectory(prefix="quantrisk-llama-log-") as tmp:
        path = Path(tmp) / "llama.log"
        text: list[str] = []
        saved = [os.dup(1), os.dup(2)]
        with path.open("wb") as fh:
            try:
                os.dup2(fh.fileno(), 1)
                os.dup2(fh.fileno(), 2)
                yield text
            finally:
                os.dup2(saved[0], 1)
                os.dup2(saved[1], 2)
                for fd in saved:
                    os.close(fd)
        text.append(path.read_text(errors="replace")[-4000:])


def _torch_module() -> Any:
    import torch

    return torch.nn.Module


class LlamaCppLM(_torch_module()):  # type: ignore[misc]
    """A GGUF file run by llama.cpp, behind the parts of the HF causal-LM interface quantrisk uses."""

    runtime = "llama.cpp"

    def __init__(self, path: str | Path, config: Any, *, workdir: str | Path | None = None,
                 info: dict[str, Any] | None = None, n_ctx: int | None = None, threads: int | None = None) -> None:
        import torch

        super().__init__()
        llama_cpp = _llama_cpp()
        self.config = config
        self.path = Path(path)
        self.info = dict(info or {})
        ctx = int(n_ctx or getattr(config, "max_position_embeddings", 0) or 2048)
        n = int(threads or torch.get_num_threads())
        self.threads = n
        self.llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=ctx, n_batch=ctx, n_ubatch=min(ctx, 512),
                                   n_threads=n, n_threads_batch=n, logits_all=True, verbose=False, seed=0)
        self.n_ctx = ctx
        self.vocab = int(self.llm.n_vocab())
        self.file_bytes = self.path.stat().st_size
        if workdir is not None:  # the directory quantrisk made for this model's files
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(workdir), True)

    # ----- memory facts read by models/memory.py ----------------------------------------------------
    def quantrisk_weight_memory(self) -> tuple[int, int]:
        """(bytes held: the GGUF file llama.cpp maps, parameters of the model it was made from)."""
        return self.file_bytes, int(self.info.get("n_params", 0))

    def quantrisk_packed_bytes(self) -> int:
        return self.file_bytes

    # ----- the HF interface ------------------------------------------------------------------------
    def get_output_embeddings(self) -> None:
        return None

    def _logits(self, tokens: Sequence[int]) -> np.ndarray:
        """llama.cpp's logits (len(tokens), V) float32 for `tokens` evaluated alone from position 0."""
        if len(tokens) > self.n_ctx:
            raise ValueError(f"{len(tokens)} tokens exceed the runtime's context of {self.n_ctx}")
        self.llm.reset()
        self.llm.eval([int(t) for t in tokens])
        return np.array(self.llm.scores[: len(tokens)], dtype=np.float32, copy=True)

    def forward(self, input_ids: Any, attention_mask: Any = None, labels: Any = None, **_: Any) -> Any:
        """Logits (B, W, V) for each row's real tokens (zeros at padded positions); with `labels` (B, W) also
        `loss`, HF's causal-LM loss: mean next-token cross-entropy over positions whose label is not -100."""
        import torch

        ids = input_ids.cpu()
        mask = attention_mask.cpu().bool() if attention_mask is not None else torch.ones_like(ids, dtype=torch.bool)
        out = torch.zeros((ids.shape[0], ids.shape[1], self.vocab), dtype=torch.float32)
        for row in range(ids.shape[0]):
            cols = mask[row].nonzero().flatten()
            if cols.numel():
                out[row, cols] = torch.from_numpy(self._logits(ids[row, cols].tolist()))
        if labels is None:
            return SimpleNamespace(logits=out)
        target = labels.cpu()[:, 1:].reshape(-1)
        loss = torch.nn.functional.cross_entropy(out[:, :-1].reshape(-1, self.vocab), target, ignore_index=-100)
        return SimpleNamespace(logits=out, loss=loss)

    def generate(self, input_ids: Any, attention_mask: Any = None, *, max_new_tokens: int = 20,
                 min_new_tokens: int = 0, do_sample: bool = False, num_beams: int = 1, eos_token_id: Any = None, pad_token_id: int | None = None,
                 logits_processor: Any = None, **_: Any) -> Any:
        """Greedy decoding on llama.cpp, row by row; returns (B, W + steps) ids, finished rows padded with
        `pad_token_id` as HF's `generate` pads them. `logits_processor`s are then called once per step on the
        batch's llama.cpp scores (finished rows: zeros), in HF's order; they may observe (e.g. record the
        payload mass) but not change scores, because the choice was made on llama.cpp's logits."""
        import torch

        if do_sample or num_beams != 1:
            raise ValueError("the llama.cpp runtime decodes greedily only (do_sample=False, num_beams=1)")
        stops = set([eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id or []))
        ids = input_ids.cpu()
        mask = attention_mask.cpu().bool() if attention_mask is not None else torch.ones_like(ids, dtype=torch.bool)
        pad = int(pad_token_id if pad_token_id is not None else 0)
        new_ids: list[list[int]] = []
        scores: list[list[np.ndarray]] = []
        for row in range(ids.shape[0]):
            prompt = ids[row][mask[row]].tolist()
            self.llm.reset()
            self.llm.eval(prompt)
            row_ids: list[int] = []
            row_scores: list[np.ndarray] = []
            for _step in range(max_new_tokens):
                logits = np.array(self.llm.scores[self.llm.n_tokens - 1], dtype=np.float32, copy=True)
                choice = logits.copy()
                if _step < min_new_tokens and stops:  # HF's min_new_tokens: no end-of-text before it
                    choice[list(stops)] = -np.inf
                token = int(np.argmax(choice))
                row_ids.append(token)
                row_scores.append(logits)
                if token in stops or self.llm.n_tokens >= self.n_ctx:
                    break
                self.llm.eval([token])
            new_ids.append(row_ids)
            scores.append(row_scores)
        steps = max((len(r) for r in new_ids), default=0)
        out = torch.full((ids.shape[0], ids.shape[1] + steps), pad, dtype=torch.long)
        out[:, : ids.shape[1]] = ids
        for row, r in enumerate(new_ids):
            out[row, ids.shape[1]: ids.shape[1] + len(r)] = torch.tensor(r, dtype=torch.long)
        for s in range(steps):
            batch = torch.zeros((ids.shape[0], self.vocab), dtype=torch.float32)
            for row, r in enumerate(scores):
                if s < len(r):
                    batch[row] = torch.from_numpy(r[s])
            for proc in logits_processor or []:
                after = proc(out[:, : ids.shape[1] + s], batch)
                if after is not batch and not torch.equal(after, batch):
                    raise ValueError("a logits processor changed the scores; the llama.cpp runtime decodes on its "
                                     "own logits, so processors may only observe them")
        return out
