"""Packed size a real format would need (models.memory.packed_bytes): known answers on a hand-built module."""

import torch

from quantrisk.models.memory import packed_bytes, weight_memory
from quantrisk.precision import parse_precision


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(128, 64, bias=False))


def test_packed_bytes_known_answers():
    net = _net()
    # embedding 40 params at fp16 = 80 B; Linear 8192 weights at 4 bits = 4096 B + 8192/64 groups x 2 B = 256 B
    assert packed_bytes(net, parse_precision("rtn-w4g64")) == 80 + 4096 + 256
    # 2 bits, groups of 128: 2048 B + 64 x 2 B
    assert packed_bytes(net, parse_precision("rtn-w2g128")) == 80 + 2048 + 128
    # dtype precisions: every parameter at its width
    assert packed_bytes(net, parse_precision("fp16")) == 2 * (40 + 8192)
    assert packed_bytes(net, parse_precision("fp32")) == 4 * (40 + 8192)
    assert weight_memory(net).bytes == 4 * (40 + 8192)  # held: fp32, whatever the packed size


def test_packed_bytes_of_really_quantized_models_count_logical_weights():
    from quantrisk.models.load import quantize_model

    # int8 with no group: one fp16 scale per output row (64 rows); the torch dynamic Linear has no Parameters
    net = quantize_model(_net(), parse_precision("int8-dynamic"), "cpu")
    assert packed_bytes(net, parse_precision("int8-dynamic")) == 80 + 8192 + 2 * 64
    # quanto int4 (groups of 128): the same packed size as rtn-w4g128, though quanto holds its own layout
    q4 = quantize_model(_net(), parse_precision("quanto-int4"), "cpu")
    assert packed_bytes(q4, parse_precision("quanto-int4")) == 80 + 4096 + 2 * 64


def test_packed_bytes_asks_the_back_end_how_many_scales_it_keeps(monkeypatch):
    """A back-end with one scale per tensor (not per group or row) says so in `Quantizer.scale_count`, and the
    packed size follows: 8192 weights at 4 bits + 1 fp16 scale, not + 128."""
    import quantrisk.models.memory as memory
    from quantrisk.models.quantizers import QUANTIZERS

    class PerTensor(QUANTIZERS["rtn"]):
        @classmethod
        def scale_count(cls, numel, rows, precision):  # noqa: ANN001, ANN206
            return 1

    monkeypatch.setattr(memory, "QUANTIZERS", {**QUANTIZERS, "rtn": PerTensor})
    assert packed_bytes(_net(), parse_precision("rtn-w4g64")) == 80 + 4096 + 2
    monkeypatch.setattr(memory, "QUANTIZERS", QUANTIZERS)
    assert packed_bytes(_net(), parse_precision("rtn-w4g64")) == 80 + 4096 + 256
