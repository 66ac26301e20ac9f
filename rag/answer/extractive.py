"""Stage 6: compose a short extractive answer from the best lines of the top hits, with [n].

    answer = compose(question, hits, idf=engine.idf)
    answer.text        # "Max message size (256KB; 1KB-256KB) [1]"
    answer.citations   # [Citation(n=1, path='aws-notes.md', start_line=1691, ...)]

No line is invented: every part of the answer is a line of a note, cited to its exact span.
When the evidence is weak the answer says so and lists the nearest sections instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rag.index.cutting import location
from rag.index.lexical import tokenize
from rag.index.units import Unit, units_of
from rag.search.engine import Engine, Hit, prepare_question
from rag.settings import Mode

NOT_IN_NOTES = "Not in your notes: nothing there answers this question."
MAX_PARTS = 3
COSINE_WEIGHT = 5.0  # of a unit's cosine in its score, next to lexical coverage (0..1)


@dataclass(frozen=True)
class Citation:
    n: int
    path: str
    heading: tuple[str, ...]
    start_line: int  # the answering lines, 1-based inclusive
    end_line: int
    text: str  # those lines as they are in the note
    excerpt: str  # the whole chunk they came from, for context
    excerpt_start_line: int
    excerpt_end_line: int

    @property
    def location(self) -> str:
        return location(self.path, self.start_line, self.end_line)


@dataclass(frozen=True)
class Evidence:
    """Signals that the top hits really answer the question (see `confidence`)."""

    best_cosine: float  # best cosine of the question with a unit (line) of the top hits
    coverage: float  # share of the question's term weight found in one of the top hits, 0..1
    agreement: bool  # the top hit is among the first five of both legs
    unseen: float  # share of the question's terms that the notes never use, 0..1


# A logistic fit on eval/questions.jsonl (395 questions, 39 the notes do not answer) by
# eval/calibrate.py; the threshold declines at most 5% of answerable ones (eval/README.md).
WEIGHTS = {"best_cosine": 4.702, "coverage": 2.339, "agreement": 0.082, "unseen": -2.293}
THRESHOLD = 1.75


@dataclass
class Answer:
    question: str
    text: str
    answered: bool
    citations: list[Citation] = field(default_factory=list)
    candidates: list[Hit] = field(default_factory=list)  # the nearest chunks, when declined
    evidence: Evidence | None = None
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Part:
    """A candidate part of the answer: one unit of a hit, with what it is scored by."""

    hit_rank: int  # 1-based rank of the hit it came from
    hit: Hit
    unit: Unit
    tokens: frozenset[str]
    parent_tokens: frozenset[str]
    cosine: float  # question vs the unit's vector (or the hit's, for a one-unit chunk)


def ask(engine: Engine, raw_question: str, k: int = 5, mode: Mode = "hybrid") -> Answer:
    """Clean the question, search, and compose: what `rag ask` and the chat page both do.

    A question that is empty after clean-up is a ValueError, and nothing is searched.
    """
    question = prepare_question(raw_question)
    answer = compose(question.text, engine.search(question.text, k=k, mode=mode), engine.idf)
    answer.notices = question.notices
    return answer


def compose(question: str, hits: list[Hit], idf: Callable[[str], float | None]) -> Answer:
    """The extractive answer: the best-matching lines of the hits, each with a citation."""
    evidence = gather_evidence(question, hits, idf)
    if not hits or not is_answerable(evidence):
        return Answer(question, NOT_IN_NOTES, False, candidates=hits[:3], evidence=evidence)
    weights = _term_weights(question, idf)
    pool = [p for rank, hit in enumerate(hits[:3], 1) for p in candidates_of(hit, rank)]
    scored = sorted(
        ((_part_score(p, weights), -p.hit_rank, -p.unit.start_line, p) for p in pool),
        key=lambda t: t[:3],
        reverse=True,
    )
    parts: list[Part] = []
    for score, *_, part in scored:
        if len(parts) == MAX_PARTS or (parts and score < 0.85 * _part_score(parts[0], weights)):
            break
        parts.append(part)
    citations = [_cite(n, p) for n, p in enumerate(parts, 1)]
    text = "\n".join(f"{p.unit.display} [{n}]" for n, p in enumerate(parts, 1))
    return Answer(question, text, True, citations, evidence=evidence)


def gather_evidence(question: str, hits: list[Hit], idf: Callable[[str], float | None]) -> Evidence:
    weights = _term_weights(question, idf)
    total = sum(weights.values()) or 1.0
    coverage = best = 0.0
    for hit in hits[:3]:
        found = set(tokenize(hit.chunk.indexed_text))
        coverage = max(coverage, sum(w for t, w in weights.items() if t in found) / total)
        best = max(best, hit.cosine, *(hit.unit_scores or ()))
    top = hits[0] if hits else None
    agreement = bool(top and (top.bm25_rank or 99) <= 5 and (top.dense_rank or 99) <= 5)
    unseen = sum(1 for t in weights if idf(t) is None) / max(len(weights), 1)
    return Evidence(best, coverage, agreement, unseen)


def confidence(e: Evidence) -> float:
    return sum(w * float(getattr(e, name)) for name, w in WEIGHTS.items())


def is_answerable(e: Evidence) -> bool:
    return confidence(e) >= THRESHOLD


def candidates_of(hit: Hit, rank: int) -> list[Part]:
    units = units_of(hit.chunk)
    cosines = hit.unit_scores or (hit.cosine,) * len(units)
    return [
        Part(
            hit_rank=rank,
            hit=hit,
            unit=u,
            tokens=frozenset(tokenize(u.body)),
            parent_tokens=frozenset(tokenize(" ".join(u.parents))),
            cosine=cos,
        )
        for u, cos in zip(units, cosines, strict=True)
    ]


def _term_weights(question: str, idf: Callable[[str], float | None]) -> dict[str, float]:
    """Question terms weighted by rarity; a term the notes never use weighs the most."""
    rarity = {t: idf(t) for t in set(tokenize(question))}
    ceiling = max([w for w in rarity.values() if w is not None] + [1.0])
    return {t: ceiling if w is None else max(w, 0.01) for t, w in rarity.items()}


def _part_score(p: Part, weights: dict[str, float]) -> float:
    """Lexical coverage of the question's terms plus the unit's cosine (eval/README.md)."""
    total = sum(weights.values()) or 1.0
    own = sum(w for t, w in weights.items() if t in p.tokens)
    inherited = sum(w for t, w in weights.items() if t in p.parent_tokens and t not in p.tokens)
    return (own + 0.3 * inherited) / total + COSINE_WEIGHT * p.cosine


def _cite(n: int, p: Part) -> Citation:
    c, u = p.hit.chunk, p.unit
    return Citation(
        n, c.path, c.heading, u.start_line, u.end_line, u.text, c.text, c.start_line, c.end_line
    )


def hit_json(h: Hit) -> dict:
    c = h.chunk
    return {
        "path": c.path,
        "heading": list(c.heading),
        "start_line": c.start_line,
        "end_line": c.end_line,
        "score": round(h.score, 6),
        "text": c.text,
        "bm25_rank": h.bm25_rank,
        "dense_rank": h.dense_rank,
    }


def answer_json(a: Answer) -> dict:
    """The `rag ask --json` schema."""
    out = {
        "question": a.question,
        "answer": a.text,
        "answered": a.answered,
        "citations": [
            {
                "n": c.n,
                "path": c.path,
                "heading": list(c.heading),
                "start_line": c.start_line,
                "end_line": c.end_line,
                "text": c.text,
            }
            for c in a.citations
        ],
        "candidates": [hit_json(h) for h in a.candidates],
    }
    if a.notices:
        out["notices"] = list(a.notices)
    return out
