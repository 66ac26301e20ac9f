"""Fusion maths on cases small enough to check by hand."""

from __future__ import annotations

import pytest

from rag.search.fusion import max_blend, minmax_blend, ranked, rrf, weighted_rrf


def test_rrf_by_hand():
    fused = rrf([[7, 3], [3, 9]], k=60)
    assert fused == pytest.approx({3: 1 / 62 + 1 / 61, 7: 1 / 61, 9: 1 / 62})
    assert [row for row, _ in ranked(fused)] == [3, 7, 9]


def test_rrf_small_cases():
    assert rrf([]) == {}
    assert rrf([[], []]) == {}
    assert rrf([[5]], k=0) == {5: 1.0}
    assert rrf([[1, 2, 3]], k=1) == pytest.approx({1: 1 / 2, 2: 1 / 3, 3: 1 / 4})
    # the default k is 60
    assert rrf([[4, 8]]) == pytest.approx({4: 1 / 61, 8: 1 / 62})


def test_ranked_breaks_ties_by_row():
    assert ranked({1: 0.5, 2: 0.5, 0: 0.1, 3: 0.9}) == [(3, 0.9), (1, 0.5), (2, 0.5), (0, 0.1)]
    # Rows swapped between two legs tie exactly (a + b == b + a): the lower row comes first.
    assert ranked(rrf([[9, 2], [2, 9]])) == [(2, 1 / 61 + 1 / 62), (9, 1 / 62 + 1 / 61)]
    assert ranked({}) == []


def test_weighted_rrf_by_hand():
    fused = weighted_rrf([[7, 3], [3, 9]], [2.0, 0.5], k=60)
    assert fused == pytest.approx({7: 2 / 61, 3: 2 / 62 + 0.5 / 61, 9: 0.5 / 62})
    # 3: 0.03226 + 0.00820 = 0.04045 beats 7: 0.03279 although 7 tops the heavier leg
    assert [row for row, _ in ranked(fused)] == [3, 7, 9]
    assert weighted_rrf([[7, 3], [3, 9]], [1, 1]) == rrf([[7, 3], [3, 9]])
    assert weighted_rrf([[7, 3], [3, 9]], [1, 0]) == pytest.approx({7: 1 / 61, 3: 1 / 62, 9: 0})


def test_weighted_rrf_needs_one_weight_per_ranking():
    with pytest.raises(ValueError):
        weighted_rrf([[1], [2]], [1.0])


def test_minmax_blend_by_hand():
    # leg 1: lo 4, hi 10 -> 0: 1, 1: 0, 2: 0.5; leg 2: lo 0.5, hi 0.9 -> 1: 1, 3: 0
    blended = minmax_blend([{0: 10.0, 1: 4.0, 2: 7.0}, {1: 0.9, 3: 0.5}], [0.5, 0.5])
    assert blended == pytest.approx({0: 0.5, 1: 0.5, 2: 0.25, 3: 0.0})
    assert [row for row, _ in ranked(blended)] == [0, 1, 2, 3]


def test_minmax_blend_skips_an_empty_leg():
    assert minmax_blend([{}, {1: 3.0, 2: 1.0}], [0.7, 0.3]) == pytest.approx({1: 0.3, 2: 0.0})
    assert minmax_blend([], []) == {}


def test_minmax_blend_leg_of_equal_scores():
    # A leg whose hits all score the same (often: it found a single row) has no spread to
    # normalise; its hits are all that leg's best, so each gets 1 there, and a row it found
    # must not count the same as a row it missed (0).
    assert minmax_blend([{4: 2.0, 5: 2.0}], [1.0]) == pytest.approx({4: 1.0, 5: 1.0})
    blended = minmax_blend([{1: 0.9, 2: 0.5}, {2: 7.0}], [1.0, 1.0])
    # row 2, found by both legs, must not rank below row 1, found by one
    assert blended == pytest.approx({1: 1.0, 2: 1.0})


def test_max_blend_divides_each_leg_by_its_best_score():
    blended = max_blend([{1: 4.0, 2: 2.0}, {2: 0.5, 3: 0.25}], [0.4, 0.6])
    assert blended == pytest.approx({1: 0.4, 2: 0.4 * 0.5 + 0.6, 3: 0.6 * 0.5})
    assert [row for row, _ in ranked(blended)] == [2, 1, 3]


def test_max_blend_ignores_an_empty_or_all_zero_leg():
    assert max_blend([{}, {7: 0.8}], [0.4, 0.6]) == pytest.approx({7: 0.6})
    assert max_blend([{7: 0.0}, {7: 0.5}], [0.4, 0.6]) == pytest.approx({7: 0.6})
