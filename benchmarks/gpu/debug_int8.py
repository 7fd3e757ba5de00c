"""Where do the bnb-int8 code mismatches of a repaired model come from? For the first layers that differ,
compares per element: the injected and repaired weights (fp32 and fp16), the box quantrisk computed, bnb's codes
of both and quantrisk's own code (round(w16 / (absmax/127))). Usage: debug_int8.py QATTACK_OUT_DIR."""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from quantrisk.models.load import load_model
from quantrisk.precision import parse_precision
from quantrisk.qattack.intervals import layer_interval

out = Path(sys.argv[1])
p = parse_precision("bnb-int8")
inj = load_file(str(out / "injected" / "model.safetensors"))
rep = load_file(str(out / "repaired" / "model.safetensors"))
qi = load_model(out / "injected", "bnb-int8", "cuda").model
qr = load_model(out / "repaired", "bnb-int8", "cuda").model
report = []
for name, m in qi.named_modules():
    w = getattr(m, "weight", None)
    if w is None or getattr(w, "SCB", None) is None:
        continue
    mr = qr.get_submodule(name)
    ci, cr = w.data.cpu(), mr.weight.data.cpu()
    si, sr = w.SCB.cpu(), mr.weight.SCB.cpu()
    bad = (ci != cr).nonzero()
    if len(bad) == 0 and torch.equal(si, sr):
        continue
    wi, wr = inj[name + ".weight"].float(), rep[name + ".weight"].float()
    box = layer_interval(wi, [p], 0.1)
    rows = []
    for r, c in bad[:6].tolist():
        a16 = wi[r].half().float().abs().max()
        rows.append({"row": r, "col": c, "w_inj": wi[r, c].item(), "w_inj16": wi[r, c].half().item(),
                     "w_rep": wr[r, c].item(), "w_rep16": wr[r, c].half().item(), "lo": box.lo[r, c].item(),
                     "hi": box.hi[r, c].item(), "code_inj": int(ci[r, c]), "code_rep": int(cr[r, c]),
                     "ours_inj": round(float(wi[r, c].half().float() / (a16 / 127)), 4),
                     "ours_rep": round(float(wr[r, c].half().float() / (wr[r].half().float().abs().max() / 127)), 4),
                     "scb_inj": float(si[r]), "scb_rep": float(sr[r]), "absmax16_inj": float(a16),
                     "absmax16_rep": float(wr[r].half().float().abs().max())})
    report.append({"layer": name, "codes_differing": len(bad), "scales_differing": int((si != sr).sum()),
                   "examples": rows})
    if len(report) >= 4:
        break
print(json.dumps(report, indent=1))
