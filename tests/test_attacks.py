"""Known-answer tests for every MI attack (hand-computed values) and the registry."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest

from quantrisk.errors import UsageError
from quantrisk.privacy.attacks import ATTACKS, AttackInput, parse_attack, parse_attacks
from quantrisk.scoring import TokenScores


def ts(lp, mu=None, var=None) -> TokenScores:
    lp = np.asarray(lp, dtype=float)
    return TokenScores(np.arange(lp.size + 1), lp,
                       np.asarray(mu if mu is not None else np.zeros_like(lp), dtype=float),
                       np.asarray(var if var is not None else np.ones_like(lp), dtype=float))


TEXT = "def f(x):\n    return x\n"
SAMPLE = AttackInput(TEXT, ts([-1.0, -2.0, -3.0, -6.0, -0.5]))


def score(name: str, sample: AttackInput = SAMPLE) -> float:
    return parse_attack(name)(sample)


def test_loss_and_zlib():
    assert score("loss") == pytest.approx(-12.5 / 5)
    size = len(zlib.compress(TEXT.encode("utf-8")))
    assert score("zlib") == pytest.approx(-2.5 / size)


def test_mink_takes_the_k_share_of_smallest():
    # 5 tokens: k=0.2 -> ceil(1) = 1 smallest = -6; k=0.5 -> ceil(2.5)=3: -6,-3,-2 -> -11/3
    assert score("mink") == pytest.approx(-6.0)
    assert score("mink-0.5") == pytest.approx(-11 / 3)
    assert score("mink-1") == pytest.approx(-2.5)


def test_minkpp_standardises_with_mu_and_sigma():
    s = AttackInput(TEXT, ts([-1.0, -2.0, -4.0], mu=[-2.0, -2.0, -2.0], var=[1.0, 4.0, 0.25]))
    # z = (-1+2)/1 = 1, (-2+2)/2 = 0, (-4+2)/0.5 = -4 ; k=0.2 of 3 -> 1 smallest -> -4 ; k=0.5 -> 2: (-4+0)/2
    assert score("minkpp", s) == pytest.approx(-4.0)
    assert score("minkpp-0.5", s) == pytest.approx(-2.0)


def test_lowercase_reference_recall():
    s = AttackInput(TEXT, ts([-1.0, -3.0]), {"lower": ts([-4.0, -4.0]), "reference": ts([-3.0, -5.0]),
                                             "conditioned": ts([-3.0, -3.0])})
    assert score("lowercase", s) == pytest.approx(2.0 / -4.0)  # = -0.5: x is relatively likelier than lower(x)
    assert score("reference", s) == pytest.approx(-2.0 - (-4.0))
    assert score("recall", s) == pytest.approx(-3.0 / -2.0)


def test_higher_means_member_orientation():
    member = AttackInput(TEXT, ts([-0.5, -0.5]), {"lower": ts([-3.0, -3.0]), "reference": ts([-3.0, -3.0]),
                                                  "conditioned": ts([-2.0, -2.0])})
    other = AttackInput(TEXT, ts([-3.0, -3.0]), {"lower": ts([-3.5, -3.5]), "reference": ts([-3.0, -3.0]),
                                                 "conditioned": ts([-3.0, -3.0])})
    for name in ["loss", "zlib", "lowercase", "mink", "minkpp", "reference", "recall"]:
        assert score(name, member) > score(name, other), name


def test_registry_and_names():
    assert {"loss", "zlib", "lowercase", "mink", "minkpp", "reference", "recall"} <= set(ATTACKS)
    assert [c.label for c in parse_attacks("loss, mink-0.1,minkpp")] == ["loss", "mink-0.1", "minkpp-0.2"]
    for bad in ["nope", "loss-0.2", "mink-0", "mink-1.5"]:
        with pytest.raises(UsageError):
            parse_attack(bad)
    with pytest.raises(UsageError, match="twice"):
        parse_attacks("mink,mink-0.2")
    assert not math.isnan(score("minkpp", AttackInput(TEXT, ts([-1.0], var=[0.0]))))
