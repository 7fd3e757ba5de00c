"""quantrisk.report.ladder_table: rows per size and precision, and the "larger quantized vs smaller full-precision" pairs
(larger >= 1.5x the parameters; NLL compared only between sizes that share a vocabulary)."""

from __future__ import annotations

import json
from pathlib import Path

from quantrisk.report import ladder_table


def _folder(tmp: Path, name: str, params: int, vocab: int, rows: dict[str, tuple[float, float]]) -> Path:
    d = tmp / name
    (d / "privacy_base").mkdir(parents=True)
    (d / "pretrain_base.json").write_text(json.dumps({"n_params": params, "settings": {"vocab_size": vocab}}))
    metrics = []
    for prec, (nll, auc) in rows.items():
        metrics += [{"name": "nonmember_nll", "value": nll, "labels": {"precision": prec, "seed": "0"}},
                    {"name": "weight_mb", "value": params * 2 / 1e6, "labels": {"precision": prec, "seed": "0"}},
                    {"name": "auc", "value": auc, "labels": {"precision": prec, "attack": "loss", "seed": "0"}},
                    {"name": "auc", "value": 0.9, "labels": {"precision": prec, "attack": "loss", "seed": "1"}}]
    (d / "privacy_base" / "metrics.json").write_text(json.dumps({"metrics": metrics}))
    return d


def test_pairs_need_1_5x_the_parameters_and_a_shared_tokenizer(tmp_path: Path) -> None:
    ladder = {
        "tiny": ladder_table.load(_folder(tmp_path, "tiny", 2_000_000, 4096, {"bf16": (3.0, 0.60)})),
        "base": ladder_table.load(_folder(tmp_path, "base", 100_000_000, 16384, {"bf16": (4.5, 0.57),
                                                                                 "rtn-w2g64": (4.8, 0.55)})),
        "big": ladder_table.load(_folder(tmp_path, "big", 120_000_000, 16384, {"bf16": (4.4, 0.56),
                                                                               "bnb-nf4": (4.6, 0.55)})),
    }
    assert ladder["base"]["rows"]["rtn-w2g64"] == {"nll": 4.8, "mb": 200.0, "loss": 0.55}  # seed 1 ignored
    text = ladder_table.table(ladder, "bf16")
    assert "| base @ rtn-w2g64 | tiny @ bf16 | – (different tokenizers) | -0.050 |" in text
    assert "big @ bnb-nf4 | tiny @ bf16" in text
    assert "big @ bnb-nf4 | base @ bf16" not in text  # 1.2x the parameters: not a pair
    assert "| base @ bf16 |" not in text and "| big @ bf16 |" not in text  # full precision on both sides: no pair
    assert "| base | 100.0M | rtn-w2g64 | 200.0 / nan | 4.800 | 0.550 |" in text
