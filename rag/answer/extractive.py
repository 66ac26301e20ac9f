"""Stage 6: the extractive answer, the best lines of the top hits with [n], or a decline.

    answer = compose(question, hits, idf=engine.idf)
    answer.text        # "Max message size (256KB; 1KB-256KB) [1]"
    answer.citations   # [Citation(n=1, path='aws-notes.md', start_line=1693, ...)]

No line is invented: every part of the answer is a unit (a line with its parent bullets) of a
hit, cited to its exact span. When the evidence is weak the answer says so and lists the
nearest sections instead (`is_answerable`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

from rag.answer.base import NOT_IN_NOTES, Answer, Citation, Done, Exchange, Idf, marker
from rag.index.cutting import Unit
from rag.index.lexical import tokenize
from rag.search.engine import Hit

MAX_PARTS = 3
TOP_HITS = 3  # the hits an answer's lines, and its evidence, come from
CLOSE_TO_BEST = 0.85  # a further part must score at least this share of the best part
COSINE_WEIGHT = 5.0  # of a unit's cosine in its score, next to lexical coverage (0..1)
PARENT_SHARE = 0.3  # what a question term found only in a unit's parent bullets counts


class Extractive:
    """The Writer that quotes lines of the notes."""

    def write(
        self, question: str, hits: Sequence[Hit], idf: Idf, history: Sequence[Exchange] = ()
    ) -> Iterator[Done]:
        yield Done(compose(question, list(hits), idf))


@dataclass(frozen=True)
class Evidence:
    """Signals that the top hits really answer the question (see `confidence`)."""

    best_cosine: float  # best cosine of the question with a unit (line) of the top hits
    coverage: float  # share of the question's term weight found in one of the top hits, 0..1
    agreement: bool  # the top hit is among the first five of both legs
    unseen: float  # share of the question's terms that the notes never use, 0..1

    def features(self) -> tuple[float, ...]:
        return tuple(float(getattr(self, f.name)) for f in fields(self))

    def confidence(self) -> float:
        return sum(w * x for w, x in zip(WEIGHTS, self.features(), strict=True))


# A logistic fit on eval/questions.jsonl (395 questions, 39 the notes do not answer) by
# eval/calibrate.py, one weight per Evidence field; the threshold declines at most 5% of
# answerable ones (eval/README.md).
WEIGHTS = (4.702, 2.339, 0.082, -2.293)
THRESHOLD = 1.75


@dataclass(frozen=True)
class Part:
    """A candidate part of the answer: one unit of a hit, with what it is scored by."""

    hit_rank: int  # 1-based rank of the hit it came from
    hit: Hit
    unit: Unit
    display: str  # the unit's words with its parent bullets, as the answer shows them
    tokens: frozenset[str]
    parent_tokens: frozenset[str]
    cosine: float  # question vs the unit's vector (or the hit's, for a one-unit chunk)


def compose(question: str, hits: list[Hit], idf: Idf) -> Answer:
    """The extractive answer: the best-matching lines of the hits, each with a citation."""
    evidence = gather_evidence(question, hits, idf)
    if not hits or not is_answerable(evidence):
        return Answer(question, NOT_IN_NOTES, False, candidates=hits[:TOP_HITS], hits=hits)
    weights = _term_weights(question, idf)
    pool = [p for rank, hit in enumerate(hits[:TOP_HITS], 1) for p in candidates_of(hit, rank)]
    order = sorted(
        pool, key=lambda p: (_part_score(p, weights), -p.hit_rank, -p.unit.start_line), reverse=True
    )
    parts: list[Part] = []
    for part in order:
        if len(parts) == MAX_PARTS:
            break
        if parts and _part_score(part, weights) < CLOSE_TO_BEST * _part_score(parts[0], weights):
            break
        parts.append(part)
    citations = [
        Citation.of(n, p.hit.chunk, p.unit.start_line, p.unit.end_line)
        for n, p in enumerate(parts, 1)
    ]
    text = "\n".join(f"{p.display} {marker(n)}" for n, p in enumerate(parts, 1))
    return Answer(question, text, True, citations, hits=hits)


def gather_evidence(question: str, hits: list[Hit], idf: Idf) -> Evidence:
    weights = _term_weights(question, idf)
    total = sum(weights.values()) or 1.0
    coverage = best = 0.0
    for hit in hits[:TOP_HITS]:
        found = set(tokenize(hit.chunk.indexed_text))
        coverage = max(coverage, sum(w for t, w in weights.items() if t in found) / total)
        best = max(best, hit.cosine, *(hit.unit_scores or ()))
    top = hits[0] if hits else None
    agreement = bool(top and (top.bm25_rank or 99) <= 5 and (top.dense_rank or 99) <= 5)
    unseen = sum(1 for t in weights if idf(t) is None) / max(len(weights), 1)
    return Evidence(best, coverage, agreement, unseen)


def is_answerable(e: Evidence) -> bool:
    return e.confidence() >= THRESHOLD


def candidates_of(hit: Hit, rank: int) -> list[Part]:
    chunk = hit.chunk
    cosines = hit.unit_scores or (hit.cosine,) * len(chunk.units)
    return [
        Part(
            hit_rank=rank,
            hit=hit,
            unit=u,
            display=chunk.unit_display(u),
            tokens=frozenset(tokenize(chunk.unit_body(u))),
            parent_tokens=frozenset(tokenize(" ".join(u.parents))),
            cosine=cos,
        )
        for u, cos in zip(chunk.units, cosines, strict=True)
    ]


def _term_weights(question: str, idf: Idf) -> dict[str, float]:
    """Question terms weighted by rarity; a term the notes never use weighs the most."""
    rarity = {t: idf(t) for t in set(tokenize(question))}
    ceiling = max([w for w in rarity.values() if w is not None] + [1.0])
    return {t: ceiling if w is None else max(w, 0.01) for t, w in rarity.items()}


def _part_score(p: Part, weights: dict[str, float]) -> float:
    """Lexical coverage of the question's terms plus the unit's cosine (eval/README.md)."""
    total = sum(weights.values()) or 1.0
    own = sum(w for t, w in weights.items() if t in p.tokens)
    inherited = sum(w for t, w in weights.items() if t in p.parent_tokens and t not in p.tokens)
    return (own + PARENT_SHARE * inherited) / total + COSINE_WEIGHT * p.cosine
