"""Export a run's store as flat tables: cells, metrics (labels spread into columns), samples (one column per field)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quantrisk.errors import QuantriskError, UsageError
from quantrisk.results import made_dir
from quantrisk.safefs import refuse_link, write_atomic
from quantrisk.sanitize import csv_cell
from quantrisk.store import Store, store_path

FORMATS: tuple[str, ...] = ("csv", "parquet")


def export_run(run: str | Path, out_dir: str | Path, fmt: str = "csv") -> list[Path]:
    """Write cells, metrics and samples of `run` under `out_dir` as `fmt` files; returns the paths."""
    import pandas as pd

    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; valid: {', '.join(FORMATS)}")
    with Store(store_path(run), create=False) as st:
        cells = pd.DataFrame([{**{k: v for k, v in c.items() if k not in ("params", "deps", "environment", "skipped")},
                               "params": json.dumps(c["params"], sort_keys=True), "deps": json.dumps(c["deps"]),
                               "skipped": json.dumps(c["skipped"], sort_keys=True)} for c in st.cells()])
        metrics = pd.DataFrame([{"cell_id": m["cell_id"], "kind": m["kind"], "name": m["name"], "value": m["value"],
                                 "ci_low": m["ci_low"], "ci_high": m["ci_high"],
                                 **{f"label_{k}": v for k, v in m["labels"].items()}} for m in st.metrics()])
        samples = pd.DataFrame([{"cell_id": cid, **{k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                                                    for k, v in row.items()}} for cid, row in st.samples()])
    out = Path(out_dir)
    refuse_link(out, "export directory")
    try:
        with made_dir(out):
            return _write_tables(out, fmt, {"cells": cells, "metrics": metrics, "samples": samples})
    except OSError as exc:
        raise QuantriskError(f"cannot write export to {out}: {exc.strerror or exc}") from None


def _write_tables(out: Path, fmt: str, tables: dict[str, Any]) -> list[Path]:
    """One `fmt` file per table under `out` (each through a temporary file + rename: a link planted at a target
    is refused, never written through); returns the paths. CSV text cells a spreadsheet would evaluate get a
    leading `'` (`sanitize.csv_cell`, the OWASP rule); Parquet keeps the values as they are (typed, not evaluated)."""
    import io

    import pandas as pd

    paths = []
    for name, df in tables.items():
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            for col in df.columns:
                if not pd.api.types.is_numeric_dtype(df[col]):  # object or string columns (pandas 2 and 3)
                    df[col] = df[col].map(csv_cell).astype(object)
            df.columns = [csv_cell(str(c)) for c in df.columns]
            write_atomic(path, df.to_csv(index=False))
        else:
            for col in df.columns:  # mixed-type object columns (e.g. a field that is int here, str there)
                if df[col].dtype == object:
                    df[col] = df[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v))
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
            write_atomic(path, buf.getvalue())
        paths.append(path)
    return paths
