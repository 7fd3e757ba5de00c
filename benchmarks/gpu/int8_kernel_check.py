"""Which arithmetic does bitsandbytes' CUDA LLM.int8() weight quantizer (`int8_vectorwise_quant`, kernel
kInt8VectorQuant: scale = __fdividef(127, absmax), code = __float2int_rn(w * scale)) agree with? On fp16 rows
(random, plus crafted rows whose absmax mantissa is a multiple of 127 so that exact half-way values exist, plus
w = absmax/2 ties) compares bnb's codes with: quantrisk's encoder (`constraints.encode`), round(w / (a/127)) in
fp32, round(w * (127/a)) in fp32 on CPU and on CUDA (bnb's reference 'default' backend), and exact half-to-even;
and whether the encoder's codes agree with bnb's wherever it does not freeze the element (ties are frozen).
Disagreements are split by the exact distance of w*127/a to the nearest half-way point. Prints one JSON object."""
import json

import bitsandbytes.functional as F
import torch

from quantrisk.qattack.constraints import encode

g = torch.Generator().manual_seed(0)
rows = [torch.randn(4096, 1024, generator=g) * 0.02]
crafted = []
for m in (1143, 1270, 1397, 1524, 1651, 1778, 1905, 2032):  # absmax mantissa divisible by 127
    for e in (-14, -12, -9):
        a = m * 2.0 ** e
        ks = torch.arange(-126, 126)
        r = torch.cat([torch.tensor([a]), (2 * ks + 1) * (m // 127) * 2.0 ** (e - 1)])
        crafted.append(torch.nn.functional.pad(r, (0, 1024 - r.numel())))
rows.append(torch.stack(crafted))
a = torch.rand(2048, generator=g) * 0.1 + 0.01
half_rows = torch.randn(2048, 1024, generator=g) * 0.01
half_rows[:, 0] = a
half_rows[:, 1] = a / 2  # w = absmax/2: 63.5 exactly when a/2 is an fp16 value
rows.append(half_rows)
W = torch.cat(rows).half()
Wf = W.float()
absmax = Wf.abs().amax(1, keepdim=True)
cb, scb, _ = F.int8_vectorwise_quant(W.cuda())
cb = cb.cpu().float()
x_exact = Wf.double() * 127 / absmax.double()
dist = (x_exact - torch.floor(x_exact) - 0.5).abs()  # distance to the nearest half-way point, code units
enc = encode(Wf, "bnb-int8")
cands = {
    "quantrisk_encode": enc.state["codes"].float(),
    "div_by_scale_fp32": torch.round(Wf / (absmax / 127)),
    "mul_by_recip_fp32_cpu": torch.round(Wf * (127 / absmax)),
    "mul_by_recip_fp32_cuda": torch.round(Wf.cuda() * (127 / absmax.cuda())).cpu(),
    "exact_half_even": torch.round(x_exact).float(),
}
out = {"elements": W.numel(), "exact_ties": int((dist == 0).sum()), "scb_equals_fp16_absmax":
       bool(torch.equal(scb.cpu(), absmax.reshape(-1)))}
for name, c in cands.items():
    d = c != cb
    out[name] = {"disagree": int(d.sum()), "at_exact_ties": int((d & (dist == 0)).sum()),
                 "max_dist_to_half_among_disagreements": float(dist[d].max()) if d.any() else None}
out["quantrisk_encode_disagree_unfrozen"] = int(((enc.state["codes"].float() != cb) & ~enc.frozen).sum())
out["quantrisk_encode_share_frozen"] = float(enc.frozen.float().mean())
for tol in (2.0 ** -12, 1e-3):
    near = dist <= tol
    out[f"share_within_{tol:.2e}_of_half"] = float(near.float().mean())
    out[f"bnb_vs_recip_cpu_disagree_outside_{tol:.2e}"] = int(((cands["mul_by_recip_fp32_cpu"] != cb) & ~near).sum())
print(json.dumps(out, indent=1))
