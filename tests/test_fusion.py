"""Fusion maths on cases small enough to check by hand."""

from __future__ import annotations

import pytest

from rag.search.fusion import max_blend, ranked


def test_ranked_breaks_ties_by_row():
    assert ranked({1: 0.5, 2: 0.5, 0: 0.1, 3: 0.9}) == [(3, 0.9), (1, 0.5), (2, 0.5), (0, 0.1)]
    assert ranked({}) == []


def test_max_blend_divides_each_leg_by_its_best_score():
    blended = max_blend([{1: 4.0, 2: 2.0}, {2: 0.5, 3: 0.25}], [0.4, 0.6])
    assert blended == pytest.approx({1: 0.4, 2: 0.4 * 0.5 + 0.6, 3: 0.6 * 0.5})
    assert [row for row, _ in ranked(blended)] == [2, 1, 3]


def test_max_blend_the_docstring_case():
    blended = max_blend([{7: 4.0, 3: 2.0}, {3: 0.9, 9: 0.45}], [0.3, 0.7])
    assert blended == pytest.approx({7: 0.3, 3: 0.3 * 0.5 + 0.7, 9: 0.35})


def test_max_blend_does_not_depend_on_how_deep_a_leg_was_cut():
    deep = max_blend([{1: 4.0, 2: 2.0, 3: 1.0, 4: 0.5}, {1: 0.8}], [0.3, 0.7])
    shallow = max_blend([{1: 4.0, 2: 2.0}, {1: 0.8}], [0.3, 0.7])
    assert {r: deep[r] for r in shallow} == pytest.approx(shallow)


def test_max_blend_ignores_an_empty_or_all_zero_leg():
    assert max_blend([{}, {7: 0.8}], [0.4, 0.6]) == pytest.approx({7: 0.6})
    assert max_blend([{7: 0.0}, {7: 0.5}], [0.4, 0.6]) == pytest.approx({7: 0.6})


def test_max_blend_needs_one_weight_per_leg():
    with pytest.raises(ValueError):
        max_blend([{1: 1.0}], [0.3, 0.7])
