"""Scaling of MI scoring: engine seconds vs the number of samples (1k → 2k → 4k) and the model size.

Samples are seeded random token sequences with lengths uniform in [length/4, length] (as in the
scoring benchmark), scored by `score_token_ids` with its defaults; models are the zoo's Pythia
shapes (`tiny`, `small`; random init: the time does not depend on the weights' values). Rows:
seconds (median of the repeats), tokens/s, and seconds per 1k samples, for each (shape, n).
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness import machine, time_it, versions
from benchmarks.scoring import SHAPES, build, sequences
from quantrisk.scoring import score_token_ids


def run(shapes: list[str], ns: list[int], length: int, device: str, dtype: str, repeats: int,
        command: str) -> list[dict[str, Any]]:
    rows = []
    for shape in shapes:
        model = build(shape, device, dtype)
        params = sum(p.numel() for p in model.parameters())
        for n in ns:
            seqs = sequences(n, min(length, SHAPES[shape][5]), SHAPES[shape][4], seed=1)
            tokens = sum(len(s) - 1 for s in seqs)
            t = time_it(lambda seqs=seqs, model=model: score_token_ids(model, seqs), repeats=repeats, warmup=1, device=device)
            common = {"benchmark": "scaling", "case": f"{shape} ({params / 1e6:.1f}M params) {dtype} n={n} "
                      f"len≤{min(length, SHAPES[shape][5])} ({tokens} tokens)", "machine": machine(device),
                      "versions": versions(), "command": command}
            rows.append({**common, "metric": "seconds", "median": t.median, "low": t.low, "high": t.high,
                         "repeats": repeats})
            rows.append({**common, "metric": "tokens/s", "median": tokens / t.median})
            rows.append({**common, "metric": "seconds per 1k samples", "median": t.median * 1000 / n})
    return rows
