"""The one JSON schema of rag's answers, hits, notes and status: `rag search/ask --json`, the
JSON API (`/api/...`, `rag.web.api`), the MCP tools (`rag.web.mcp`), the chat page's
`/ask_json` and the feedback file all print these models.

    search_json(found, links)   # {"question", "hits": [hit...], "notices"}
    answer_json(answer, links)  # {"question", "answer", "answered", "status", "missing",
                                #  "generator", "citations": [citation...], "candidates",
                                #  "notices"}

"status" is "answered", "partial" (the notes hold the topic, not the asked detail; the
citations are the closest lines) or "not_found"; "missing" lists the asked terms the notes (or
those lines) lack; "answered" is `status == "answered"`. With `links` (the user's editor),
every hit and citation carries a "uri" that opens its first line there. A hit or citation
of a note with tags carries "tags", and with other front-matter properties "properties".

A search or ask may be scoped with "filters": {"where": ["tag:infra", "folder:projects/*"],
"since": "2026-01-01"}, the strings of the CLI's `--where` and `--since` (`rag.search.filters`).

An LLM's answer adds "cited" (the [n] its text cites) and "uncited"; a follow-up adds
"searched" (the question as it was searched). A key that does not apply is left out, not null.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from rag.answer.base import Answer, Citation
from rag.answer.pipeline import Searched
from rag.editor import Editor
from rag.index.build import IndexReport
from rag.index.cutting import Chunk
from rag.search.engine import Hit
from rag.settings import Mode

# --- what is asked ---------------------------------------------------------------------

MAX_K = 50  # hits a caller may ask for at once


class FiltersIn(BaseModel):
    """Which notes a question may find: every condition must hold (`rag search --where`)."""

    where: list[str] = Field(
        default_factory=list,
        description="tag:NAME (nested tags too), folder:GLOB (folder:projects/*) or a "
        "front-matter NAME:VALUE (status:draft)",
    )
    since: str | None = Field(None, description="YYYY-MM-DD: notes modified on or after it")


class SearchIn(BaseModel):
    question: str = Field(description="what to look for, in your words")
    k: int | None = Field(None, ge=1, le=MAX_K, description="hits; unset: the server's -k")
    mode: Mode | None = Field(None, description="retrieval leg(s); unset: the server's")
    as_typed: bool = Field(False, description="search misspelled words as typed")
    filters: FiltersIn | None = Field(None, description="search only the notes these allow")


class TurnIn(BaseModel):
    question: str
    answer: str = ""


class AskIn(SearchIn):
    history: list[TurnIn] = Field(
        default_factory=list,
        description="earlier turns, oldest first: a short question is read as their follow-up",
    )


# --- what is answered ------------------------------------------------------------------


class HitOut(BaseModel):
    """A note section that matches, best first."""

    path: str = Field(description="the note, relative to its notes folder")
    heading: list[str] = Field(description="the heading path down to the section")
    start_line: int = Field(description="first line of the section, 1-based")
    end_line: int = Field(description="last line of the section, inclusive")
    score: float
    text: str
    bm25_rank: int | None = Field(description="rank in the keyword leg; null: not in its list")
    dense_rank: int | None = Field(description="rank in the vector leg; null: not in its list")
    tags: list[str] | None = Field(None, description="the note's tags and the section's own")
    properties: dict | None = Field(None, description="the note's other front matter")
    uri: str | None = Field(None, description="opens the note at start_line in your editor")


class CitationOut(BaseModel):
    """Lines of a note that an answer quotes as [n]."""

    n: int
    path: str
    heading: list[str]
    start_line: int
    end_line: int
    text: str = Field(description="the cited lines as they are in the note")
    tags: list[str] | None = Field(None, description="the note's tags and the section's own")
    properties: dict | None = Field(None, description="the note's other front matter")
    uri: str | None = Field(None, description="opens the note at start_line in your editor")


class SearchOut(BaseModel):
    question: str
    hits: list[HitOut]
    notices: list[str]
    searched: str | None = Field(None, description="what was searched, if not the question")


class AnswerOut(BaseModel):
    question: str
    answer: str = Field(description="the answer's text, with [n] markers")
    answered: bool
    status: Literal["answered", "partial", "not_found"]
    missing: list[str] = Field(description="asked terms the notes (or the cited lines) lack")
    generator: Literal["extractive", "llm"]
    citations: list[CitationOut]
    candidates: list[HitOut] = Field(description="the nearest sections, when not answered")
    notices: list[str]
    searched: str | None = None
    cited: list[int] | None = Field(None, description="an LLM's answer: the [n] it cites")
    uncited: bool | None = Field(None, description="an LLM's answer citing nothing")


class NoteOut(BaseModel):
    """Lines start_line..end_line of a note, as they are on disk."""

    path: str
    start_line: int
    end_line: int
    total_lines: int
    text: str
    uri: str


class StatusOut(BaseModel):
    notes_dir: str = Field(description="the notes folder; several: NAME=DIR, comma-separated")
    folders: dict[str, str] = Field(
        description="each notes folder by its name (the NAME of NAME:path in citations)"
    )
    index_dir: str
    files: int
    chunks: int
    model: str
    indexed_at: str = Field(description="UTC time the live index was written")
    indexing: bool = Field(description="a re-index is running")
    stale: bool = Field(description="the notes changed since the live index was built")
    lines_pending: int = Field(
        0, description="line vectors still to embed after a first pass (answers improve after)"
    )
    error: str = Field(description="why the last re-index failed, if it did")


class ReindexOut(BaseModel):
    state: Literal["done", "busy", "failed"]
    report: dict | None = Field(None, description="as `rag index --json` prints it")
    error: str = ""


def hit_json(h: Hit, links: Editor | None = None) -> dict:
    return _hit(h, links).model_dump(exclude_unset=True)


def citation_json(c: Citation, links: Editor | None = None) -> dict:
    return _citation(c, links).model_dump(exclude_unset=True)


def search_json(found: Searched, links: Editor | None = None) -> dict:
    """What a search found (`rag search --json`)."""
    return search_out(found, links).model_dump(exclude_unset=True)


def answer_json(a: Answer, links: Editor | None = None) -> dict:
    return answer_out(a, links).model_dump(exclude_unset=True)


def search_out(found: Searched, links: Editor | None = None) -> SearchOut:
    out = SearchOut(
        question=found.question,
        hits=[_hit(h, links) for h in found.hits],
        notices=list(found.notices),
    )
    if found.searched != found.question:
        out.searched = found.searched
    return out


def answer_out(a: Answer, links: Editor | None = None) -> AnswerOut:
    out = AnswerOut(
        question=a.question,
        answer=a.text,
        answered=a.answered,
        status=a.status,
        missing=list(a.missing),
        generator=a.generator,
        citations=[_citation(c, links) for c in a.citations],
        candidates=[_hit(h, links) for h in a.candidates],
        notices=list(a.notices),
    )
    if a.searched:
        out.searched = a.searched
    if a.by_llm:
        out.cited, out.uncited = list(a.cited), a.uncited
    return out


def reindex_out(state: str, report: IndexReport | None, error: str) -> ReindexOut:
    return ReindexOut(state=state, report=report.to_json() if report else None, error=error)


def _hit(h: Hit, links: Editor | None) -> HitOut:
    c = h.chunk
    out = HitOut(
        path=c.path,
        heading=list(c.heading),
        start_line=c.start_line,
        end_line=c.end_line,
        score=round(h.score, 6),
        text=c.text,
        bm25_rank=h.bm25_rank,
        dense_rank=h.dense_rank,
    )
    return _linked(_described(out, c), links)


def _citation(c: Citation, links: Editor | None) -> CitationOut:
    out = CitationOut(
        n=c.n,
        path=c.path,
        heading=list(c.heading),
        start_line=c.start_line,
        end_line=c.end_line,
        text=c.text,
    )
    return _linked(_described(out, c), links)


def _described(out: HitOut | CitationOut, source: Chunk | Citation):
    """`out` with its note's tags and properties, each only when there are some (set after
    construction, like the uri: left out of the JSON otherwise)."""
    if source.tags:
        out.tags = list(source.tags)
    if source.properties:
        out.properties = dict(source.properties)
    return out


def _linked(out: HitOut | CitationOut, links: Editor | None):
    """`out` with the uri that opens its first line in the user's editor, when one is set
    (set after construction: left out of the JSON otherwise, `exclude_unset`)."""
    if links is not None:
        out.uri = links.uri(out.path, out.start_line, out.end_line)
    return out
