"""Precision strings: parsing, errors, availability."""

from __future__ import annotations

import pytest

from quantrisk.errors import PrecisionError
from quantrisk.precision import (
    availability,
    known_precisions,
    parse_precision,
    parse_precisions,
    require_available,
)


@pytest.mark.parametrize(
    ("text", "backend", "bits", "group"),
    [
        ("fp32", "dtype", 32, None),
        (" BF16 ", "dtype", 16, None),
        ("int8-dynamic", "torch_dynamic", 8, None),
        ("bnb-nf4", "bnb", 4, 64),
        ("quanto-int2", "quanto", 2, 128),
        ("rtn-w3g128", "rtn", 3, 128),
        ("rtn-w2g16", "rtn", 2, 16),
        ("rtn-w8g256", "rtn", 8, 256),
        ("torchao-int8wo", "torchao", 8, None),
        ("torchao-int4wo-g64", "torchao", 4, 64),
        ("w8a8-static", "static", 8, None),
        ("hqq-w1g8", "hqq", 1, 8),
        ("hqq-w6g1024", "hqq", 6, 1024),
    ],
)
def test_parse_known(text, backend, bits, group):
    p = parse_precision(text)
    assert (p.backend, p.bits, p.group_size) == (backend, bits, group)
    assert parse_precision(str(p)) == p


@pytest.mark.parametrize("text", ["int3", "", "rtn-w1g64", "rtn-w9g64", "rtn-w4g8", "rtn-w4g512", "rtn-4bit", "fp64"])
def test_parse_rejects_with_valid_list(text):
    with pytest.raises(PrecisionError) as exc:
        parse_precision(text)
    assert "rtn-w" in str(exc.value)


def test_parse_list_keeps_order_and_rejects_duplicates():
    assert [p.name for p in parse_precisions("fp32, rtn-w4g128,int8-dynamic")] == ["fp32", "rtn-w4g128", "int8-dynamic"]
    with pytest.raises(PrecisionError, match="twice"):
        parse_precisions("fp32,FP32")


def test_availability_on_cpu():
    assert availability("fp32", "cpu")[0]
    assert availability("int8-dynamic", "cpu")[0]
    assert availability("quanto-int4", "cpu")[0]
    ok, why = availability("bnb-nf4", "cpu")
    assert not ok and "cuda" in why
    ok, why = availability("int8-dynamic", "cuda")
    assert not ok and "cpu" in why
    with pytest.raises(PrecisionError, match="not available on cpu"):
        require_available("bnb-int8", "cpu")
    with pytest.raises(PrecisionError, match="unknown device"):
        availability("fp32", "tpu")


def test_known_precisions_cover_every_backend():
    from quantrisk.models.quantizers import QUANTIZERS

    assert {p.backend for p in known_precisions()} == set(QUANTIZERS)
    assert {"dtype", "torch_dynamic", "bnb", "quanto", "rtn", "torchao", "static", "hqq"} <= set(QUANTIZERS)
    assert not parse_precision("int8-dynamic").trainable


@pytest.mark.parametrize(("text", "words"), [("hqq-w7g64", "HQQ bits must be one of"), ("hqq-w4g12", "multiple of 8"),
                                             ("hqq-w4g2048", "multiple of 8"), ("torchao-int4wo-g100", "group must be one of")])
def test_backend_parameters_out_of_range_say_the_range(text, words):
    with pytest.raises(PrecisionError, match=words):
        parse_precision(text)
