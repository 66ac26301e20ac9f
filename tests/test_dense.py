"""The dense leg: FAISS against a numpy reference, and the chunk + unit score mix by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rag.index.dense import DenseIndex, MultiVectorIndex, RowFile


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


# --- past EXACT_LIMIT: candidates scored exactly, and the approximate (IVF) index ----------------


def clustered(rng: np.random.Generator, n: int, dim: int, topics: int) -> np.ndarray:
    """Unit vectors around random topic centres, as embeddings of notes on a few subjects are."""
    centres = rng.normal(size=(topics, dim))
    x = centres[rng.integers(0, topics, size=n)] + rng.normal(scale=0.6, size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def chunk_and_unit_vectors(seed: int, chunks: int, dim: int = 32):
    rng = np.random.default_rng(seed)
    counts = rng.choice([0, 2, 3, 5, 8], size=chunks)  # 0: a one-unit chunk
    return clustered(rng, chunks, dim, 40), clustered(rng, int(counts.sum()), dim, 40), counts


@pytest.mark.parametrize("seed", [1, 2])
def test_candidate_search_finds_exactly_what_scoring_everything_finds(seed):
    chunk_vectors, unit_vectors, counts = chunk_and_unit_vectors(seed, 3000)
    index = MultiVectorIndex(
        DenseIndex.build(chunk_vectors), DenseIndex.build(unit_vectors), counts
    )
    rng = np.random.default_rng(seed)
    for query in clustered(rng, 25, 32, 40):
        for k in (1, 10, 100):
            rows, scores = index._search_candidates(query, k)
            all_rows, all_scores = index._search_all(query, k)
            assert rows.tolist() == all_rows.tolist()
            np.testing.assert_allclose(scores, all_scores, atol=1e-6)


def combined(chunk_vectors, unit_vectors, counts, q, rows, alpha=0.5) -> np.ndarray:
    """Each chunk's dense score worked out in numpy: its own cosine mixed with its best unit's
    (its own again when it has no unit vectors)."""
    first = np.concatenate([[0], np.cumsum(counts)])
    out = []
    for r in rows:
        own = float(chunk_vectors[r] @ q)
        units = unit_vectors[first[r] : first[r + 1]] @ q
        out.append(alpha * own + (1 - alpha) * (units.max() if len(units) else own))
    return np.array(out)


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return len(set(found[:10].tolist()) & set(truth[:10].tolist())) / 10


def test_the_approximate_index_finds_at_least_95_percent_of_the_true_top_10(tmp_path):
    rng = np.random.default_rng(3)
    vectors = clustered(rng, 40_000, 48, 200)
    queries = clustered(rng, 100, 48, 200)
    exact, ivf = DenseIndex.build(vectors), DenseIndex.build(vectors, approximate=True)
    assert ivf.approximate and ivf.compressed and not exact.approximate
    ivf.save(tmp_path / "ivf.faiss")
    loaded = DenseIndex.load(tmp_path / "ivf.faiss")  # memory-mapped: same answers
    recalls = []
    for q in queries:
        truth = exact.search(q, 10)[0]
        rows, scores = loaded.search(q, 10)
        np.testing.assert_allclose(scores, vectors[rows] @ q, atol=1e-5)  # found: scored exactly
        recalls.append(recall_at_10(rows, truth))
    assert np.mean(recalls) >= 0.95
    assert loaded.take(np.array([5, 0, 39_999])).tolist() == vectors[[5, 0, 39_999]].tolist()


def test_rows_given_block_by_block_go_to_a_file_that_saving_links(tmp_path):
    """A build too large for memory writes the float rows as they come and maps them; the
    generation then links that file instead of writing it again."""
    vectors = clustered(np.random.default_rng(4), 12_000, 48, 40)
    blocks = (vectors[a : a + 5_000] for a in range(0, len(vectors), 5_000))
    index = DenseIndex.build_approximate(vectors[::2], blocks, len(vectors), tmp_path / "r.npy")
    assert index.compressed and np.array_equal(index.vectors(), vectors)
    index.save(tmp_path / "units.faiss")
    assert (tmp_path / "units.npy").stat().st_ino == (tmp_path / "r.npy").stat().st_ino
    loaded = DenseIndex.load(tmp_path / "units.faiss")
    for q in vectors[:20]:
        assert loaded.search(q, 10)[0].tolist() == index.search(q, 10)[0].tolist()
    with pytest.raises(ValueError, match="12000 rows announced"):
        DenseIndex.build_approximate(vectors[::2], [vectors[:100]], len(vectors))


def test_an_index_built_from_a_rows_file_reads_it_a_block_at_a_time(tmp_path, monkeypatch):
    """Rows in a RowFile make the index rows in memory make, and stay in that file."""
    from rag.index import dense

    vectors = clustered(np.random.default_rng(9), 3_000, 16, 20)
    np.save(tmp_path / "r.npy", vectors)
    monkeypatch.setattr(dense, "ROW_BLOCK", 1_000)  # three blocks
    in_memory = DenseIndex.build(vectors, approximate=True)
    from_file = DenseIndex.build(RowFile(tmp_path / "r.npy"), approximate=True)
    rows = np.arange(len(vectors))
    assert np.array_equal(from_file.codes(rows), in_memory.codes(rows))
    assert np.array_equal(from_file.groups(rows), in_memory.groups(rows))
    assert isinstance(from_file._rows, RowFile) and np.array_equal(from_file.vectors(), vectors)
    small = DenseIndex.build(RowFile(tmp_path / "r.npy"), approximate=False)  # exact: in memory
    assert isinstance(small._rows, np.ndarray) and np.array_equal(small.vectors(), vectors)


def test_a_rows_file_reads_the_rows_asked_for(tmp_path):
    """Rows are read from the .npy file as asked (RowFile), never memory-mapped."""
    from rag.index.dense import RowFile

    vectors = clustered(np.random.default_rng(8), 100, 8, 3)
    np.save(tmp_path / "r.npy", vectors)
    rows = RowFile(tmp_path / "r.npy")
    picked = np.array([5, 6, 7, 2, 2, 99, 0])  # runs, repeats, out of order
    assert rows.shape == (100, 8) and np.array_equal(rows[picked], vectors[picked])
    mask = np.arange(100) % 3 == 0
    assert np.array_equal(rows[mask], vectors[mask])
    assert np.array_equal(rows[3:9], vectors[3:9]) and np.array_equal(rows[::7], vectors[::7])
    assert np.array_equal(np.array(rows), vectors) and np.array_equal(rows[np.int64(4)], vectors[4])
    with pytest.raises(IndexError):
        rows[np.array([100])]
    np.save(tmp_path / "ints.npy", np.zeros((3, 8), dtype=np.int64))
    with pytest.raises(ValueError, match="int64 rows, not float32"):
        RowFile(tmp_path / "ints.npy")


def test_chunk_and_unit_search_over_approximate_indexes_keeps_95_percent_of_the_top_10():
    chunk_vectors, unit_vectors, counts = chunk_and_unit_vectors(4, 6000, dim=48)
    exact = MultiVectorIndex(
        DenseIndex.build(chunk_vectors), DenseIndex.build(unit_vectors), counts
    )
    approx = MultiVectorIndex(
        DenseIndex.build(chunk_vectors, approximate=True),
        DenseIndex.build(unit_vectors, approximate=True),
        counts,
    )
    recalls = []
    for q in clustered(np.random.default_rng(5), 60, 48, 40):
        truth, _ = exact.search(q, 10)
        rows, scores = approx.search(q, 10)
        # a chunk's best unit may be missed, never over-counted: scores are at most exact
        assert np.all(scores <= combined(chunk_vectors, unit_vectors, counts, q, rows) + 1e-6)
        recalls.append(recall_at_10(rows, truth))
    assert np.mean(recalls) >= 0.95


def test_flat_index_round_trips_memory_mapped(tmp_path):
    vectors = clustered(np.random.default_rng(6), 500, 16, 5)
    DenseIndex.build(vectors).save(tmp_path / "flat.faiss")
    loaded = DenseIndex.load(tmp_path / "flat.faiss")
    assert not loaded.approximate and loaded.vectors().tolist() == vectors.tolist()
    assert loaded.search(vectors[7], 1)[0].tolist() == [7]


def centroids(index: DenseIndex) -> np.ndarray:
    return index._index.quantizer.reconstruct_n(0, index.probes[1])


def codebooks(index: DenseIndex) -> np.ndarray:
    import faiss

    return faiss.vector_to_array(index._index.pq.centroids)


def test_a_rewrite_keeps_the_groups_of_an_approximate_index_while_they_stay_balanced(tmp_path):
    rng = np.random.default_rng(7)
    vectors = clustered(rng, 60_000, 48, 300)
    old = DenseIndex.build(vectors)
    assert old.approximate and old.trained_balance >= 1.0
    keep = rng.permutation(len(vectors))[:59_000]  # rows reordered, 1,000 dropped, 1,000 new
    new = np.concatenate([vectors[keep], clustered(rng, 1_000, 48, 300)])
    groups = np.concatenate([old.groups(keep), np.full(1_000, -1)])
    kept = DenseIndex.build_in_groups(new, old, groups, old.codes(keep))  # codes copied
    assert kept.probes == old.probes and np.array_equal(centroids(kept), centroids(old))
    assert np.array_equal(codebooks(kept), codebooks(old))  # the codes mean what they meant
    assert np.array_equal(kept.groups(np.arange(59_000)), old.groups(keep))  # no row moved
    encoded = DenseIndex.build_in_groups(new, old, groups)  # every row encoded again
    rows = np.arange(len(new))
    assert np.array_equal(kept.codes(rows), encoded.codes(rows))
    assert np.array_equal(kept.groups(rows), encoded.groups(rows)) and kept.size == len(new)
    np.save(tmp_path / "new.npy", new)  # rows in a file (a large rewrite's): read as needed
    from_file = DenseIndex.build_in_groups(
        RowFile(tmp_path / "new.npy"), old, groups, old.codes(keep)
    )
    assert np.array_equal(from_file.codes(rows), kept.codes(rows))
    assert isinstance(from_file._rows, RowFile) and np.array_equal(from_file.take(rows), new)
    with pytest.raises(ValueError, match="codes for 59000 grouped rows"):
        DenseIndex.build_in_groups(new, old, groups, old.codes(keep[:10]))
    assert kept.trained_balance == old.trained_balance
    exact = DenseIndex.build(new, approximate=False)
    queries = new[rng.integers(0, len(new), size=50)]
    recalls = [recall_at_10(kept.search(q, 10)[0], exact.search(q, 10)[0]) for q in queries]
    assert np.mean(recalls) >= 0.95
    # Half the rows now crowd around one of them: the groups are trained again.
    crowd = vectors[0] + rng.normal(scale=0.05, size=(30_000, 48))
    crowd = (crowd / np.linalg.norm(crowd, axis=1, keepdims=True)).astype(np.float32)
    lopsided = np.concatenate([vectors[keep[:30_000]], crowd])
    groups = np.concatenate([old.groups(keep[:30_000]), np.full(30_000, -1)])
    again = DenseIndex.build_in_groups(lopsided, old, groups)
    assert again.approximate and not np.array_equal(centroids(again), centroids(old))
