"""Stage 4a: the dense leg, exact inner product over unit vectors in FAISS.

dense = DenseIndex.build(vectors)
rows, scores = dense.search(embedder.embed(["max sqs message size"])[0], k=10)
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np


class DenseIndex:
    def __init__(self, index: faiss.Index) -> None:
        self._index = index

    @classmethod
    def build(cls, vectors: np.ndarray) -> DenseIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(vectors)
        return cls(index)

    @classmethod
    def empty(cls, dim: int) -> DenseIndex:
        return cls(faiss.IndexFlatIP(dim))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        return cls(faiss.read_index(str(path)))

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def vectors(self) -> np.ndarray:
        """All stored rows, in insertion order (to re-use them in the next generation)."""
        if self.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_n(0, self.size)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self._index.reconstruct_n(start, stop - start)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and cosine scores of the k nearest rows, best first."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, rows = self._index.search(query.reshape(1, -1).astype(np.float32), k)
        keep = rows[0] >= 0
        return rows[0][keep], scores[0][keep]


class MultiVectorIndex:
    """Chunk vectors plus unit (line) vectors: a chunk scores
    `alpha * cos(chunk) + (1 - alpha) * max cos(its units)`.

    A line that says exactly what was asked lifts its chunk even when the rest of the chunk is
    about something else. A chunk with one unit has no unit vectors: its own vector is its unit's.
    """

    EXACT_LIMIT = 200_000  # up to this many vectors every one is scored, so scores are exact

    def __init__(self, chunks: DenseIndex, units: DenseIndex, unit_counts, alpha: float = 0.5):
        self.chunks, self.units, self.alpha = chunks, units, alpha
        counts = np.asarray(unit_counts, dtype=np.int64)
        if counts.sum() != units.size:
            raise ValueError(f"{counts.sum()} units expected, the unit index has {units.size}")
        self.owner = np.repeat(np.arange(len(counts)), counts)  # unit row -> chunk row
        self.first = np.concatenate([[0], np.cumsum(counts)])  # chunk row -> its first unit row

    @property
    def size(self) -> int:
        return self.chunks.size

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        exact = self.chunks.size + self.units.size <= self.EXACT_LIMIT
        rows, scores = self.chunks.search(query, self.chunks.size if exact else k)
        own = dict(zip(rows.tolist(), scores.tolist(), strict=True))
        best: dict[int, float] = {}
        unit_floor = -1.0
        if self.units.size:
            urows, uscores = self.units.search(query, self.units.size if exact else 8 * k)
            for u, s in zip(urows.tolist(), uscores.tolist(), strict=True):
                best.setdefault(int(self.owner[u]), s)  # best first: the first is the max
            unit_floor = float(uscores[-1]) if len(uscores) else -1.0
        own_floor = float(scores[-1]) if len(scores) else -1.0
        combined = {}
        for row in own.keys() | best.keys():
            c = own.get(row, own_floor)
            u = best.get(row, c if self.first[row] == self.first[row + 1] else unit_floor)
            combined[row] = self.alpha * c + (1 - self.alpha) * u
        top = sorted(combined.items(), key=lambda item: (-item[1], item[0]))[:k]
        return np.array([r for r, _ in top], dtype=np.int64), np.array([s for _, s in top])

    def unit_scores(self, query: np.ndarray, row: int) -> np.ndarray | None:
        """Cosines of the query with each unit of a chunk, in order; None for one-unit chunks."""
        a, b = int(self.first[row]), int(self.first[row + 1])
        if a == b:
            return None
        return self.units.rows(a, b) @ query

    def chunk_score(self, query: np.ndarray, row: int) -> float:
        return float(self.chunks.rows(row, row + 1)[0] @ query)
