"""How well each line of the top hits answers the question, and whether any of them does.

    q = read_question("max lambda timeout", engine.words)
    ranked = rank_units(q, hits)                 # Candidates, best first
    verdict = judge(q, ranked, hits)
    verdict.status, verdict.missing              # "answered" | "partial" | "not_found", terms

Every candidate is a unit (a line with its parent bullets, or a fenced block) of the top hits,
described by a few numbers (`FEATURES`): its cosine with the question, how much of the
question's term weight it, its parents and its heading path hold, whether it states a quantity
when one is asked, and so on. A linear score ranks them; the verdict is a logistic rule over
the best candidate's evidence. Both sets of weights were fitted by `eval/fit_answer.py` on the
tuning part of the eval set only; nothing here names a subject, a question or a domain word.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import pairwise

from rag.answer.base import Status
from rag.index.cutting import Chunk, Unit, strip_marker
from rag.index.lexical import note_tokens, tokenize
from rag.search.engine import Hit
from rag.search.terms import NoteWords, is_everyday, is_name, is_salient

TOP_HITS = 5  # the hits whose units are candidates
PARENT_REACH = 2  # a parent bullet this close above its line is cited with it
TABLE_LINES = 12  # a table row is cited with its whole table up to this many lines
MISSING_SHOWN = 3  # the asked terms a partial answer names as missing, rarest first
# English question forms that ask for an amount (any subject's notes state amounts in digits).
_QUANTITY = re.compile(
    r"\b(?:how (?:many|much|long|big|large|small|often|old|fast|far)|max(?:imum)?|min(?:imum)?|"
    r"limits?|size|default|number of|count|up to|at most|at least|largest|smallest|biggest|"
    r"longest|shortest)\b",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")

FEATURES = (
    "cosine",  # the question's cosine with the unit's vector (its chunk's, for a one-unit chunk)
    "own",  # share of the question's term weight in the unit's own words
    "parents",  # ... found only in its parent bullets
    "context",  # ... found only in its heading path
    "hit_score",  # its hit's fused score, over the top hit's
    "chunk_cosine",  # the question's cosine with the whole chunk
    "best_in_chunk",  # the best unit cosine in its chunk
    "first_hit",  # 1 / the rank of its hit
    "has_number",  # the unit states a number
    "quantity_match",  # a quantity is asked and the unit states a number
    "length",  # log(1 + words in the unit)
    "salient",  # share of the question's salient terms in the unit, its parents or its path
    "bigrams",  # share of the question's adjacent term pairs the unit repeats
    "new_words",  # share of the unit's terms that are not the question's: what it adds
)
# Fitted by eval/fit_answer.py on the tuning part (a softmax over each question's candidates).
# fitted: units
UNIT_WEIGHTS = {
    "cosine": 15.6765,
    "own": 4.5194,
    "parents": 5.3457,
    "context": 3.6258,
    "hit_score": 1.1284,
    "chunk_cosine": 6.6939,
    "best_in_chunk": 2.8517,
    "first_hit": 0.4941,
    "has_number": 0.4359,
    "quantity_match": 2.5785,
    "length": 0.364,
    "salient": 0.8784,
    "bigrams": 1.3617,
    "new_words": -0.4364,
}
# end


@dataclass(frozen=True)
class Candidate:
    hit: Hit
    hit_rank: int  # 1-based
    unit: Unit
    features: tuple[float, ...]  # in FEATURES order
    score: float  # UNIT_WEIGHTS . features
    display: str  # the unit's words with its parent bullets, as the answer shows them
    span: tuple[int, int]  # the lines its citation covers (`cited_span`)


@dataclass(frozen=True)
class Question:
    """What the answer stage reads in a question."""

    text: str
    weights: dict[str, float]  # term -> how much finding it counts (rarer in the notes: more)
    salient: tuple[str, ...]  # the terms that name something
    unknown: tuple[str, ...]  # salient terms the notes never use
    unseen: float  # share of all its terms the notes never use
    unseen_rare: int  # its terms the notes never use that are not everyday English either
    quantity: bool  # it asks for an amount


def read_question(text: str, words: NoteWords) -> Question:
    rarity = {t: words.idf(t) for t in dict.fromkeys(tokenize(text))}
    ceiling = max([w for w in rarity.values() if w is not None] + [1.0])
    weights = {t: ceiling if w is None else max(w, 0.01) for t, w in rarity.items()}
    salient = tuple(t for t in weights if is_salient(t))
    unknown = tuple(t for t in salient if not words.known(t))
    unseen = [t for t, w in rarity.items() if w is None]
    rare = sum(1 for t in unseen if not is_everyday(t))
    share = len(unseen) / max(len(rarity), 1)
    return Question(text, weights, salient, unknown, share, rare, bool(_QUANTITY.search(text)))


def rank_units(q: Question, hits: list[Hit]) -> list[Candidate]:
    """Every unit of the top hits, best first."""
    out = []
    top = hits[0].score if hits and hits[0].score > 0 else 1.0
    for rank, hit in enumerate(hits[:TOP_HITS], 1):
        chunk = hit.chunk
        cosines = hit.unit_scores or (hit.cosine,) * len(chunk.units)
        best = max(cosines, default=hit.cosine)
        context = set(note_tokens(chunk.context))
        for unit, cosine in zip(chunk.units, cosines, strict=True):
            f = unit_features(q, hit, unit, cosine, hit.score / top, rank, best, context)
            score = sum(UNIT_WEIGHTS[name] * x for name, x in zip(FEATURES, f, strict=True))
            display, span = chunk.unit_display(unit), cited_span(chunk, unit)
            out.append(Candidate(hit, rank, unit, f, score, display, span))
    return sorted(out, key=lambda c: (-c.score, c.hit_rank, c.unit.start_line))


def unit_features(
    q: Question,
    hit: Hit,
    unit: Unit,
    cosine: float,
    hit_score: float,
    rank: int,
    best_in_chunk: float,
    context: set[str],
) -> tuple[float, ...]:
    body = hit.chunk.unit_body(unit)
    body_terms = note_tokens(body)
    own = set(body_terms)
    parents = set(note_tokens(" ".join(unit.parents)))
    total = sum(q.weights.values()) or 1.0

    def share(found) -> float:
        return sum(w for t, w in q.weights.items() if found(t)) / total

    question_terms = list(q.weights)
    pairs = set(pairwise(question_terms))
    number = bool(_DIGIT.search(body))
    return (
        cosine,
        share(lambda t: t in own),
        share(lambda t: t in parents and t not in own),
        share(lambda t: t in context and t not in own and t not in parents),
        hit_score,
        hit.cosine,
        best_in_chunk,
        1.0 / rank,
        float(number),
        float(number and q.quantity),
        math.log1p(len(body.split())),
        sum(1 for t in q.salient if t in own | parents | context) / max(len(q.salient), 1),
        len(pairs & set(pairwise(body_terms))) / max(len(pairs), 1),
        sum(1 for t in body_terms if t not in q.weights) / max(len(body_terms), 1),
    )


VERDICT_FEATURES = (
    "top_score",  # the best candidate's score
    "best_cosine",  # the best cosine of the question with any candidate or hit
    "coverage",  # share of the question's term weight in one of the top three hits
    "unseen",  # share of the question's terms the notes never use
    "unknown_salient",  # salient terms the notes never use (0, 1, 2 or more)
    "unseen_rare",  # terms the notes never use that are not everyday English (0, 1, 2 or more)
    "top_salient",  # the best candidate's share of the salient terms
    "agreement",  # the top hit is among the first five of both legs
    "quantity_missing",  # an amount is asked and the best candidate states none
    "top_words",  # share of the question's term weight in the best candidate or its parents
    "margin",  # how far the best candidate's score is ahead of the second's
    "detail",  # share of the weight of the question's terms its heading path lacks, in the line
    "unknown_names",  # unknown salient terms as rare as names in English (0, 1, 2 or more)
)
# Fitted by eval/fit_answer.py on the tuning part (logistic: answerable or not); the threshold
# declines at most a few percent of the tuning part's answerable questions.
# fitted: verdict
VERDICT_WEIGHTS = {
    "top_score": -0.081,
    "best_cosine": 5.7912,
    "coverage": 0.6748,
    "unseen": -0.9961,
    "unknown_salient": -0.1816,
    "unseen_rare": -1.1193,
    "top_salient": -0.2636,
    "agreement": 0.4486,
    "quantity_missing": -1.8307,
    "top_words": 1.9703,
    "margin": 0.1961,
    "detail": 0.6342,
    "unknown_names": -0.3315,
}
VERDICT_BIAS = -2.7738
THRESHOLD = 0.1678
# end


@dataclass(frozen=True)
class Verdict:
    status: Status
    confidence: float  # 0..1: how likely the best candidate answers the question
    missing: tuple[str, ...]  # the asked terms the notes (not_found) or the lines (partial) lack
    features: tuple[float, ...]  # in VERDICT_FEATURES order


def judge(q: Question, ranked: list[Candidate], hits: list[Hit]) -> Verdict:
    """Answered; partial: the question names something the notes hold (a salient term) but
    their lines do not answer it; or not found: it names something they never mention, or
    nothing at all that they hold."""
    f = verdict_features(q, ranked, hits)
    z = VERDICT_BIAS + sum(VERDICT_WEIGHTS[n] * x for n, x in zip(VERDICT_FEATURES, f, strict=True))
    confidence = 1.0 / (1.0 + math.exp(-z))
    if ranked and confidence >= THRESHOLD:
        return Verdict("answered", confidence, (), f)
    if q.unknown or not ranked or not any(t not in q.unknown for t in q.salient):
        return Verdict("not_found", confidence, q.unknown, f)  # no named topic the notes hold
    top = ranked[0]
    found = set(tokenize(f"{top.hit.chunk.context} {' '.join(top.unit.parents)} {top.display}"))
    lacking = sorted((t for t in q.weights if t not in found), key=lambda t: -q.weights[t])
    return Verdict("partial", confidence, tuple(lacking[:MISSING_SHOWN]), f)


def verdict_features(q: Question, ranked: list[Candidate], hits: list[Hit]) -> tuple[float, ...]:
    """The verdict's evidence, in VERDICT_FEATURES order."""
    f = dict.fromkeys(VERDICT_FEATURES, 0.0)
    f["unseen"] = q.unseen
    f["unknown_salient"] = float(min(len(q.unknown), 2))
    f["unseen_rare"] = float(min(q.unseen_rare, 2))
    f["unknown_names"] = float(min(sum(map(is_name, q.unknown)), 2))
    f["quantity_missing"] = float(q.quantity)
    if ranked:
        top, first = ranked[0], hits[0]
        total = sum(q.weights.values()) or 1.0
        f["top_score"] = top.score
        f["best_cosine"] = max([c.features[0] for c in ranked] + [h.cosine for h in hits[:3]])
        found = [set(note_tokens(h.chunk.indexed_text)) for h in hits[:3]]
        f["coverage"] = max(sum(w for t, w in q.weights.items() if t in terms) for terms in found)
        f["coverage"] /= total
        f["top_salient"] = _feature(top, "salient")
        f["agreement"] = float((first.bm25_rank or 99) <= 5 and (first.dense_rank or 99) <= 5)
        f["quantity_missing"] = float(q.quantity and not _feature(top, "has_number"))
        f["top_words"] = _feature(top, "own") + _feature(top, "parents")
        f["margin"] = top.score - ranked[1].score if len(ranked) > 1 else 1.0
        f["detail"] = _detail(q, top)
    return tuple(f[name] for name in VERDICT_FEATURES)


def cited_span(chunk: Chunk, unit: Unit) -> tuple[int, int]:
    """The lines a unit's citation covers: its own; all of a table of at most TABLE_LINES
    when it is a row (a row means little without its header); and its parent bullet's line
    when that is at most PARENT_REACH lines above (the answer shows the parent's words too)."""
    lines = chunk.lines

    def at(line_no: int) -> str:
        return strip_marker(lines[line_no - chunk.start_line])

    if at(unit.start_line).startswith("|"):
        first, last = unit.start_line, unit.end_line
        while first > chunk.start_line and at(first - 1).startswith("|"):
            first -= 1
        while last < chunk.end_line and at(last + 1).startswith("|"):
            last += 1
        if last - first < TABLE_LINES:
            return first, last
    if unit.parents:
        for line_no in range(unit.start_line - 1, unit.start_line - PARENT_REACH - 1, -1):
            if line_no >= chunk.start_line and at(line_no) == unit.parents[-1]:
                return line_no, unit.end_line
    return unit.start_line, unit.end_line


def _feature(c: Candidate, name: str) -> float:
    return c.features[FEATURES.index(name)]


def _detail(q: Question, top: Candidate) -> float:
    """Of the question's term weight outside the best candidate's heading path (what it asks
    about the topic, not the topic), the share the candidate's own words or parents hold."""
    context = set(note_tokens(top.hit.chunk.context))
    line = set(tokenize(f"{' '.join(top.unit.parents)} {top.display}"))
    asked = {t: w for t, w in q.weights.items() if t not in context}
    return sum(w for t, w in asked.items() if t in line) / (sum(asked.values()) or 1.0)
