"""Stage 6: the extractive answer: the lines of the top hits that answer the question, each
cited, or an honest "not in your notes".

    answer = compose(question, hits, engine.words)
    answer.status      # "answered" | "partial" | "not_found"
    answer.text        # "Max message size (256KB; 1KB-256KB) [1]"
    answer.citations   # [Citation(n=1, path='aws-notes.md', start_line=1693, ...)]

No line is invented: every part of the answer is a unit (a line with its parent bullets, or a
fenced block) of a hit, cited to its exact span. `rag.answer.evidence` ranks the units and
judges the evidence: answered; partial (the notes hold the topic, not the asked detail: the
closest lines are shown as such); or not found (the question's key term never appears in the
notes, or nothing comes close).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Sequence

from rag.answer.base import DECLINE, Answer, Citation, Done, Exchange, marker
from rag.answer.evidence import Candidate, judge, rank_units, read_question
from rag.index.cutting import shown_line
from rag.index.lexical import note_tokens, tokenize
from rag.search.engine import Hit
from rag.search.terms import NoteWords

MAX_PARTS = 3
CLOSE_TO_BEST = 1.2  # a further part scores at most this much below the best (e^-1.2: 30%)
NEAREST = 3  # sections listed when the notes do not answer
# "X vs Y", "difference between X and Y", "compare X with Y", "which ..., X or Y?"
_SIDES = (
    re.compile(r"^(?P<a>.+?)\s+(?:vs\.?|versus)\s+(?P<b>.+)$", re.IGNORECASE),
    re.compile(r"\bdifferences? between\s+(?P<a>.+?)\s+and\s+(?P<b>.+)$", re.IGNORECASE),
    re.compile(r"\bcompare\s+(?P<a>.+?)\s+(?:and|with|to)\s+(?P<b>.+)$", re.IGNORECASE),
    re.compile(r"^which\b.*?,?\s+(?P<a>[^,]+?)\s+or\s+(?P<b>[^,?]+)\??$", re.IGNORECASE),
)


class Extractive:
    """The Writer that quotes lines of the notes."""

    def write(
        self, question: str, hits: Sequence[Hit], words: NoteWords, history: Sequence[Exchange] = ()
    ) -> Iterator[Done]:
        yield Done(compose(question, list(hits), words))


def compose(question: str, hits: list[Hit], words: NoteWords) -> Answer:
    """The answer: the best lines of the hits, each cited; or why the notes do not answer."""
    q = read_question(question, words)
    ranked = rank_units(q, hits)
    verdict = judge(q, ranked, hits)
    nearest = hits[:NEAREST]
    if verdict.status == "not_found":
        text = f"{DECLINE}: nothing there answers this question."
        if verdict.missing:
            text = f"{DECLINE}: your notes never mention {_listed(verdict.missing)}."
        return Answer(
            question,
            text,
            False,
            candidates=nearest,
            hits=hits,
            status="not_found",
            missing=verdict.missing,
        )
    parts = choose_parts(question, ranked)
    citations = [_cite(n, c) for n, c in enumerate(parts, 1)]
    lines = "\n".join(f"{part_text(c)} {marker(n)}" for n, c in enumerate(parts, 1))
    if verdict.status == "partial":
        head = "Your notes come close but do not say exactly this"
        if verdict.missing:
            head = f"Your notes do not say anything about {_listed(verdict.missing)} here"
        text = f"{head}. The closest lines:\n{lines}"
        return Answer(
            question,
            text,
            False,
            citations,
            candidates=nearest,
            hits=hits,
            status="partial",
            missing=verdict.missing,
        )
    return Answer(question, lines, True, citations, hits=hits)


def choose_parts(question: str, ranked: list[Candidate]) -> list[Candidate]:
    """The best candidate, then up to MAX_PARTS close ones quoting other lines; for a
    comparison, the best candidate for each side first."""
    if not ranked:
        return []
    chosen: list[Candidate] = []
    sides = comparison_sides(question)
    for side, other in zip(sides, sides[::-1], strict=True):
        speaking = [c for c in ranked if _speaks_of(c, side) and _new(c, chosen)]
        only = [c for c in speaking if not _speaks_of(c, other)]  # of this side alone, if any
        if only or speaking:
            chosen.append((only or speaking)[0])
    for c in ranked:
        if len(chosen) >= MAX_PARTS or c.score < ranked[0].score - CLOSE_TO_BEST:
            break
        if _new(c, chosen):
            chosen.append(c)
    return sorted(chosen, key=lambda c: -c.score)  # never empty: ranked[0] or what overlaps it


def comparison_sides(question: str) -> list[set[str]]:
    """The terms of each thing compared, each side's own ([] if no comparison is asked)."""
    text = question.strip().rstrip("?").strip()
    for pattern in _SIDES:
        m = pattern.search(text)
        if m:
            a, b = set(tokenize(m["a"])), set(tokenize(m["b"]))
            if a - b and b - a:
                return [a - b, b - a]
    return []


def _speaks_of(c: Candidate, side: set[str]) -> bool:
    return bool(side & set(note_tokens(c.display)))


def _new(c: Candidate, chosen: list[Candidate]) -> bool:
    """Not the same lines, nor the same words, as a part already chosen."""
    start, end = c.span
    for other in chosen:
        a, b = other.span
        same_note = other.hit.chunk.path == c.hit.chunk.path
        if (same_note and start <= b and a <= end) or other.display == c.display:
            return False
    return True


def part_text(c: Candidate) -> str:
    """How the answer quotes a candidate: one line as "parent › line"; several (a fenced block,
    a table, a bullet with its children or its parent) as they stand in the note, dedented."""
    start, end = c.span
    if start == end:
        return shown_line(c.display)
    chunk = c.hit.chunk
    lines = chunk.lines[start - chunk.start_line : end - chunk.start_line + 1]
    return textwrap.dedent("\n".join(shown_line(line) for line in lines if line.strip()))


def _cite(n: int, c: Candidate) -> Citation:
    return Citation.of(n, c.hit.chunk, *c.span)


def _listed(terms: Sequence[str]) -> str:
    quoted = [f'"{t}"' for t in terms]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + f" or {quoted[-1]}"
