"""Gradient norms of the loss under the target model (`grad_norm`, for the gradient-norm attack)."""

from __future__ import annotations

from typing import Any

from quantrisk.privacy.inputs import InputContext, InputUnavailable, register_provider

# module name prefixes of quantized layers whose weights are not differentiable tensors
QUANTIZED_MODULES: tuple[str, ...] = ("torch.ao.nn.quantized", "torch.nn.quantized", "optimum.quanto", "bitsandbytes")


def autograd_blocker(model: Any) -> str | None:
    """Why the model's weights have no gradient (a quantized layer class, named), or None when every weight is a
    floating-point tensor autograd can differentiate (full precision, simulated RTN)."""
    for m in model.modules():
        mod = type(m).__module__
        if mod.startswith(QUANTIZED_MODULES):
            return f"weights stored quantized ({mod}.{type(m).__name__}): no gradient w.r.t. them"
    if not any(p.is_floating_point() for p in model.parameters()):
        return "no floating-point parameters"
    return None


@register_provider("grad_norm")
def loss_gradient_norms(ctx: InputContext) -> list[Any]:
    """‖∇_θ L(x)‖₂ per sample: L = mean token NLL of the sample (positions 2..n, truncated at the model's context),
    θ = every floating-point parameter, one backward pass per sample. Raises `InputUnavailable` for back-ends whose
    weights autograd cannot differentiate (see `autograd_blocker`)."""
    import torch

    from quantrisk.scoring import model_context, model_device

    why = autograd_blocker(ctx.model)
    if why is not None:
        raise InputUnavailable(why)
    model, device = ctx.model, model_device(ctx.model)
    params = [p for p in model.parameters() if p.is_floating_point()]
    flags = [p.requires_grad for p in params]
    limit = model_context(model)
    out: list[Any] = []
    try:
        for p in params:
            p.requires_grad_(True)
        for ids in ctx.ids:
            x = torch.tensor([list(ids)[:limit]], device=device)
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                logits = model(input_ids=x).logits[0, :-1].float()
                loss = torch.nn.functional.cross_entropy(logits, x[0, 1:])
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            out.append(float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None))))
    finally:
        for p, f in zip(params, flags, strict=True):
            p.requires_grad_(f)
    return out
