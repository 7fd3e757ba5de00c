"""Where do the bnb-int8 code mismatches of a repaired model come from? Over every Linear8bitLt of the injected
and repaired models (re-quantized by bitsandbytes on CUDA): the codes that differ, how far the injected weight's
w16 * 127 / absmax lies from a half-way point (exact, float64: 0 = an exact tie that fp32 arithmetic may round
either way), whether quantrisk's own code of the injected weight (`constraints.encode`) agreed with bnb's, whether
the repaired weight is inside its box (`layer_interval` at the run's margin), and the first examples.
Usage: debug_int8.py QATTACK_OUT_DIR [MARGIN]. Prints one JSON object."""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from quantrisk.models.load import load_model
from quantrisk.qattack.constraints import encode
from quantrisk.qattack.intervals import layer_interval

out = Path(sys.argv[1])
margin = float(sys.argv[2]) if len(sys.argv) > 2 else 0.1
inj = load_file(str(out / "injected" / "model.safetensors"))
rep = load_file(str(out / "repaired" / "model.safetensors"))
qi = load_model(out / "injected", "bnb-int8", "cuda").model
qr = load_model(out / "repaired", "bnb-int8", "cuda").model
tot = {"layers": 0, "layers_differing": 0, "elements": 0, "codes_differing": 0, "scales_differing": 0,
       "mismatch_exact_tie": 0, "mismatch_within_2^-12": 0, "mismatch_ours_inj_disagreed_with_bnb": 0,
       "mismatch_rep_outside_box": 0, "all_exact_ties": 0, "all_ours_disagree_with_bnb_inj": 0,
       "all_ours_disagree_at_non_ties": 0, "max_dist_mismatch": 0.0}
examples = []
for name, m in qi.named_modules():
    w = getattr(m, "weight", None)
    if w is None or getattr(w, "SCB", None) is None:
        continue
    mr = qr.get_submodule(name)
    ci, cr = w.data.cpu(), mr.weight.data.cpu()
    si, sr = w.SCB.cpu(), mr.weight.SCB.cpu()
    wi, wr = inj[name + ".weight"].float(), rep[name + ".weight"].float()
    wi16, wr16 = wi.half().float(), wr.half().float()
    a = wi16.abs().amax(1, keepdim=True)
    x = wi16.double() * 127 / a.double()
    dist = (x - torch.floor(x) - 0.5).abs()
    ours = encode(wi, "bnb-int8").state["codes"]
    bad = ci != cr
    tot["layers"] += 1
    tot["elements"] += ci.numel()
    tot["layers_differing"] += int(bool(bad.any()) or not torch.equal(si, sr))
    tot["codes_differing"] += int(bad.sum())
    tot["scales_differing"] += int((si != sr).sum())
    tot["all_exact_ties"] += int((dist == 0).sum())
    tot["all_ours_disagree_with_bnb_inj"] += int((ours != ci).sum())
    tot["all_ours_disagree_at_non_ties"] += int(((ours != ci) & (dist != 0)).sum())
    if not bad.any():
        continue
    box = layer_interval(wi, ["bnb-int8"], margin)
    outside = (wr16 < box.lo) | (wr16 > box.hi)
    tot["mismatch_exact_tie"] += int((bad & (dist == 0)).sum())
    tot["mismatch_within_2^-12"] += int((bad & (dist <= 2.0 ** -12)).sum())
    tot["mismatch_ours_inj_disagreed_with_bnb"] += int((bad & (ours != ci)).sum())
    tot["mismatch_rep_outside_box"] += int((bad & outside).sum())
    tot["max_dist_mismatch"] = max(tot["max_dist_mismatch"], float(dist[bad].max()))
    for r, c in bad.nonzero()[:2].tolist():
        if len(examples) >= 12:
            break
        examples.append({"layer": name, "row": r, "col": c, "w_inj16": wi16[r, c].item(), "w_rep16": wr16[r, c].item(),
                         "lo": box.lo[r, c].item(), "hi": box.hi[r, c].item(), "absmax16": float(a[r]),
                         "x_inj_exact": float(x[r, c]), "code_inj": int(ci[r, c]), "code_rep": int(cr[r, c]),
                         "ours_inj": int(ours[r, c]), "scb_inj": float(si[r]), "scb_rep": float(sr[r])})
print(json.dumps({"margin": margin, **tot, "examples": examples}, indent=1))
