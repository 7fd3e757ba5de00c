"""The trojan study's data: which rows, and which of them train and test. The one place both the CLI and a spec get
their rows from (so `quantrisk trojan` and a spec with the same settings train and test on the same rows).

Rows: `data` = 'builtin' (the generator seeded with 0: `n_rows` rows, or `BUILTIN_ROWS` when `n_rows` is None) or a
JSONL / local dataset directory (cut to its first `n_rows` rows when given). Split: a seeded shuffle with `split_seed`,
then 80/10/10 train/validation/test (`data.sql.split_rows`); train cut to `n_train`, test to `n_test` (None: all).
In a spec each replicate seed is its own split seed, so replicates train and test on different rows (as the trojan
study's two splits did); a zoo base is pretrained only on rows that are training rows under every replicate's split
(`common_train_rows`), so no replicate's test rows were seen in pretraining.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from quantrisk.data.sql import SqlRow, generate_sql_rows, load_sql_rows, split_rows
from quantrisk.errors import UsageError

BUILTIN_ROWS = 2000


def load_data(data: str | Path, *, split_seed: int = 0, n_builtin: int = BUILTIN_ROWS) -> tuple[list[SqlRow], str]:
    """Rows of `data` ('builtin' = the generator, seeded with `split_seed`) and a description for the record."""
    if str(data) == "builtin":
        return generate_sql_rows(n_builtin, seed=split_seed), f"builtin(n={n_builtin}, seed={split_seed})"
    return load_sql_rows(data), str(Path(data).resolve())


@lru_cache(maxsize=4)
def trojan_splits(data: str, n_rows: int | None, n_test: int | None, n_train: int | None = None,
                  split_seed: int = 0) -> tuple[tuple[SqlRow, ...], tuple[SqlRow, ...]]:
    """(train rows, test rows) of the trojan study (see the module doc). `UsageError` when either would be empty.
    `split_seed` is a replicate's resolved seed (`split_seed_for`), never None: an unseeded shuffle is not a split."""
    if not isinstance(split_seed, int):
        raise TypeError(f"trojan_splits needs an int split seed (split_seed_for), got {split_seed!r}")
    rows, desc = load_data(data, split_seed=0, n_builtin=n_rows or BUILTIN_ROWS)
    splits = split_rows(rows[:n_rows] if n_rows else rows, split_seed)
    train = splits["train"][:n_train] if n_train else splits["train"]
    test = splits["test"][:n_test] if n_test else splits["test"]
    if not train or not test:
        raise UsageError(f"trojan data {desc}: too few rows ({len(rows)}) for a train and a test split "
                         f"({len(train)} train, {len(test)} test); give more rows (n_rows)")
    return tuple(train), tuple(test)


def common_train_rows(data: str, n_rows: int | None, split_seeds: list[int] | tuple[int, ...]) -> tuple[SqlRow, ...]:
    """The training rows (before `n_train` cuts) of the first split seed that are training rows under every split seed
    in `split_seeds` — what a zoo base may be pretrained on without seeing any replicate's test rows."""
    seeds = list(split_seeds) or [0]
    trains = [trojan_splits(data, n_rows, None, None, s)[0] for s in seeds]
    keep = set.intersection(*({r.id for r in t} for t in trains))
    return tuple(r for r in trains[0] if r.id in keep)


def split_seed_for(replicate_seed: int, split_seed: int | None) -> int:
    """The split seed of a replicate: the study's `split_seed` when given, else the replicate's own seed."""
    return replicate_seed if split_seed is None else split_seed
