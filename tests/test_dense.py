"""The dense leg: FAISS against a numpy reference, and the chunk + unit score mix by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rag.dense import DenseIndex, MultiVectorIndex


def unit(*xs: float) -> np.ndarray:
    v = np.array(xs, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_faiss_top_k_matches_a_numpy_dot_product():
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(500, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    query = vectors[3] + 0.1 * vectors[9]
    rows, scores = DenseIndex.build(vectors).search(query, 10)
    reference = np.argsort(-(vectors @ query))[:10]
    assert rows.tolist() == reference.tolist()
    np.testing.assert_allclose(scores, (vectors @ query)[reference], rtol=1e-5)


def test_a_chunk_scores_half_its_own_cosine_and_half_its_best_unit():
    chunks = DenseIndex.build(np.stack([unit(1, 0), unit(0, 1), unit(1, 1)]))
    # chunk 0 has units (0.6, 0.8) and (0, 1); chunk 1 has one unit (no unit vectors);
    # chunk 2 has units (1, 0) and (-1, 0)
    units = DenseIndex.build(np.stack([unit(0.6, 0.8), unit(0, 1), unit(1, 0), unit(-1, 0)]))
    index = MultiVectorIndex(chunks, units, [2, 0, 2], alpha=0.5)
    rows, scores = index.search(unit(0, 1), k=3)
    expected = {
        0: 0.5 * 0.0 + 0.5 * 1.0,  # own cos 0, best unit (0, 1)
        1: 0.5 * 1.0 + 0.5 * 1.0,  # one unit: its own vector stands for it
        2: 0.5 * (1 / np.sqrt(2)) + 0.5 * 0.0,  # best of units (1, 0) and (-1, 0)
    }
    assert rows.tolist() == [1, 0, 2]
    assert scores.tolist() == pytest.approx([expected[1], expected[0], expected[2]], abs=1e-6)
    assert index.unit_scores(unit(0, 1), 0).tolist() == pytest.approx([0.8, 1.0])
    assert index.unit_scores(unit(0, 1), 1) is None


def test_unit_counts_must_match_the_unit_index():
    chunks = DenseIndex.build(np.stack([unit(1, 0)]))
    with pytest.raises(ValueError, match="3 units expected"):
        MultiVectorIndex(chunks, DenseIndex.build(np.stack([unit(1, 0)])), [3])
