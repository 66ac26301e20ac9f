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

from rag.chunking import HEADING, LIST_ITEM, fence_mask, location, parent_bullets
from rag.lexical import tokenize
from rag.search import Engine, Hit, prepare_question
from rag.settings import Mode

NOT_IN_NOTES = "Not in your notes: nothing there answers this question."
MAX_PARTS = 3


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
    """Signals that the top hits really answer the question (see `is_answerable`)."""

    dense_top: float  # best cosine similarity between the question and a hit
    coverage: float  # share of the question's term weight found in the best hit, 0..1
    agreement: bool  # the top hit is among the first few of both legs


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
class Unit:
    """A candidate answer part: one line (or a short bullet with its children) of a hit."""

    hit_rank: int  # 1-based rank of the hit it came from
    hit: Hit
    start_line: int
    end_line: int
    text: str  # raw lines from the note
    display: str  # the text without list markers, with its parent bullets as a prefix
    tokens: frozenset[str]
    parent_tokens: frozenset[str]


def ask(engine: Engine, raw_question: str, k: int = 5, mode: Mode = "hybrid") -> Answer:
    """Clean the question, search, and compose: what `rag ask` and the chat page both do.

    A question that is empty after clean-up is a ValueError, and nothing is searched.
    """
    question = prepare_question(raw_question)
    answer = compose(question.text, engine.search(question.text, k=k, mode=mode), engine.idf)
    answer.notices = question.notices
    return answer


def compose(question: str, hits: list[Hit], idf: Callable[[str], float]) -> Answer:
    """The extractive answer: the best-matching lines of the hits, each with a citation."""
    evidence = gather_evidence(question, hits, idf)
    if not hits or not is_answerable(evidence):
        return Answer(question, NOT_IN_NOTES, False, candidates=hits[:3], evidence=evidence)
    weights = _term_weights(question, idf)
    units = [u for rank, hit in enumerate(hits[:3], 1) for u in units_of(hit, rank)]
    scored = sorted(
        ((_unit_score(u, weights), -u.hit_rank, -u.start_line, u) for u in units),
        key=lambda t: t[:3],
        reverse=True,
    )
    parts: list[Unit] = []
    for score, *_, unit in scored:
        if len(parts) == MAX_PARTS or (parts and score < 0.75 * _unit_score(parts[0], weights)):
            break
        if score > 0 or not parts:
            parts.append(unit)
    citations = [_cite(n, u) for n, u in enumerate(parts, 1)]
    text = "\n".join(f"{u.display} [{n}]" for n, u in enumerate(parts, 1))
    return Answer(question, text, True, citations, evidence=evidence)


def gather_evidence(question: str, hits: list[Hit], idf: Callable[[str], float]) -> Evidence:
    weights = _term_weights(question, idf)
    total = sum(weights.values()) or 1.0
    coverage = 0.0
    for hit in hits[:3]:
        found = set(tokenize(hit.chunk.indexed_text))
        coverage = max(coverage, sum(w for t, w in weights.items() if t in found) / total)
    dense = [h.dense_score for h in hits if h.dense_score is not None]
    top = hits[0] if hits else None
    agreement = bool(
        top
        and top.bm25_rank is not None
        and top.dense_rank is not None
        and top.bm25_rank <= 5
        and top.dense_rank <= 5
    )
    return Evidence(max(dense, default=0.0), coverage, agreement)


def is_answerable(e: Evidence) -> bool:
    """Calibrated on eval/questions.jsonl (see eval/README.md)."""
    return e.dense_top >= 0.5 or (e.coverage >= 0.5 and e.dense_top >= 0.3) or e.agreement


def units_of(hit: Hit, rank: int) -> list[Unit]:
    chunk = hit.chunk
    lines = chunk.text.split("\n")
    in_fence = fence_mask(lines)
    units: list[Unit] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip() or HEADING.match(line) and not in_fence[i]:
            i += 1
            continue
        end = i
        if in_fence[i]:  # a fenced block is one unit
            while end + 1 < len(lines) and in_fence[end + 1]:
                end += 1
        elif _is_short_parent(lines, i):
            end = _children_end(lines, i, limit=3)
        parents = parent_bullets(lines, in_fence, 0, i)
        units.append(_unit(hit, rank, lines, i, end, parents))
        i = end + 1 if in_fence[i] else i + 1
    return units


def _unit(hit: Hit, rank: int, lines: list[str], i: int, end: int, parents: list[str]) -> Unit:
    raw = lines[i : end + 1]
    body = " ".join(_strip_marker(x) for x in raw if x.strip())
    display = " › ".join([*parents, body]) if parents else body
    first = hit.chunk.start_line
    return Unit(
        hit_rank=rank,
        hit=hit,
        start_line=first + i,
        end_line=first + end,
        text="\n".join(raw),
        display=display,
        tokens=frozenset(tokenize(body)),
        parent_tokens=frozenset(tokenize(" ".join(parents))),
    )


def _is_short_parent(lines: list[str], i: int) -> bool:
    """A bullet like "- Types" says little alone; its children carry the content."""
    m = LIST_ITEM.match(lines[i])
    if not m or len(lines[i][m.end() :].split()) > 3 or i + 1 >= len(lines):
        return False
    child = LIST_ITEM.match(lines[i + 1])
    return bool(child) and len(child.group(1)) > len(m.group(1))


def _children_end(lines: list[str], i: int, limit: int) -> int:
    indent = len(LIST_ITEM.match(lines[i]).group(1))
    end = i
    while end + 1 < len(lines) and end - i < limit:
        m = LIST_ITEM.match(lines[end + 1])
        if not m or len(m.group(1)) <= indent:
            break
        end += 1
    return end


def _strip_marker(line: str) -> str:
    m = LIST_ITEM.match(line)
    return (line[m.end() :] if m else line).strip()


def _term_weights(question: str, idf: Callable[[str], float]) -> dict[str, float]:
    """Question terms weighted by rarity; a term the notes never use weighs the most."""
    terms = set(tokenize(question))
    known = {t: idf(t) for t in terms}
    ceiling = max([*known.values(), 1.0])
    return {t: (w if w > 0 else ceiling) for t, w in known.items()}


def _unit_score(u: Unit, weights: dict[str, float]) -> float:
    total = sum(weights.values()) or 1.0
    own = sum(w for t, w in weights.items() if t in u.tokens)
    inherited = sum(w for t, w in weights.items() if t in u.parent_tokens and t not in u.tokens)
    return (own + 0.3 * inherited) / total + 0.3 / u.hit_rank


def _cite(n: int, u: Unit) -> Citation:
    c = u.hit.chunk
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
