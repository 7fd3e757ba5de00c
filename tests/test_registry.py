"""Every registry refuses a second, different function under a name already taken."""

from __future__ import annotations

import pytest

import quantrisk.studies  # noqa: F401 - the plugged-in studies register their cell kinds (`privacy`, ...)
from quantrisk.cells import CELL_KINDS, register_cell_kind
from quantrisk.privacy.attacks import ATTACKS, register_attack


def test_attack_registry_refuses_a_duplicate_name():
    before = ATTACKS["loss"]
    with pytest.raises(ValueError, match="attack 'loss' is already registered"):
        @register_attack("loss")
        def other_loss(s, k):  # noqa: ANN001, ANN202
            return 0.0
    assert ATTACKS["loss"] is before


def test_cell_kind_registry_refuses_a_duplicate_name():
    before = CELL_KINDS["privacy"]
    with pytest.raises(ValueError, match="cell kind 'privacy' is already registered"):
        @register_cell_kind("privacy")
        def other(cell, ctx):  # noqa: ANN001, ANN202
            return None
    assert CELL_KINDS["privacy"] is before


def test_registering_the_same_function_again_is_allowed():
    fn = CELL_KINDS["synthetic"]
    assert register_cell_kind("synthetic")(fn) is fn


# ----- the generic Registry every registry above is -------------------------------------------------------------


def _one():  # noqa: ANN202
    return 1


def _other():  # noqa: ANN202
    return 2


def test_registry_refuses_a_second_entry_and_allows_the_same_one_again():
    from quantrisk.registry import Registry

    reg: Registry = Registry("widget")
    assert reg.add("a", _one) is _one
    assert reg.add("a", _one) is _one  # same function (e.g. after a reload): allowed
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.add("a", _other)
    assert reg["a"] is _one


def test_registry_of_plain_values_refuses_another_value_under_a_taken_name():
    """Values without a qualified name (a glossary's texts) are compared by value: before, every two strings
    counted as "the same entry", so a second, different text replaced the first silently."""
    from quantrisk.registry import Registry

    reg: Registry = Registry("glossary term")
    reg.add("AUC", "area under the ROC curve")
    reg.add("AUC", "area under the ROC curve")  # the same text again: allowed
    with pytest.raises(ValueError, match="glossary term 'AUC' is already registered \\(as 'area under"):
        reg.add("AUC", "another text")
    assert reg["AUC"] == "area under the ROC curve"


def test_unknown_name_names_the_registry_the_known_names_and_the_closest():
    from quantrisk.registry import Registry, UnknownName

    reg: Registry = Registry("attack")
    reg.add("loss", _one)
    reg.add("zlib", _other)
    with pytest.raises(UnknownName) as err:
        reg["los"]
    assert str(err.value) == "unknown attack 'los'; known: loss, zlib (did you mean loss?)"
    with pytest.raises(KeyError, match="known: loss, zlib"):  # still a KeyError for callers that catch one
        reg["telepathy"]
    assert "did you mean" not in reg.unknown_message("telepathy")


def test_a_frozen_registry_refuses_every_change():
    from quantrisk.registry import Registry

    reg: Registry = Registry("widget")
    reg.add("a", _one)
    reg.freeze()
    for change in (lambda: reg.add("b", _other), lambda: reg.__setitem__("b", _other), lambda: reg.pop("a"),
                   lambda: reg.__delitem__("a"), lambda: reg.update(b=_other), reg.clear):
        with pytest.raises(RuntimeError, match="widget registry is frozen"):
            change()
    assert dict(reg) == {"a": _one} and reg.frozen


def test_every_registry_is_one_registry_and_the_back_ends_are_frozen():
    from quantrisk.models.quantizers import QUANTIZERS
    from quantrisk.privacy.inputs import PROVIDERS
    from quantrisk.registry import Registry
    from quantrisk.report.glossary import ALIASES, GLOSSARY
    from quantrisk.report.sections import SECTIONS
    from quantrisk.trojan.metrics import TROJAN_METRICS

    for reg in (ATTACKS, PROVIDERS, TROJAN_METRICS, CELL_KINDS, QUANTIZERS, SECTIONS, GLOSSARY, ALIASES):
        assert isinstance(reg, Registry), reg
    assert QUANTIZERS.frozen
    with pytest.raises(RuntimeError):
        QUANTIZERS["rtn"] = QUANTIZERS["dtype"]


def test_the_back_end_registry_refuses_a_second_class_under_a_taken_key():
    from quantrisk.models.quantizers import QUANTIZERS
    from quantrisk.registry import Registry

    rtn = QUANTIZERS["rtn"]
    impostor = type("RTNQuantizer2", (rtn,), {"backend": "rtn"})
    reg: Registry = Registry("quantization back-end")
    reg.add("rtn", rtn)
    with pytest.raises(ValueError, match="quantization back-end 'rtn' is already registered"):
        reg.add(impostor.backend, impostor)


def test_trojan_rates_and_bounds_are_attributes_of_the_metrics():
    from quantrisk.trojan.metrics import TROJAN_METRICS
    from quantrisk.trojan.report import BOUNDED_PREFIXES

    assert [n for n, m in TROJAN_METRICS.items() if m.rate] == ["asr", "ftr", "payload_rate"]
    bounded = {n for n, m in TROJAN_METRICS.items() if m.bounded}
    assert {"asr", "ftr", "payload_rate", "em", "ex", "executable", "js_t", "js_k", "cs_bow", "ld_norm",
            "ps_mean", "ps_median", "ps_p90"} <= bounded
    assert not bounded & {"ld", "pss_mean", "pss_median"}  # unbounded: a distance, a sum of probabilities
    assert set(BOUNDED_PREFIXES) == bounded | {"tpr", "codebleu"}
