"""A quantization back-end is one file: what other modules need of it is asked of its `Quantizer`, and every
precision string the documentation and examples use belongs to exactly one back-end."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from quantrisk.models.quantizers import QUANTIZERS
from quantrisk.precision import known_precisions, parse_precision

ROOT = Path(__file__).resolve().parents[1]
OPTION = re.compile(r"(?:--precisions?|-p|--dap1|--dap2) ([a-z0-9][a-z0-9_,.-]*)")


def _spec_precisions(node: object) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("precisions", "precision", "dap1", "dap2"):
                out += [str(v) for v in (value if isinstance(value, list) else [value])]
            else:
                out += _spec_precisions(value)
    elif isinstance(node, list):
        for value in node:
            out += _spec_precisions(value)
    return out


def documented_precisions() -> set[str]:
    """Every precision string in README.md, docs/*.md, examples/*.yaml, the packaged specs, `quantrisk precisions`."""
    names = {p.name for p in known_precisions()}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for m in OPTION.finditer(path.read_text(encoding="utf-8")):
            names.update(n for n in m.group(1).split(",") if n and not n.startswith("."))
    for path in [*sorted((ROOT / "examples").glob("*.yaml")), *sorted((ROOT / "src/quantrisk/specs").glob("*.yaml"))]:
        names.update(_spec_precisions(yaml.safe_load(path.read_text(encoding="utf-8"))))
    return names


def owners(name: str) -> list[str]:
    out = []
    for key, q in QUANTIZERS.items():
        try:
            if q.parse(name.lower()) is not None:
                out.append(key)
        except Exception:  # noqa: BLE001 - a back-end that raises on the name also claims it
            out.append(key)
    return out


def test_every_documented_precision_string_belongs_to_exactly_one_back_end():
    names = documented_precisions()
    assert {"fp32", "int8-dynamic", "rtn-w2g64", "bnb-nf4", "w8a8-static", "gptq-w4g128"} <= names  # the census ran
    bad = {n: owners(n) for n in sorted(names) if len(owners(n)) != 1}
    assert not bad, bad
    for n in names:
        assert parse_precision(n).backend == owners(n)[0]


def test_dispatch_is_exact_a_string_two_back_ends_claim_is_refused(monkeypatch):
    import quantrisk.models.quantizers as qs

    class Greedy(QUANTIZERS["rtn"]):  # claims every rtn string too
        backend = "greedy"

    both = dict(QUANTIZERS) | {"greedy": Greedy}
    monkeypatch.setattr(qs, "QUANTIZERS", both)
    with pytest.raises(RuntimeError, match="claimed by several back-ends: rtn, greedy"):
        parse_precision("rtn-w4g64")
    assert parse_precision("fp32").backend == "dtype"


def test_plot_markers_come_from_the_back_ends_one_shape_each():
    from quantrisk.report.plots import BACKEND_MARKERS, marker_of

    assert BACKEND_MARKERS == {k: q.marker for k, q in QUANTIZERS.items()}
    assert len(set(BACKEND_MARKERS.values())) == len(BACKEND_MARKERS), BACKEND_MARKERS  # no two share a shape
    assert len(set(BACKEND_MARKERS.values())) == len(QUANTIZERS)  # hqq, gptq, static no longer fall back to "X"
    assert marker_of("hqq-w4g64") == QUANTIZERS["hqq"].marker != "X"


def test_the_environment_records_every_back_end_library():
    from quantrisk.environment import BACKEND_PACKAGES, PACKAGES

    recorded = set(PACKAGES) | set(BACKEND_PACKAGES)
    for q in QUANTIZERS.values():
        assert {*([q.library] if q.library else []), *q.packages} <= recorded, q.backend
    assert "llmcompressor" in BACKEND_PACKAGES  # gptq's library, which the hand-written list left out
    assert not set(PACKAGES) & {q.library for q in QUANTIZERS.values()}  # named once, by the back-end


def test_memory_asks_the_back_ends_for_their_layouts():
    import torch

    from quantrisk.models.memory import packed_bytes, weight_memory

    class Packed(torch.nn.Module):  # a layer in a back-end's own layout: the weight is no Parameter
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("codes", torch.zeros(8, 4, dtype=torch.uint8), persistent=False)

    model = torch.nn.Sequential(Packed(), torch.nn.Linear(4, 4, bias=False))
    plain = weight_memory(model)

    class Layout(QUANTIZERS["rtn"]):
        backend = "layout"

        @classmethod
        def held_layout(cls, module):  # noqa: ANN001, ANN206
            return (32, 64, ()) if isinstance(module, Packed) else None

        @classmethod
        def packed_layout(cls, module):  # noqa: ANN001, ANN206
            return (None, 64, 8, 0) if isinstance(module, Packed) else None

    import quantrisk.models.memory as memory

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(memory, "QUANTIZERS", {"layout": Layout, "rtn": QUANTIZERS["rtn"]})
        held = weight_memory(model)
        packed = packed_bytes(model, parse_precision("rtn-w4g64"))
    assert (held.bytes, held.logical_params) == (plain.bytes + 32, plain.logical_params + 64)
    # 64 weights at 4 bits + one fp16 scale per 64 (the Packed layer) + 16 weights at 4 bits + one scale
    assert packed == 64 * 4 // 8 + 2 + 16 * 4 // 8 + 2
