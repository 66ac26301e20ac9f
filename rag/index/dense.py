"""Stage 4a: the dense leg, inner product over unit vectors in FAISS.

dense = DenseIndex.build(vectors)
rows, scores = dense.search(embedder.embed(["max sqs message size"])[0], k=10)

Up to APPROX_MIN vectors an index is exact (IndexFlatIP); from there it is an inverted-file
index of product-quantized codes (IndexIVFPQ: vectors grouped around k-means centroids, each
held as PQ_BYTES bytes; a question searches only the `nprobe` nearest groups). Its candidates
are scored again exactly from the float rows, so what it returns has exact cosines; it may miss
a few true neighbours (recall@10 is measured in tests/test_dense.py and bench/run.py).

Every index keeps its rows as float32 in a .npy file beside its FAISS file (`rows`, `take`).
Loading memory-maps the FAISS file: an approximate index's codes are what a question scans (48
bytes a vector instead of 1,536). The rows file is not mapped but read (RowFile): a question
reads only its candidates' rows.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
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
# An approximate index holds each vector as PQ_BYTES one-byte codes, each naming one of 256
# centroids for 384 / PQ_BYTES of its dimensions (48: 8 dimensions a byte). A search for k
# rows takes the k + RESCORE best by their codes and scores those exactly from the float rows:
# the codes rank well enough that the true top 10 is almost always among the first 100
# (recall@10 by depth: docs/benchmarks.md, tests/test_dense.py). A margin, not a multiple:
# the unit search asks for 800 rows, and faiss takes 2.5 times as long for 1,600 as for 900.
PQ_BYTES = 48
RESCORE = 100
ROW_BLOCK = 65_536  # rows read or written at a time when they are in a file (96 MiB)


class DenseIndex:
    def __init__(
        self,
        index: faiss.Index,
        rows: np.ndarray | None = None,
        trained_balance: float | None = None,
    ) -> None:
        self._index = index
        # The float rows: in memory after a build, a RowFile after a load. None only for an
        # index of format 3 read as it was (an exact or IVFFlat index, which keeps them).
        self._rows = rows
        self.trained_balance = trained_balance  # an approximate index's, when trained

    @classmethod
    def build(cls, vectors: np.ndarray | RowFile, approximate: bool | None = None) -> DenseIndex:
        """An exact index, or an approximate one from APPROX_MIN rows (or when asked). Rows in
        a RowFile are read a block at a time for an approximate index, and stay in that file."""
        n, dim = vectors.shape
        if approximate is None:
            approximate = n >= APPROX_MIN
        if not approximate or n == 0:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            index = faiss.IndexFlatIP(dim)
            index.add(vectors)
            return cls(index, vectors)
        sample = vectors[:: max(1, n // train_size(n))]
        if not isinstance(vectors, RowFile):
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            return cls.build_approximate(sample, [vectors], n)
        blocks = (vectors[a : a + ROW_BLOCK] for a in range(0, n, ROW_BLOCK))
        built = cls.build_approximate(sample, blocks, n, keep_rows=False)
        built._rows = vectors
        return built

    @classmethod
    def build_approximate(
        cls,
        sample: np.ndarray,
        blocks: Iterable[np.ndarray],
        n: int,
        rows_file: Path | None = None,
        keep_rows: bool = True,
    ) -> DenseIndex:
        """An IVF-PQ index over `n` rows given block by block, with about 8 sqrt(n) groups
        (see _nlist) found by seeded k-means on `sample`, and its codes trained there too.
        `rows_file`: write the float rows to this .npy file as they come, and read them from
        there (RowFile: rows that need not fit in memory); else they are kept in memory.
        `keep_rows=False`: the caller has them (the index is made without its rows)."""
        dim = sample.shape[1]
        nlist = _nlist(n)
        index = _ivf_pq(faiss.IndexFlatIP(dim), nlist, _pq_bytes(dim))
        index.cp.seed = 1234
        index.pq.cp.seed = 1234
        # Codebooks from 64 rows a centroid (16k), not faiss's 256: training takes a third of
        # the time, and the codes only choose candidates that are then scored exactly.
        index.pq.cp.max_points_per_centroid = 64
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        with RowWriter(n, dim, rows_file, keep_rows) as rows:
            for block in blocks:
                block = np.ascontiguousarray(block, dtype=np.float32)
                index.add(block)
                rows.write(block)
        if index.ntotal != n:
            raise ValueError(f"{n} rows announced, {index.ntotal} given")
        index.nprobe = min(nlist, max(PROBE_MIN, nlist // PROBE_SHARE))
        return cls(index, rows.array if keep_rows else None, _balance(index))

    @classmethod
    def build_in_groups(
        cls,
        vectors: np.ndarray | RowFile,
        old: DenseIndex,
        groups: np.ndarray,
        codes: np.ndarray | None = None,
    ) -> DenseIndex:
        """`vectors` in the groups of `old`, an approximate index: `groups[i]` is the group of
        `vectors[i]` there, or -1 for a vector new to it (put in its nearest group). `codes`:
        the PQ codes in `old` of the vectors with a group, in their order (`old.codes`),
        copied instead of encoded again. Built as `build` does, k-means and all, when the
        size calls for another number of groups or the groups would be REBALANCE times as
        unbalanced as training left them."""
        if not isinstance(vectors, RowFile):  # a RowFile's rows are read as needed
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        n, dim = vectors.shape
        nlist = old.probes[1]
        if n < APPROX_MIN or not old.compressed or _nlist(n) != nlist:
            return cls.build(vectors)
        groups = np.array(groups, dtype=np.int64)
        new = groups < 0
        if codes is not None and len(codes) != n - int(new.sum()):
            raise ValueError(f"{len(codes)} codes for {n - int(new.sum())} grouped rows")
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
        index = _ivf_pq(quantizer, nlist, old._index.pq.M)
        index.pq = old._index.pq  # a copy of the trained codebooks
        index.is_trained = True
        if codes is None:
            every = np.ascontiguousarray(vectors, dtype=np.float32)
            index.add_core(n, faiss.swig_ptr(every), None, faiss.swig_ptr(groups))
        else:
            _add_codes(index, np.flatnonzero(~new), groups[~new], codes)
            fresh = np.flatnonzero(new)  # encoded; each row's id is its position, as add gives
            # held by name: a pointer does not keep its array alive
            x, at = np.ascontiguousarray(vectors[fresh]), np.ascontiguousarray(groups[fresh])
            ptrs = faiss.swig_ptr(x), faiss.swig_ptr(fresh), faiss.swig_ptr(at)
            index.add_core(len(fresh), *ptrs)
        index.nprobe = old._index.nprobe
        return cls(index, vectors, trained)

    @property
    def grouped(self) -> DenseIndex:
        """The index whose groups `groups` names: this one (JoinedDense: its base)."""
        return self

    def groups(self, rows: np.ndarray) -> np.ndarray:
        """The group of each given row (-1 for every row of an exact index)."""
        rows = np.asarray(rows, dtype=np.int64)
        if not self.approximate:
            return np.full(len(rows), -1, dtype=np.int64)
        group = np.empty(self.size, dtype=np.int64)  # row -> group, from the groups' row lists
        for g, ids, _ in _lists(self._index.invlists):
            group[ids] = g
        return group[rows]

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """The PQ codes of the given rows of a compressed index, one row of bytes each."""
        rows = np.asarray(rows, dtype=np.int64)
        lists = self._index.invlists
        code = np.empty((self.size, lists.code_size), dtype=np.uint8)
        for _, ids, codes in _lists(lists, codes=True):
            code[ids] = codes
        return code[rows]

    @classmethod
    def empty(cls, dim: int) -> DenseIndex:
        return cls(faiss.IndexFlatIP(dim), np.zeros((0, dim), dtype=np.float32))

    @classmethod
    def load(cls, path: Path, rows: bool = True) -> DenseIndex:
        """Read an index (memory-mapped: pages are read as searches touch them) and open its
        float rows (`path` with .npy), read as asked. `rows` False: an index of format 3, which
        has no rows file (its exact or IVFFlat index keeps them)."""
        with open(path, "rb") as f:
            kind = f.read(4)
        # IxFI: IndexFlatIP (maps its codes); IwPQ, IwFl: IVF indexes (map their lists).
        flag = faiss.IO_FLAG_MMAP_IFC if kind == b"IxFI" else faiss.IO_FLAG_MMAP
        index = faiss.read_index(str(path), flag)
        if not rows:
            return cls(index)
        found = RowFile(rows_path(path))
        if found.shape != (index.ntotal, index.d):
            raise ValueError(f"{rows_path(path).name} holds {found.shape} rows")
        return cls(index, found)

    def save(self, path: Path) -> None:
        """The FAISS file at `path`, the float rows beside it (rows_path): linked when they
        are a file already (a build that wrote them as they came), else written."""
        faiss.write_index(self._index, str(path))
        target = rows_path(path)
        source = getattr(self._rows, "filename", None)  # a RowFile
        if source is not None and Path(source) != target:
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        elif source is None:
            rows = self._rows if self._rows is not None else self.vectors()  # no copy
            np.save(target, rows, allow_pickle=False)

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
    def compressed(self) -> bool:
        """Whether searches find candidates by codes and re-score them from the float rows."""
        return isinstance(self._index, faiss.IndexIVFPQ)

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
        if self._rows is not None:
            return np.array(self._rows)
        return self._index.reconstruct_n(0, self.size)

    def rows(self, start: int, stop: int) -> np.ndarray:
        if self._rows is not None:
            return np.array(self._rows[start:stop])
        return self._index.reconstruct_n(start, stop - start)

    def take(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of the given rows, in that order."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if len(rows) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._rows is not None:
            return self._rows[rows]
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
        depth = min(self.size, k + RESCORE) if self.compressed else k
        with _one_thread():
            query = query.reshape(1, -1).astype(np.float32)
            scores, rows = self._index.search(query, depth, params=params)
        found = rows[0][rows[0] >= 0]  # an approximate index may find fewer than asked
        if not self.compressed:
            return found, scores[0][: len(found)]
        found = np.sort(found)  # by row: equal scores keep row order, as an exact search does
        exact = self._rows[found] @ query[0]
        best = np.argsort(-exact, kind="stable")[:k]
        return found[best], exact[best]


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


class RowWriter:
    """Float rows as they come: copied into one array (`array`), or written to a .npy file
    that is then read as a RowFile (`array`, once closed); with `keep=False`, only counted."""

    def __init__(self, n: int, dim: int, path: Path | None, keep: bool = True) -> None:
        self.n, self.dim, self.path, self.done, self.keep = n, dim, path, 0, keep
        self.array: np.ndarray | RowFile = np.zeros((0, dim), dtype=np.float32)

    def __enter__(self) -> RowWriter:
        if self.path is not None and self.keep:
            self._file = open(self.path, "wb")
            header = {"descr": "<f4", "fortran_order": False, "shape": (self.n, self.dim)}
            np.lib.format.write_array_header_1_0(self._file, header)
        elif self.keep:
            self.array = np.zeros((self.n, self.dim), dtype=np.float32)
        return self

    def write(self, block: np.ndarray) -> None:
        self.done += len(block)
        if self.done > self.n:
            raise ValueError(f"{self.n} rows announced, more given")
        if not self.keep:
            return
        if self.path is None:
            self.array[self.done - len(block) : self.done] = block
        else:
            self._file.write(memoryview(np.ascontiguousarray(block, dtype=np.float32)))

    def __exit__(self, *exc) -> None:
        if not self.keep or self.path is None:
            return
        self._file.close()
        if exc[0] is None and self.done == self.n:
            self.array = RowFile(self.path)


class RowFile:
    """The float32 rows of a .npy file, read as asked (`rows[i]`, `rows[a:b]`, `rows[array]`)
    with pread, not memory-mapped. A mapped file's pages count against the process once
    touched, and Linux maps a whole cached folio per touch (up to MBs): scattered reads of
    1M chunks' rows grew the process by 500 MB a question. Read, they stay in the page cache,
    which the kernel shares and reclaims."""

    def __init__(self, path: Path) -> None:
        self.filename = str(path)
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else None
            read = read or np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            self._start = f.tell()
        if dtype != np.float32 or fortran or len(shape) != 2:
            raise ValueError(f"{Path(path).name} holds {shape} {dtype} rows, not float32 rows")
        self.shape: tuple[int, int] = shape
        self._row_bytes = 4 * shape[1]
        self._fd: int | None = os.open(path, os.O_RDONLY)
        with contextlib.suppress(AttributeError, OSError):  # rows are read one here, one there:
            os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read-ahead around them

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                return self[np.arange(start, stop, step)]
            return self._read(start, max(stop - start, 0))
        rows = np.asarray(key)
        if rows.dtype == bool:  # a mask of every row
            if rows.shape != (len(self),):
                raise IndexError(f"a mask of {rows.shape} for {len(self)} rows")
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64)
        if rows.ndim == 0:
            return self[rows.reshape(1)][0]
        out = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            raise IndexError(f"rows outside 0..{len(self) - 1}")
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        for a, b in _runs(ordered, 1):  # consecutive rows: one read each
            out[order[a:b]] = self._read(int(ordered[a]), b - a)
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        rows = self[:]
        return rows if dtype is None else rows.astype(dtype)

    def _read(self, start: int, count: int) -> np.ndarray:
        size = count * self._row_bytes
        data = os.pread(self._fd, size, self._start + start * self._row_bytes)
        if len(data) != size:
            raise ValueError(f"{self.filename} ends before row {start + count}")
        return np.frombuffer(data, dtype=np.float32).reshape(count, self.shape[1])  # read-only

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)


def _lists(lists: faiss.InvertedLists, codes: bool = False) -> Iterator[tuple]:
    """(group, its rows, their codes or None) for each group of an IVF index that has rows;
    the arrays are copies."""
    for g in range(lists.nlist):
        size = lists.list_size(g)
        if not size:
            continue
        ids = lists.get_ids(g)
        rows = faiss.rev_swig_ptr(ids, size).copy()
        lists.release_ids(g, ids)
        found = None
        if codes:
            ptr = lists.get_codes(g)
            found = faiss.rev_swig_ptr(ptr, size * lists.code_size).reshape(size, -1).copy()
            lists.release_codes(g, ptr)
        yield g, rows, found


def _add_codes(index: faiss.IndexIVF, rows: np.ndarray, groups: np.ndarray, codes) -> None:
    """Rows already encoded into `index`'s lists: row `rows[i]` in group `groups[i]`."""
    order = np.argsort(groups, kind="stable")
    rows, groups = np.ascontiguousarray(rows[order]), groups[order]
    codes = np.ascontiguousarray(np.asarray(codes, dtype=np.uint8)[order])
    # rows and codes are held by name: a pointer into them does not keep them alive
    for a, b in _runs(groups, 0):
        index.invlists.add_entries(
            int(groups[a]), b - a, faiss.swig_ptr(rows[a:]), faiss.swig_ptr(codes[a:])
        )
    index.ntotal += len(rows)


def _runs(ordered: np.ndarray, step: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of each run of `ordered` whose next value is `step` more (0: equal values,
    1: consecutive ones); none for an empty array."""
    edges = (np.flatnonzero(np.diff(ordered) != step) + 1).tolist()
    if len(ordered):
        yield from zip([0, *edges], [*edges, len(ordered)], strict=True)


def _ivf_pq(quantizer: faiss.IndexFlatIP, nlist: int, m: int) -> faiss.IndexIVFPQ:
    """An inner-product IVF-PQ index over the groups `quantizer` holds (or will, once trained),
    `m` one-byte codes a vector; it owns the quantizer."""
    index = faiss.IndexIVFPQ(quantizer, quantizer.d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True
    quantizer.this.disown()
    return index


def _pq_bytes(dim: int) -> int:
    """Codes a vector: PQ_BYTES, or the largest number below it that divides `dim` (each code
    covers as many dimensions)."""
    return max(m for m in range(1, PQ_BYTES + 1) if dim % m == 0)


def rows_path(path: Path) -> Path:
    """The float rows file of an index file: dense.faiss -> dense.npy."""
    return Path(path).with_suffix(".npy")


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
