"""Issue 13: which formulation of GPT-NeoX's QKV split + partial rotary embedding is cheapest under torch.compile
on the GPU. Each variant is an exact rewrite of `GPTNeoXAttention.forward` for unpadded causal rows (tested on the
CPU against transformers' forward: `--check`); they differ only in memory order and in how the backward pass has
to stitch dq, dk, dv back into the fused QKV gradient.

  python benchmarks/gpu/neox_variants.py --check                 # CPU: every variant = transformers' logits/grads
  python benchmarks/gpu/neox_variants.py --micro --batch 128     # GPU: attention block fwd+bwd ms per variant
  python benchmarks/gpu/neox_variants.py --mfu VARIANT --batch 128 # GPU: base pretraining MFU with that variant
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

sys.path[:0] = ["src", "."]

from quantrisk.models import neox_attention  # noqa: E402

_SHIPPED = neox_attention._token_major_forward  # = table-qk since the H100 comparison (session 3)


def _sdpa_out(self: Any, q: Any, k: Any, v: Any, batch: int, seq: int) -> Any:
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         dropout_p=self.attention_dropout if self.training else 0.0,
                                         is_causal=True, scale=self.scaling)
    return self.dense(out.transpose(1, 2).reshape(batch, seq, -1)), None


def _tables(cos: Any, sin: Any, head: int) -> tuple[Any, Any]:
    """(batch, seq, head) multipliers: out = x * C + swap(x) * S reproduces rotate-half RoPE on the first R dims and
    passes the rest through (C = 1, S = 0 there)."""
    half, pad = cos.shape[-1] // 2, head - cos.shape[-1]
    c = F.pad(cos, (0, pad), value=1.0)
    s = F.pad(torch.cat([-sin[..., :half], sin[..., half:]], dim=-1), (0, pad), value=0.0)
    return c, s


def _swap(x: Any, rot: int) -> Any:
    half = rot // 2
    return torch.cat([x[..., half:rot], x[..., :half], x[..., rot:]], dim=-1)


def token_major(self: Any, hidden_states: Any, attention_mask: Any = None, layer_past: Any = None,
                position_embeddings: Any = None, **kw: Any) -> Any:
    """The first token-major formulation: transformers' `apply_rotary_pos_emb(..., unsqueeze_dim=2)` on the
    (batch, seq, heads, head) chunks of the projection."""
    from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

    batch, seq = hidden_states.shape[:2]
    qkv = self.query_key_value(hidden_states).view(batch, seq, -1, 3 * self.head_size)
    q, k, v = qkv.chunk(3, dim=-1)
    cos, sin = position_embeddings
    q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
    return _sdpa_out(self, q, k, v, batch, seq)


def token_major_vcontig(self: Any, hidden_states: Any, attention_mask: Any = None, layer_past: Any = None,
                        position_embeddings: Any = None, **kw: Any) -> Any:
    from transformers.models.gpt_neox.modeling_gpt_neox import apply_rotary_pos_emb

    batch, seq = hidden_states.shape[:2]
    qkv = self.query_key_value(hidden_states).view(batch, seq, -1, 3 * self.head_size)
    q, k, v = qkv.chunk(3, dim=-1)
    cos, sin = position_embeddings
    q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
    return _sdpa_out(self, q, k, v.contiguous(), batch, seq)


def table_qk(self: Any, hidden_states: Any, attention_mask: Any = None, layer_past: Any = None,
             position_embeddings: Any = None, **kw: Any) -> Any:
    """Query and key rotated together as one (batch, seq, heads, 2, head) view with x * c + swap(x) * s (shipped)."""
    return _SHIPPED(self, hidden_states, attention_mask, layer_past, position_embeddings, **kw)


def table_all(self: Any, hidden_states: Any, attention_mask: Any = None, layer_past: Any = None,
              position_embeddings: Any = None, **kw: Any) -> Any:
    batch, seq = hidden_states.shape[:2]
    qkv = self.query_key_value(hidden_states).view(batch, seq, -1, 3, self.head_size)
    cos, sin = position_embeddings
    c, s = _tables(cos, sin, self.head_size)
    slot = torch.tensor([1.0, 1.0, 0.0], dtype=s.dtype, device=s.device)  # v: C = 1, S = 0
    c3 = torch.where(slot[:, None] > 0, c[:, :, None, None], torch.ones_like(c)[:, :, None, None])
    s3 = s[:, :, None, None] * slot[:, None]
    out = (qkv * c3 + _swap(qkv, cos.shape[-1]) * s3).to(qkv.dtype)
    q, k, v = out.unbind(3)
    return _sdpa_out(self, q, k, v, batch, seq)


VARIANTS: dict[str, Callable[..., Any]] = {"token-major": token_major, "token-major-vcontig": token_major_vcontig,
                                           "table-qk": table_qk, "table-all": table_all}


def _install(variant: str) -> None:
    neox_attention._token_major_forward = VARIANTS[variant]


def check() -> None:
    from quantrisk.models.zoo import build_model

    for name in VARIANTS:
        _install(name)
        model = build_model("pythia", "tiny", 300, seed=0)
        ids = torch.randint(1, 300, (2, 48), generator=torch.Generator().manual_seed(0))
        ref = model(input_ids=ids, labels=ids)
        ref.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
        with neox_attention.token_major_attention(model):
            out = model(input_ids=ids, labels=ids)
            out.loss.backward()
        worst = max((p.grad - grads[n]).abs().max().item() for n, p in model.named_parameters())
        print(f"{name}: max |logit diff| {(out.logits - ref.logits).abs().max().item():.2e}, max |grad diff| {worst:.2e}")


def micro(batch: int, iters: int) -> dict[str, float]:
    from quantrisk.models.zoo import build_model

    model = build_model("pythia", "base", 16384, seed=0).cuda()
    attn = model.gpt_neox.layers[0].attention.train()
    rope = model.gpt_neox.rotary_emb
    seq = 1024
    x = torch.randn(batch, seq, 768, device="cuda", requires_grad=True)
    pos = torch.arange(seq, device="cuda")[None].expand(batch, -1)
    results = {}
    for name, fwd in VARIANTS.items():
        torch._dynamo.reset()

        def step(h: Any, fwd: Callable[..., Any] = fwd) -> Any:
            with torch.autocast("cuda", dtype=torch.bfloat16):
                cos, sin = rope(h, pos)
                out, _ = fwd(attn, h, None, None, (cos, sin))
            return out.float().square().mean()

        compiled = torch.compile(step)
        start = time.perf_counter()
        for _ in range(3):
            compiled(x).backward()
        torch.cuda.synchronize()
        warm = time.perf_counter() - start
        begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        begin.record()
        for _ in range(iters):
            compiled(x).backward()
        end.record()
        torch.cuda.synchronize()
        results[name] = begin.elapsed_time(end) / iters
        print(f"micro {name}: {results[name]:.3f} ms per fwd+bwd (batch {batch}x{seq}; compile+3 warm {warm:.1f} s)",
              flush=True)
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            compiled(x).backward()
            torch.cuda.synchronize()
        for evt in sorted(prof.key_averages(), key=lambda e: -e.self_device_time_total)[:8]:
            print(f"    {evt.self_device_time_total / 1e3:7.3f} ms  {evt.key[:110]}")
    return results


def mfu(variant: str, batch: int, steps: int) -> None:
    from benchmarks.pretraining import run

    _install(variant)
    rows = run(["base"], "cuda", steps, 10, batch, None, None, f"neox_variants.py --mfu {variant}",
               attention="packed-causal-token-major", loss="liger-fused")
    for row in rows:
        print(f"mfu {variant} batch {batch}: {row['metric']}: {row['median']:.4g}", flush=True)
    print(f"mfu {variant} batch {batch}: peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--check", action="store_true")
    p.add_argument("--micro", action="store_true")
    p.add_argument("--mfu", default=None, choices=list(VARIANTS))
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--steps", type=int, default=30)
    o = p.parse_args()
    if o.check:
        check()
    if o.micro:
        best = min(micro(o.batch, o.iters).items(), key=lambda kv: kv[1])
        print(f"best {best[0]} {best[1]:.3f} ms")
    if o.mfu:
        mfu(o.mfu, o.batch, o.steps)
