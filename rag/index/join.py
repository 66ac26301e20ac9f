"""A base segment and the delta segments after it read as one index, as a rewrite would be.

    view = Joined.of([base, delta1, delta2], files, owner)
    view.chunks            # note by note: each note's chunks from the part that owns it
    view.dense.search(q)   # rows of the view; an edited note's old rows never come up

A one-line edit in a large index writes only a delta: the chunks of the notes that edit
changed (`rag.index.build`), beside the files of the base and of earlier deltas, linked and not
copied. Reading the generation joins them: a note is owned by the newest delta that lists it,
else by the base. Rows are in the order a rewrite would give them (note by note, as the
manifest lists the notes), so the join answers exactly as the rewrite would: the same chunks,
the same vectors, BM25 over the live chunks only (an edited note's old chunks count in no
statistic); only the sum of idfs (rank-bm25's floor for a negative idf) may differ in its last
bits, as its terms are summed in another order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from rag.index.chunkfile import chunk_paths
from rag.index.cutting import Chunk
from rag.index.dense import DenseIndex
from rag.index.lexical import Postings


@dataclass(eq=False)
class Segment:
    """What one folder of a generation holds: chunks, their vectors and postings, in row order."""

    chunks: Sequence[Chunk]  # a list, or a ChunkFile (rag.index.chunkfile)
    dense: DenseIndex
    units: DenseIndex
    postings: Postings
    unit_counts: np.ndarray
    name: str = ""  # "" for the base, else the delta's folder

    @cached_property
    def spans(self) -> dict[str, tuple[int, int]]:
        """Note path -> its rows (start, stop): a note's chunks are written together."""
        spans: dict[str, tuple[int, int]] = {}
        for row, path in enumerate(chunk_paths(self.chunks)):
            start = spans.get(path, (row, row))[0]
            spans[path] = (start, row + 1)
        return spans

    @cached_property
    def lines_pending(self) -> int:
        """Unit (line) vectors a first pass left out. Counted once: the status line asks for
        it every few seconds, and a server keeps the parts it has read."""
        expected = sum(len(c.vector_units) for c in self.chunks)
        return int(expected - int(np.asarray(self.unit_counts).sum()))

    @cached_property
    def first_unit(self) -> np.ndarray:
        """Row -> the row of its first unit vector (and one past the last row)."""
        return np.concatenate([[0], np.cumsum(self.unit_counts, dtype=np.int64)])


class JoinedDense:
    """Rows of several DenseIndexes searched as one: row r is row `local[r]` of part
    `part[r]`. A part's rows that the join leaves out are excluded from its searches by a
    FAISS selector, so a search still returns k rows of the join."""

    def __init__(self, parts: list[DenseIndex], part: np.ndarray, local: np.ndarray) -> None:
        self.parts, self.part, self.local = parts, part, local
        self.joined: list[np.ndarray] = []  # per part: its row -> row of the join, or -1
        self._keep: list[np.ndarray | None] = []  # per part: bitmap of its joined rows
        self._alive: list[int] = []  # per part: how many of its rows are joined
        for p, index in enumerate(parts):
            back = np.full(index.size, -1, dtype=np.int64)
            mine = np.flatnonzero(part == p)
            back[local[mine]] = mine
            self.joined.append(back)
            kept = back >= 0
            self._alive.append(len(mine))
            self._keep.append(None if kept.all() else np.packbits(kept, bitorder="little"))

    @property
    def size(self) -> int:
        return len(self.part)

    @property
    def dim(self) -> int:
        return self.parts[0].dim

    @property
    def approximate(self) -> bool:
        return any(p.approximate for p in self.parts)

    @property
    def probes(self) -> tuple[int, int]:
        return self.parts[0].probes

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        found, scores = [], []
        for p, index in enumerate(self.parts):
            if not self._alive[p]:
                continue  # every row of it left out: a note edited twice, say
            rows, s = index.search(query, k, keep=self._keep[p])
            found.append(self.joined[p][rows])
            scores.append(s)
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        rows, s = np.concatenate(found), np.concatenate(scores)
        order = np.lexsort((rows, -s))[: min(k, self.size)]
        return rows[order], s[order]

    def take(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        parts = self.part[rows]
        for p, index in enumerate(self.parts):
            mine = parts == p
            if mine.any():
                out[mine] = index.take(self.local[rows[mine]])
        return out

    def rows(self, start: int, stop: int) -> np.ndarray:
        return self.take(np.arange(start, stop))

    def vectors(self) -> np.ndarray:
        return self.take(np.arange(self.size))

    def groups(self, rows: np.ndarray) -> np.ndarray:
        """The group of each given row in the base (`parts[0]`); -1 for a delta's rows."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.full(len(rows), -1, dtype=np.int64)
        mine = self.part[rows] == 0
        out[mine] = self.parts[0].groups(self.local[rows[mine]])
        return out

    def codes(self, rows: np.ndarray) -> np.ndarray:
        """The PQ codes of the given rows, each a row of the base (rows with a group)."""
        rows = np.asarray(rows, dtype=np.int64)
        if (self.part[rows] != 0).any():
            raise ValueError("only the base's rows have codes")
        return self.parts[0].codes(self.local[rows])

    @property
    def grouped(self) -> DenseIndex:
        """The index whose groups `groups` names."""
        return self.parts[0]


class JoinedChunks(Sequence[Chunk]):
    """Chunks of several parts as one sequence: row r is row `local[r]` of part `part[r]`."""

    def __init__(self, parts: list[Sequence[Chunk]], part: np.ndarray, local: np.ndarray):
        self.parts, self.part, self.local = parts, part, local

    def __len__(self) -> int:
        return len(self.part)

    def __getitem__(self, row):  # int -> Chunk; slice -> list[Chunk]
        if isinstance(row, slice):
            return [self[r] for r in range(*row.indices(len(self)))]
        return self.parts[int(self.part[row])][int(self.local[row])]

    @cached_property
    def paths(self) -> list[str]:
        """Each row's note path (chunkfile.chunk_paths), its parts' rows left unparsed."""
        paths = [chunk_paths(p) for p in self.parts]
        return [paths[p][r] for p, r in zip(self.part.tolist(), self.local.tolist(), strict=True)]


@dataclass
class Joined:
    chunks: Sequence[Chunk]
    dense: JoinedDense
    units: JoinedDense
    postings: Postings
    unit_counts: np.ndarray

    @classmethod
    def of(cls, parts: list[Segment], files: Iterable[str], owner: dict[str, int]) -> Joined:
        """Each note of `files` (in that order) from the part `owner` names (the base, 0, if
        none); a note its part has no chunks of has none (removed, or emptied)."""
        which, starts, stops = [], [], []
        for f in files:
            p = owner.get(f, 0)
            if f in parts[p].spans:
                which.append(p)
                starts.append(parts[p].spans[f][0])
                stops.append(parts[p].spans[f][1])
        starts = np.array(starts, dtype=np.int64)
        lengths = np.array(stops, dtype=np.int64) - starts
        part, local = _expand(np.array(which, dtype=np.int8), starts, lengths)
        counts = np.zeros(len(part), dtype=np.int64)
        unit_starts = np.zeros(len(part), dtype=np.int64)
        for p, segment in enumerate(parts):
            mine = part == p
            counts[mine] = segment.unit_counts[local[mine]]
            unit_starts[mine] = segment.first_unit[local[mine]]
        unit_part, unit_local = _expand(part, unit_starts, counts)
        chunks: Sequence[Chunk]
        if all(isinstance(s.chunks, list) for s in parts):
            pairs = zip(part.tolist(), local.tolist(), strict=True)
            chunks = [parts[p].chunks[r] for p, r in pairs]
        else:  # a large part's chunks are read as asked for (rag.index.chunkfile): so are these
            chunks = JoinedChunks([s.chunks for s in parts], part, local)
        dense = JoinedDense([s.dense for s in parts], part, local)
        units = JoinedDense([s.units for s in parts], unit_part, unit_local)
        postings = join_postings([s.postings for s in parts], dense.joined, len(chunks))
        return cls(chunks, dense, units, postings, counts)


def _expand(which: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, ...]:
    """Runs of rows (part, first row, how many) as a row-by-row part and row."""
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    total = int(lengths.sum())
    local = np.arange(total, dtype=np.int64) + np.repeat(starts - offsets, lengths)
    return np.repeat(which, lengths), local


def join_postings(parts: list[Postings], joined: list[np.ndarray], n: int) -> Postings:
    """One inverted index over `n` documents from the parts' postings: document d of part p is
    document `joined[p][d]`, or dropped when that is -1; a term left in no document is dropped.
    Documents within a term are not in ascending order (nothing needs them to be)."""
    vocab = dict(parts[0].vocab)
    terms, docs, tfs = [], [], []
    doc_len = np.zeros(n, dtype=np.int64)
    for p, postings in enumerate(parts):
        ids = (
            np.arange(len(postings.vocab), dtype=np.int64)
            if p == 0
            else np.fromiter(
                (vocab.setdefault(t, len(vocab)) for t in postings.vocab), dtype=np.int64
            )
        )
        where = joined[p][np.asarray(postings.docs)]
        kept = where >= 0
        term_of = np.repeat(ids, np.diff(postings.indptr))
        terms.append(term_of[kept])
        docs.append(where[kept].astype(np.int32))
        tfs.append(np.asarray(postings.tfs)[kept])
        alive = joined[p] >= 0
        doc_len[joined[p][alive]] = np.asarray(postings.doc_len)[alive]
    term_of = np.concatenate(terms)
    order = np.argsort(term_of, kind="stable")  # the base's run is sorted already
    term_of = term_of[order]
    df = np.bincount(term_of, minlength=len(vocab))
    if not df.all():  # terms only an edited note's old text had
        new_id = np.cumsum(df > 0) - 1
        vocab = {t: int(new_id[i]) for t, i in vocab.items() if df[i]}
        df = df[df > 0]
    indptr = np.zeros(len(df) + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    return Postings(vocab, indptr, np.concatenate(docs)[order], np.concatenate(tfs)[order], doc_len)
