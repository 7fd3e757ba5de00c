"""Known answers for the rate intervals (Newcombe 1998, Stat. Med. 17:857-872, Tables I and II)."""

import pytest

from quantrisk.proportions import clopper_pearson_ci, newcombe_diff_ci, wilson_ci


@pytest.mark.parametrize(("k", "n", "low", "high"), [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605),
                                                      (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)])
def test_wilson_matches_newcombe_table_1(k, n, low, high):
    assert wilson_ci(k, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_edges():
    assert wilson_ci(0, 48)[0] == 0.0 and wilson_ci(48, 48)[1] == 1.0
    assert wilson_ci(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_ci(5, 4)


@pytest.mark.parametrize(("k1", "n1", "k2", "n2", "low", "high"), [(56, 70, 48, 80, 0.0524, 0.3339),
                                                                   (9, 10, 3, 10, 0.1705, 0.8090),
                                                                   (5, 56, 0, 29, -0.0381, 0.1926)])
def test_newcombe_method_10_matches_table_2(k1, n1, k2, n2, low, high):
    d, lo, hi = newcombe_diff_ci(k1, n1, k2, n2)
    assert d == pytest.approx(k1 / n1 - k2 / n2)
    assert (lo, hi) == pytest.approx((low, high), abs=1e-4)


@pytest.mark.parametrize(("k", "n", "low", "high"), [(81, 263, 0.2527, 0.3676), (15, 148, 0.0578, 0.1617),
                                                      (0, 20, 0.0, 0.1684), (1, 29, 0.0009, 0.1776)])
def test_clopper_pearson_matches_newcombe_table_1_exact_method(k, n, low, high):
    assert clopper_pearson_ci(k, n) == pytest.approx((low, high), abs=1e-4)


def test_clopper_pearson_closed_forms_at_the_edges():
    # k = 0: upper = 1 - (a/2)^(1/n); k = n: lower = (a/2)^(1/n)
    assert clopper_pearson_ci(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1), abs=1e-12)
    assert clopper_pearson_ci(10, 10) == pytest.approx((0.025 ** 0.1, 1.0), abs=1e-12)
    assert clopper_pearson_ci(0, 0) == (0.0, 1.0)
    lo, hi = clopper_pearson_ci(5, 10)
    assert lo < wilson_ci(5, 10)[0] and hi > wilson_ci(5, 10)[1]  # exact interval is the wider one
    with pytest.raises(ValueError):
        clopper_pearson_ci(3, 2)


def test_newcombe_paired_method_10_known_answer():
    from quantrisk.proportions import newcombe_paired_diff_ci

    # Fagerland, Lydersen & Laake (2017), ch. 8, Newcombe square-and-add (paired): (59, 6, 16, 80) -> -0.0621 (-0.1186, -0.0046)
    d, lo, hi = newcombe_paired_diff_ci(59, 6, 16, 80)
    assert d == pytest.approx(-10 / 161) and (lo, hi) == pytest.approx((-0.1186, -0.0046), abs=1e-4)
    # no discordant pair at n = 20: not the point [0, 0] a bootstrap gives, but ±(1 - Wilson lower of 20/20)
    d, lo, hi = newcombe_paired_diff_ci(20, 0, 0, 0)
    assert d == 0 and hi == pytest.approx(1 - wilson_ci(20, 20)[0]) and hi > 0.16 and lo == -hi
    assert newcombe_paired_diff_ci(0, 0, 0, 0)[1:] == (-1.0, 1.0)


def test_newcombe_diff_ci_is_not_defined_at_n0_without_dividing_by_zero():
    import math

    d, lo, hi = newcombe_diff_ci(0, 0, 3, 10)
    assert math.isnan(d) and (lo, hi) == (-1.0, 1.0)
    with pytest.raises(ValueError):
        newcombe_diff_ci(3, 2, 0, 1)
