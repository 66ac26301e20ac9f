"""Stage 5: rank chunks for a question with BM25, dense vectors, or both fused.

    engine = Engine(load_index(...), embedder)
    hits = engine.search("max sqs message size", k=5, mode="hybrid")
    hits[0].chunk.heading   # ('AWS Notes', 'Integration and Messaging', 'SQS -- ...')
    engine.within(mask).search("retry backoff")   # only the rows a filter allows, in both legs

Each leg takes its best `depth` chunks; hybrid blends the two scores, each divided by its
leg's best (`rag.search.fusion`). A Hit also carries what the answer stage weighs: the
question's cosine with the chunk and with each of its units.
"""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.errors import BadInput
from rag.index.cutting import Chunk
from rag.index.dense import MultiVectorIndex
from rag.index.embedding import Embedder
from rag.index.lexical import K1, B, LexicalIndex, tokenize
from rag.index.store import StoredIndex
from rag.search.fusion import max_blend, ranked
from rag.search.terms import NoteWords
from rag.settings import Mode, check_mode

MAX_QUESTION_CHARS = 2000
# Control characters, and lone surrogates: an undecodable byte in argv arrives as one
# (surrogateescape), a JSON "\ud800" too, and the tokenizer cannot take them.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # the score the ranking was made by (fused for hybrid)
    bm25_rank: int | None = None  # 1-based rank in each leg's candidates; None if not there
    dense_rank: int | None = None
    cosine: float = 0.0  # question vs the chunk's own vector, whatever the mode
    unit_scores: tuple[float, ...] | None = None  # question vs each unit with a vector


@dataclass(frozen=True)
class Question:
    text: str
    notices: tuple[str, ...] = ()


def prepare_question(raw: str) -> Question:
    """Strip control characters and lone surrogates, and cap the length; an empty question
    is BadInput."""
    text = _CONTROL.sub(" ", raw or "").strip()
    text = re.sub(r"[ \t]+", " ", text)
    if not text:
        raise BadInput("the question is empty: type what you want to find in your notes")
    notices = []
    if len(text) > MAX_QUESTION_CHARS:
        text = text[:MAX_QUESTION_CHARS]
        notices.append(
            f"the question was over {MAX_QUESTION_CHARS} characters and was cut to "
            f"its first {MAX_QUESTION_CHARS}"
        )
    return Question(text, tuple(notices))


@dataclass(frozen=True)
class Tuning:
    """Retrieval knobs, each chosen by measurement (eval/README.md)."""

    bm25_weight: float = 0.3  # share of the BM25 leg in the blend; dense gets the rest
    chunk_weight: float = 0.5  # share of a chunk's own vector in its dense score; units: the rest
    k1: float = K1
    b: float = B
    depth: int = 100  # candidates taken from each leg before fusing


class Engine:
    """The retrieval engine over one loaded index generation. Searches are serialised: the
    embedder and FAISS's per-call thread setting are shared by every caller."""

    def __init__(self, index: StoredIndex, embedder: Embedder, tuning: Tuning = Tuning()):
        self.index = index
        self.chunks: Sequence[Chunk] = index.chunks  # a ChunkFile reads rows as asked
        self.embedder = embedder
        self.dense = MultiVectorIndex(
            index.dense, index.units, index.unit_counts, tuning.chunk_weight
        )
        self.lexical = LexicalIndex(index.postings, k1=tuning.k1, b=tuning.b)
        self.words = NoteWords(self.lexical)  # the notes' vocabulary: spelling, rare terms
        self.tuning = tuning
        self.allowed: np.ndarray | None = None  # a bool per chunk row: what a search may find
        self._lock = threading.Lock()
        self._pending_units: dict[int, np.ndarray] = {}  # row -> unit vectors made on demand

    def within(self, allowed: np.ndarray) -> Engine:
        """This engine, searching only the rows `allowed` marks (`rag.search.filters`): each
        leg takes its best allowed rows before fusion, so a filtered question still gets k."""
        if len(allowed) != len(self.chunks):
            raise ValueError(f"a mask of {len(allowed)} rows for {len(self.chunks)} chunks")
        view = copy.copy(self)  # the same index, embedder and lock
        view.allowed = np.asarray(allowed, dtype=bool)
        return view

    def search(self, question: str, k: int = 5, mode: Mode = "hybrid") -> list[Hit]:
        check_mode(mode)
        with self._lock:
            return self._search(question, k, mode)

    def _search(self, question: str, k: int, mode: Mode) -> list[Hit]:
        t = self.tuning
        depth = max(t.depth, k)
        lex: dict[int, tuple[int, float]] = {}  # row -> (1-based rank, score) in each leg
        den: dict[int, tuple[int, float]] = {}
        vector = self.embedder.embed([question])[0]  # bm25 mode too: answers weigh cosines
        if mode != "dense":
            lex = _leg(*self.lexical.search(tokenize(question), depth, self.allowed))
        if mode != "bm25":
            den = _leg(*self.dense.search(vector, depth, self.allowed))
        if mode == "hybrid":
            legs = [{r: s for r, (_, s) in leg.items()} for leg in (lex, den)]
            order = ranked(max_blend(legs, [t.bm25_weight, 1 - t.bm25_weight]))
        else:
            leg = lex if mode == "bm25" else den
            order = [(row, score) for row, (_, score) in leg.items()]
        self._embed_pending_units([row for row, _ in order[:k]])
        return [self._hit(row, score, lex, den, vector) for row, score in order[:k]]

    def _hit(self, row: int, score: float, lex: dict, den: dict, vector: np.ndarray) -> Hit:
        b, d = lex.get(row), den.get(row)
        units = self.dense.unit_scores(vector, row)
        if row in self._pending_units:  # a first pass left them out
            units = self._pending_units[row] @ vector
        return Hit(
            chunk=self.chunks[row],
            score=score,
            bm25_rank=b[0] if b else None,
            dense_rank=d[0] if d else None,
            cosine=self.dense.chunk_score(vector, row),
            unit_scores=tuple(units.tolist()) if units is not None else None,
        )

    def _embed_pending_units(self, rows: list[int]) -> None:
        """The unit vectors of hits a first pass has none for, embedded the first time each is
        a hit (in one call: tens of ms), so that an answer picks its lines as it will once
        the line vectors are in, not by words alone. Only the search itself stays a first
        pass's. Kept for the engine's life; called under its lock."""
        counts, cache = self.index.unit_counts, self._pending_units
        rows = [r for r in rows if not counts[r] and r not in cache and self.chunks[r].vector_units]
        texts = {
            r: [self.chunks[r].unit_indexed_text(u) for u in self.chunks[r].vector_units]
            for r in rows
        }
        if not texts:
            return
        vectors = self.embedder.embed_documents([t for each in texts.values() for t in each])
        at = 0
        for row, each in texts.items():
            cache[row], at = vectors[at : at + len(each)], at + len(each)


def _leg(rows: np.ndarray, scores: np.ndarray) -> dict[int, tuple[int, float]]:
    return {int(r): (n, float(s)) for n, (r, s) in enumerate(zip(rows, scores, strict=True), 1)}
