"""Stage 5: rank chunks for a question with BM25, dense vectors, or both fused.

engine = Engine(load_index(...), embedder)
hits = engine.search("max sqs message size", k=5, mode="hybrid")
hits[0].chunk.heading   # ('AWS Notes', 'Integration and Messaging', 'SQS -- ...')
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from rag.index.cutting import Chunk
from rag.index.dense import MultiVectorIndex
from rag.index.embedding import Embedder
from rag.index.lexical import LexicalIndex, Postings, tokenize
from rag.index.store import (
    IndexIncompatible,
    IndexMissing,
    IndexProblem,
    StoredIndex,
    incompatibility,
    load_index,
    read_manifest,
    unit_counts,
)
from rag.notes import require_notes
from rag.search.fusion import max_blend, ranked, rrf
from rag.search.glossary import Glossary
from rag.settings import MODES, Mode, Settings

MAX_QUESTION_CHARS = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # the score the ranking was made by (fused for hybrid)
    bm25_rank: int | None = None  # 1-based rank in each leg's candidates; None if not there
    dense_rank: int | None = None
    bm25_score: float | None = None
    dense_score: float | None = None  # the dense leg's score: chunk and best-unit cosines mixed
    cosine: float = 0.0  # question vs the chunk's own vector, whatever the mode
    unit_scores: tuple[float, ...] | None = None  # question vs each unit (rag.index.units), if any


@dataclass(frozen=True)
class Question:
    text: str
    notices: tuple[str, ...] = ()


def prepare_question(raw: str) -> Question:
    """Strip control characters and cap the length; an empty question is a ValueError."""
    text = _CONTROL.sub(" ", raw or "").strip()
    text = re.sub(r"[ \t]+", " ", text)
    if not text:
        raise ValueError("the question is empty: type what you want to find in your notes")
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

    fusion: Literal["blend", "rrf"] = "blend"
    bm25_weight: float = 0.3  # share of the BM25 leg in the blend; dense gets the rest
    chunk_weight: float = 0.5  # share of a chunk's own vector in its dense score; units: the rest
    k1: float = 0.9  # BM25 term saturation (Anserini's defaults suit short chunks)
    b: float = 0.4  # BM25 length normalisation
    depth: int = 100  # candidates taken from each leg before fusing
    rrf_k: float = 60.0
    expand_acronyms: bool = False  # add the notes' own spelling-out of acronyms to the question


class Engine:
    """The retrieval engine over one loaded index generation."""

    def __init__(self, index: StoredIndex, embedder: Embedder, tuning: Tuning = Tuning()):
        self.index = index
        self.chunks: list[Chunk] = index.chunks
        self.embedder = embedder
        # A generation written by this rag has both saved; an older one has them derived.
        counts = unit_counts(self.chunks) if index.unit_counts is None else index.unit_counts
        self.dense = MultiVectorIndex(index.dense, index.units, counts, tuning.chunk_weight)
        postings = index.postings
        if postings is None:
            postings = Postings.from_docs([tokenize(c.indexed_text) for c in self.chunks])
        self.lexical = LexicalIndex.from_postings(postings, k1=tuning.k1, b=tuning.b)
        # Off by default (eval/README.md): built only when asked for.
        self.glossary = (
            Glossary.from_texts(c.text for c in self.chunks) if tuning.expand_acronyms else None
        )
        self.tuning = tuning

    def search(self, question: str, k: int = 5, mode: Mode = "hybrid") -> list[Hit]:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        t = self.tuning
        query = self.glossary.expand(question) if self.glossary else question
        depth = max(t.depth, k)
        lex: dict[int, tuple[int, float]] = {}  # row -> (1-based rank, score) in each leg
        den: dict[int, tuple[int, float]] = {}
        vector = self.embedder.embed([query])[0]  # bm25 mode too: answers weigh cosines
        if mode != "dense":
            lex = _leg(*self.lexical.search(tokenize(query), depth))
        if mode != "bm25":
            den = _leg(*self.dense.search(vector, depth))
        if mode != "hybrid":
            order = [(row, score) for row, (_, score) in (lex or den).items()]
        elif t.fusion == "rrf":
            order = ranked(rrf([list(lex), list(den)], k=t.rrf_k))
        else:
            legs = [{r: s for r, (_, s) in leg.items()} for leg in (lex, den)]
            order = ranked(max_blend(legs, [t.bm25_weight, 1 - t.bm25_weight]))
        return [self._hit(row, score, lex, den, vector) for row, score in order[:k]]

    def _hit(self, row: int, score: float, lex: dict, den: dict, vector: np.ndarray) -> Hit:
        b, d = lex.get(row), den.get(row)
        units = self.dense.unit_scores(vector, row)
        return Hit(
            chunk=self.chunks[row],
            score=score,
            bm25_rank=b[0] if b else None,
            dense_rank=d[0] if d else None,
            bm25_score=b[1] if b else None,
            dense_score=d[1] if d else None,
            cosine=self.dense.chunk_score(vector, row),
            unit_scores=tuple(units.tolist()) if units is not None else None,
        )

    def idf(self, token: str) -> float | None:
        return self.lexical.idf(token)


def _leg(rows, scores) -> dict[int, tuple[int, float]]:
    return {int(r): (n, float(s)) for n, (r, s) in enumerate(zip(rows, scores, strict=True), 1)}


def _only_chunker_changed(settings: Settings, embedder) -> bool:
    """True when the index only needs re-cutting: its vectors are still this model's."""
    try:
        return (
            incompatibility(read_manifest(settings.index_dir), embedder.name, embedder.dim, None)
            is None
        )
    except IndexProblem:
        return False


def open_engine(settings: Settings, log: Callable[[str], None] = print) -> Engine:
    """Load the model and the index once; a missing index is built first, with a message."""
    from rag.index.build import update_index
    from rag.index.embedding import SentenceTransformerEmbedder

    require_notes(settings.notes_dir)  # before the model: a wrong --notes fails at once
    embedder = SentenceTransformerEmbedder(settings.model)
    tokens = settings.max_chunk_tokens
    try:
        index = load_index(settings.index_dir, embedder.name, embedder.dim, tokens)
    except (IndexMissing, IndexIncompatible) as e:
        if isinstance(e, IndexIncompatible) and not _only_chunker_changed(settings, embedder):
            raise  # another model or format: re-embedding everything is the user's call
        if isinstance(e, IndexMissing):
            log(f"No index in {settings.index_dir} yet: building it from {settings.notes_dir} ...")
        else:
            log(f"{e.reason}: updating the index (unchanged text keeps its vectors) ...")
        report = update_index(settings.notes_dir, settings.index_dir, embedder, tokens)
        log(f"Indexed {report.files} files into {report.chunks} chunks in {report.seconds:.1f}s.")
        index = load_index(settings.index_dir, embedder.name, embedder.dim, tokens)
    return Engine(index, embedder)
