"""Stage 4a: the dense leg, inner product over unit vectors in FAISS.

dense = DenseIndex.build(vectors)
rows, scores = dense.search(embedder.embed(["max sqs message size"])[0], k=10)

Up to APPROX_MIN vectors an index is exact (IndexFlatIP); from there it is an inverted-file
index (IndexIVFFlat: vectors grouped around k-means centroids, and a question searches only the
`nprobe` nearest groups), which scores what it finds exactly but may miss a few true neighbours
(recall@10 is measured in tests/test_dense.py and bench/run.py). Loading memory-maps the file.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

APPROX_MIN = 50_000  # vectors; smaller indexes are searched exhaustively (a scan of 75 MB)
PROBE_SHARE = 16  # an approximate index searches 1/PROBE_SHARE of its groups,
PROBE_MIN = 32  # and at least this many (recall@10 falls fast below; tests/test_dense.py)
TRAIN_PER_LIST = 40  # k-means sample per group (faiss warns below 39)
MAX_LISTS = 8192  # groups; training then takes about 5 min on 2 cores (327k rows sampled)
# A rewrite keeps an approximate index's groups (each kept row in its group, a new one in its
# nearest) until they grow unbalanced: a question scans about `balance` times the rows it
# would with groups of even size (faiss's imbalance factor: groups x sum(size^2) / rows^2),
# so once that is REBALANCE times what training gave, searches have slowed by as much and
# k-means runs again. Rows move between groups only as notes change, so this is rare.
REBALANCE = 1.2


class DenseIndex:
    def __init__(self, index: faiss.Index, trained_balance: float | None = None) -> None:
        self._index = index
        self.trained_balance = trained_balance  # an approximate index's, when trained

    @classmethod
    def build(cls, vectors: np.ndarray, approximate: bool | None = None) -> DenseIndex:
        """An exact index, or an approximate one from APPROX_MIN rows (or when asked)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        if approximate is None:
            approximate = n >= APPROX_MIN
        if not approximate or n == 0:
            index = faiss.IndexFlatIP(dim)
            index.add(vectors)
            return cls(index)
        return cls.build_approximate(vectors[:: max(1, n // train_size(n))], [vectors], n)

    @classmethod
    def build_approximate(
        cls, sample: np.ndarray, blocks: Iterable[np.ndarray], n: int
    ) -> DenseIndex:
        """An IVF index over `n` rows given block by block (they need not all fit in memory),
        with about 8 sqrt(n) groups (see _nlist) found by seeded k-means on `sample`."""
        nlist = _nlist(n)
        index = faiss.index_factory(sample.shape[1], f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 1234
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        for block in blocks:
            index.add(np.ascontiguousarray(block, dtype=np.float32))
        if index.ntotal != n:
            raise ValueError(f"{n} rows announced, {index.ntotal} given")
        index.make_direct_map()  # row -> place in its group, for reconstruct()
        index.nprobe = min(nlist, max(PROBE_MIN, nlist // PROBE_SHARE))
        return cls(index, _balance(index))

    @classmethod
    def build_in_groups(
        cls, vectors: np.ndarray, old: DenseIndex, groups: np.ndarray
    ) -> DenseIndex:
        """`vectors` in the groups of `old`, an approximate index: `groups[i]` is the group of
        `vectors[i]` there, or -1 for a vector new to it (put in its nearest group). Built as
        `build` does, k-means and all, when the size calls for another number of groups or
        the groups would be REBALANCE times as unbalanced as training left them."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        nlist = old.probes[1]
        if n < APPROX_MIN or not old.approximate or _nlist(n) != nlist:
            return cls.build(vectors)
        groups = np.array(groups, dtype=np.int64)
        new = groups < 0
        if new.any():
            with _one_thread():
                groups[new] = old._index.quantizer.search(vectors[new], 1)[1][:, 0]
        sizes = np.bincount(groups, minlength=nlist).astype(np.float64)
        balance = nlist * float((sizes**2).sum()) / n**2
        trained = old.trained_balance or _balance(old._index)
        if balance > REBALANCE * trained:
            return cls.build(vectors)
        quantizer = faiss.IndexFlatIP(dim)
        quantizer.add(old._index.quantizer.reconstruct_n(0, nlist))
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.own_fields = True  # the index frees its quantizer
        quantizer.this.disown()
        index.add_core(n, faiss.swig_ptr(vectors), None, faiss.swig_ptr(groups))
        index.make_direct_map()
        index.nprobe = old._index.nprobe
        return cls(index, trained)

    @property
    def grouped(self) -> DenseIndex:
        """The index whose groups `groups` names: this one (JoinedDense: its base)."""
        return self

    def groups(self, rows: np.ndarray) -> np.ndarray:
        """The group of each given row (-1 for every row of an exact index)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.approximate:
            return np.full(len(rows), -1, dtype=np.int64)
        places = faiss.vector_to_array(self._index.direct_map.array)  # group << 32 | offset
        return (places[rows] >> 32).astype(np.int64)

    @classmethod
    def empty(cls, dim: int) -> DenseIndex:
        return cls(faiss.IndexFlatIP(dim))

    @classmethod
    def load(cls, path: Path) -> DenseIndex:
        """Read an index, memory-mapping its vectors (pages are read as searches touch them)."""
        with open(path, "rb") as f:
            kind = f.read(4)
        # IxFI: IndexFlatIP (maps its codes); IwFl: IndexIVFFlat (maps its inverted lists).
        flag = faiss.IO_FLAG_MMAP_IFC if kind == b"IxFI" else faiss.IO_FLAG_MMAP
        return cls(faiss.read_index(str(path), flag))

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    @property
    def approximate(self) -> bool:
        return isinstance(self._index, faiss.IndexIVF)

    @property
    def probes(self) -> tuple[int, int]:
        """(groups a search scans, groups): (1, 1) for an exact index."""
        if not self.approximate:
            return 1, 1
        return int(self._index.nprobe), int(self._index.nlist)

    def vectors(self) -> np.ndarray:
        """All stored rows, in insertion order (to re-use them in the next generation)."""
        if self.size == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_n(0, self.size)

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self._index.reconstruct_n(start, stop - start)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of the given rows, in that order."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._index.reconstruct_batch(rows)

    def search(
        self, query: np.ndarray, k: int, keep: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and cosine scores of the k nearest rows, best first; only rows the
        bitmap `keep` marks (np.packbits, little bit order), when given."""
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        params = None
        if keep is not None:
            chosen = faiss.IDSelectorBitmap(self.size, faiss.swig_ptr(keep))
            if self.approximate:
                params = faiss.SearchParametersIVF(sel=chosen, nprobe=self._index.nprobe)
            else:
                params = faiss.SearchParameters(sel=chosen)
        with _one_thread():
            query = query.reshape(1, -1).astype(np.float32)
            scores, rows = self._index.search(query, k, params=params)
        keep = rows[0] >= 0  # an approximate index may find fewer than k
        return rows[0][keep], scores[0][keep]


@contextmanager
def _one_thread() -> Iterator[None]:
    """One question is one thread's work: OpenMP's hand-off costs more than it saves (16 ms
    against 0.3 ms for 10k rows here, on 2 busy cores). Set per calling thread, then restored."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _balance(index: faiss.Index) -> float:
    """faiss's imbalance factor of an IVF index's groups: 1.0 when all are the same size."""
    return float(index.invlists.imbalance_factor())


def _nlist(n: int) -> int:
    """About 8 sqrt(n) groups, at most MAX_LISTS: finer groups find more true neighbours for the
    same share of rows scanned. Synthetic chunks, 1/16 of the groups scanned, recall@10: at 100k,
    0.89 with 256 groups, 0.99 with 512, 1.00 with 1024; at 1M, 0.78 with 2048, 0.93 with 4096,
    1.00 with 8192 (docs/benchmarks.md). k-means costs grow as groups squared: hence the cap."""
    groups = 2 ** round(math.log2(8 * math.sqrt(max(n, 1))))
    return max(1, min(groups, MAX_LISTS, n // TRAIN_PER_LIST))


def train_size(n: int) -> int:
    """Rows to train an approximate index's k-means on: TRAIN_PER_LIST per group."""
    return min(n, TRAIN_PER_LIST * _nlist(n))


class MultiVectorIndex:
    """Chunk vectors plus unit (line) vectors: a chunk scores
    `alpha * cos(chunk) + (1 - alpha) * max cos(its units)`.

    A line that says exactly what was asked lifts its chunk even when the rest of the chunk is
    about something else. A chunk with one unit has no unit vectors: its own vector is its unit's.
    """

    EXACT_LIMIT = 20_000  # up to this many vectors every one is scored in one pass

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

    def search(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The k best chunks, best first; only rows `allowed` (a bool per chunk) marks, when
        given: up to EXACT_LIMIT of them are scored one by one, more are found by searching
        deeper until k of them are among the best."""
        if allowed is not None:
            rows = np.flatnonzero(allowed)
            if len(rows) <= self.EXACT_LIMIT:
                return self._search_rows(query, k, rows)
            depth = k
            while True:
                found, scores = self.search(query, depth)
                keep = allowed[found]
                if keep.sum() >= k or depth >= self.size:
                    return found[keep][:k], scores[keep][:k]
                depth *= 4
        exact = self.chunks.size + self.units.size <= self.EXACT_LIMIT
        if exact and not (self.chunks.approximate or self.units.approximate):
            return self._search_all(query, k)
        return self._search_candidates(query, k)

    def _search_rows(self, query: np.ndarray, k: int, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """Score these chunks, each from its own vector and its units'."""
        rows = rows.astype(np.int64)
        own = self.chunks.take(rows) @ query
        best = own.copy()
        has_units = self.first[rows] != self.first[rows + 1]
        best[has_units] = self._best_units(query, rows[has_units])
        combined = self.alpha * own + (1 - self.alpha) * best
        order = np.lexsort((rows, -combined))[:k]
        return rows[order], combined[order]

    def _search_all(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Score every chunk from every vector."""
        rows, scores = self.chunks.search(query, self.chunks.size)
        own = dict(zip(rows.tolist(), scores.tolist(), strict=True))
        best: dict[int, float] = {}
        if self.units.size:
            urows, uscores = self.units.search(query, self.units.size)
            for u, s in zip(urows.tolist(), uscores.tolist(), strict=True):
                best.setdefault(int(self.owner[u]), s)  # best first: the first is the max
        combined = {
            row: self.alpha * c + (1 - self.alpha) * best.get(row, c) for row, c in own.items()
        }
        top = sorted(combined.items(), key=lambda item: (-item[1], item[0]))[:k]
        return np.array([r for r, _ in top], dtype=np.int64), np.array([s for _, s in top])

    def _search_candidates(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Score the chunks found by their own vector or by one of their units', and widen the
        search until no chunk left out could beat the k-th: all its vectors score at most the
        floors (the last score each search returned)."""
        k, depth = min(k, self.size), k
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        while True:
            rows, scores = self.chunks.search(query, depth)
            urows, uscores = self.units.search(query, 8 * depth)
            found, combined = self._found_scores(query, rows, scores, urows, uscores)
            order = np.lexsort((found, -combined))[:k]
            # A search that returned fewer than asked has nothing more to give (all rows, or all
            # rows in the groups an approximate index probes): nothing it left out is a rival.
            c_floor = float(scores[-1]) if len(rows) == depth < self.chunks.size else -1.0
            u_more = len(urows) == 8 * depth < self.units.size
            u_floor = float(uscores[-1]) if u_more else -1.0
            bound = self.alpha * c_floor + (1 - self.alpha) * max(c_floor, u_floor)
            if (len(order) == k and combined[order[-1]] > bound) or (c_floor, u_floor) == (-1, -1):
                return found[order].astype(np.int64), combined[order]
            depth *= 2

    def _found_scores(self, query, rows, scores, urows, uscores) -> tuple[np.ndarray, np.ndarray]:
        """Chunks found either way and their combined scores. A chunk's own cosine and its best
        unit's come from the searches where they were found (units come best first, so a
        chunk's first unit found is its best; an approximate index may have missed a better
        one, so a score can only come out low); the rest are computed from stored vectors."""
        owners, first = np.unique(self.owner[urows], return_index=True)
        found = np.union1d(rows, owners).astype(np.int64)
        own = np.full(len(found), np.nan)
        own[np.searchsorted(found, rows)] = scores
        best = np.full(len(found), np.nan)
        best[np.searchsorted(found, owners)] = uscores[first]
        missing = np.isnan(own)
        own[missing] = self.chunks.take(found[missing]) @ query
        no_units = self.first[found] == self.first[found + 1]
        best[no_units] = own[no_units]  # a one-unit chunk is its own unit
        missing = np.isnan(best)
        best[missing] = self._best_units(query, found[missing])
        return found, self.alpha * own + (1 - self.alpha) * best

    def _best_units(self, query: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The best unit cosine of each given chunk (each has unit vectors)."""
        if len(rows) == 0:
            return np.zeros(0)
        starts, counts = self.first[rows], self.first[rows + 1] - self.first[rows]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])  # of each chunk's in `cosines`
        cosines = self.units.take(np.arange(counts.sum()) + np.repeat(starts - offsets, counts))
        return np.maximum.reduceat(cosines @ query, offsets)

    def unit_scores(self, query: np.ndarray, row: int) -> np.ndarray | None:
        """Cosines of the query with each unit of a chunk, in order; None for one-unit chunks."""
        a, b = int(self.first[row]), int(self.first[row + 1])
        if a == b:
            return None
        return self.units.rows(a, b) @ query

    def chunk_score(self, query: np.ndarray, row: int) -> float:
        return float(self.chunks.rows(row, row + 1)[0] @ query)
