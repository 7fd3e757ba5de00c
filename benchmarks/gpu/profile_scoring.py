"""Kernel profile of the compiled scoring engine on CUDA: the top kernels by GPU time (torch.profiler).

`python benchmarks/gpu/profile_scoring.py --shape pythia-160m --n 256` (after `. benchmarks/gpu/setup.sh`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.scoring import build, sequences  # noqa: E402

from quantrisk.scoring import score_token_ids  # noqa: E402


def main() -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="pythia-160m")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--eager", action="store_true")
    o = ap.parse_args()
    model = build(o.shape, "cuda", "bfloat16")
    seqs = sequences(o.n, o.length, 50304)
    run = lambda: score_token_ids(model, seqs, compile=not o.eager)  # noqa: E731
    run()
    run()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        run()
        torch.cuda.synchronize()
    table = prof.key_averages()
    try:
        print(table.table(sort_by="self_device_time_total", row_limit=25, max_name_column_width=70))
    except (AttributeError, KeyError, ValueError):  # older torch names it after CUDA
        print(table.table(sort_by="self_cuda_time_total", row_limit=25, max_name_column_width=70))


if __name__ == "__main__":
    main()
