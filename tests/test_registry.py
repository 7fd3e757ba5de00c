"""Every registry refuses a second, different function under a name already taken."""

from __future__ import annotations

import pytest

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
