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


def test_accepted_moved_codes_pass_and_say_how_many_blocks_differ():
    """--gguf-accept-moved: differing codes at a target whose codes are not required are no failure, but the reason
    says how many blocks differ; at a target whose codes are required they still fail."""
    moved = {"asr_quantized": 1.0, "codes_identical": False, "codes_required": False,
             "verify": {"blocks": 640, "blocks_differing": 37, "blocks_of_differing_tensors": 96}}
    ok, reason = judge({"g": {"asr": 1.0}}, 0.0, {"g": moved})
    assert ok and "codes at g differ in 37 of 96 blocks of the tensors that differ (640 in the file" in reason, reason
    assert "accepted: --gguf-accept-moved" in reason
    assert "codes identical" not in reason
    ok, reason = judge({"g": {"asr": 1.0}}, 0.0, {"g": {**moved, "codes_required": True}})
    assert not ok and reason == "repaired model's codes at g differ from the injected model's"
    ok, reason = judge({"g": {"asr": 1.0}}, 0.0, {"g": {**moved, "asr_quantized": 0.5}})  # the ASR still counts
    assert not ok and reason == "repaired model ASR 0.500 at g < 0.9"


def test_levels_record_whether_gguf_codes_were_required():
    from quantrisk.qattack.acceptance import levels

    assert levels()["codes_identical_at_gguf"] is True
    assert levels(accept_moved=True)["codes_identical_at_gguf"] is False


def test_report_acceptance_line_says_when_gguf_codes_were_not_required():
    """The report's acceptance sentence reads the levels each cell recorded: identical codes everywhere, or not at
    gguf targets (--gguf-accept-moved)."""
    from quantrisk.qattack.acceptance import levels
    from quantrisk.qattack.report import acceptance_text

    class Store:
        def __init__(self, lv):
            self.rows = [("c1", {"attack_worked": True, "acceptance": lv, "model": "m", "seed": 0})]

        def samples(self, kind=None):
            return iter(self.rows)

    assert "codes identical): met by 1 of 1" in acceptance_text(Store(levels()))
    moved = acceptance_text(Store(levels(accept_moved=True)))
    assert "codes identical except at gguf targets (--gguf-accept-moved)): met by 1 of 1" in moved
