"""Wall and CPU seconds of a fixed tiny pretraining workload under the thread settings of the environment.

`OMP_NUM_THREADS=2 [OMP_WAIT_POLICY=PASSIVE] python benchmarks/shared_threads.py`: pythia-tiny (vocabulary
4096), 6 packed steps of 16 x 512 random tokens through `train_packed` (first step untimed by the loop, all
timed here). Run it interleaved with each setting while other processes load the cores to see what spinning
OpenMP threads cost on a shared machine (README, "CPU threads"; BENCHMARKS.md). Prints one line.
"""

from __future__ import annotations

import os
import resource
import time


def main() -> None:
    import torch

    from quantrisk.models.trainloop import train_packed
    from quantrisk.models.zoo import build_model

    model = build_model("pythia", "tiny", 4096, seed=0)
    tokens = torch.randint(1, 4096, (6, 16, 512), dtype=torch.int32, generator=torch.Generator().manual_seed(0))
    t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    train_packed(model, tokens, lr=1e-3, warmup=1, warm_steps=1)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    print(f"threads={torch.get_num_threads()} wait={os.environ.get('OMP_WAIT_POLICY', 'default')} "
          f"wall={time.perf_counter() - t0:.1f}s cpu={cpu:.1f}s load1={os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
