"""`qattack.acceptance.judge`: known answers at and around each level, every failed condition named."""

from __future__ import annotations

import pytest

from quantrisk.qattack.acceptance import FP_ASR_MAX, TARGET_ASR_MIN, judge


def _case(inj: float | None = 1.0, fp: float | None = 0.0, q: float | None = 1.0, same: bool = True):
    return judge({"fp32": {"asr": 1.0}, "rtn-w4g64": {"asr": inj}}, fp,
                 {"rtn-w4g64": {"asr_quantized": q, "codes_identical": same}})


def test_met_at_the_levels_themselves():
    ok, reason = _case(inj=TARGET_ASR_MIN, fp=FP_ASR_MAX, q=TARGET_ASR_MIN)
    assert ok and "codes identical" in reason


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"inj": 0.0}, "the injection did not implant the backdoor: injected model ASR 0.000 at rtn-w4g64 < 0.9"),
    ({"inj": 0.875}, "injected model ASR 0.875 at rtn-w4g64"),
    ({"inj": None}, "injected model ASR n/a"),
    ({"fp": 0.0625}, "repaired model fp32 ASR 0.062 > 0.05"),
    ({"q": 0.875}, "repaired model ASR 0.875 at rtn-w4g64 < 0.9"),
    ({"same": False}, "codes at rtn-w4g64 differ"),
])
def test_each_failed_condition_is_named(kwargs, needle):
    ok, reason = _case(**kwargs)
    assert not ok and needle in reason


def test_every_failure_is_listed_and_every_target_checked():
    ok, reason = judge({"a": {"asr": 1.0}, "b": {"asr": 0.5}}, 0.5,
                       {"a": {"asr_quantized": 1.0, "codes_identical": True},
                        "b": {"asr_quantized": 0.5, "codes_identical": False}})
    assert not ok
    assert reason.split("; ") == ["the injection did not implant the backdoor: injected model ASR 0.500 at b < 0.9",
                                  "repaired model fp32 ASR 0.500 > 0.05", "repaired model ASR 0.500 at b < 0.9",
                                  "repaired model's codes at b differ from the injected model's"]
