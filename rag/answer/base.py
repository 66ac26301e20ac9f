"""What every answer is made of: the Answer, its Citations and [n] markers, the decline, and
the Writer seam that produces answers from hits.

    answer.text            # "Max message size (256KB; 1KB-256KB) [1]"
    answer.citations[0]    # Citation(n=1, path='aws-notes.md', start_line=1693, ...)
    marker(1)              # "[1]"; MARKER finds them again

A Writer turns a question and its hits into a stream of Tokens and one Done: the extractive
writer (`rag.answer.extractive`) quotes lines, the LLM writer (`rag.answer.llm`) streams a
model's words with checked citations. `rag.answer.pipeline` runs one of them for every caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from rag.index.cutting import Chunk, location, shown_line, span_digest
from rag.search.engine import Hit
from rag.search.terms import NoteWords

DECLINE = "Not in your notes"  # how an answer says the notes do not answer the question
NOT_IN_NOTES = f"{DECLINE}: nothing there answers this question."
MARKER = re.compile(r"\[(\d+)\]")  # a citation marker as answers carry it: [1]
Generator = Literal["extractive", "llm"]
Status = Literal["answered", "partial", "not_found"]
SHOWN_LINES = 200  # of a chunk shown with a citation: its lines around the cited ones


def marker(n: int) -> str:
    return f"[{n}]"


@dataclass(frozen=True)
class Citation:
    n: int
    path: str
    heading: tuple[str, ...]
    start_line: int  # the cited lines, 1-based inclusive
    end_line: int
    text: str  # those lines as they are in the note (a very long one cut, saying so)
    excerpt: str  # the chunk they came from, for context (SHOWN_LINES of a long one)
    excerpt_start_line: int
    excerpt_end_line: int
    digest: str = ""  # of the cited lines as they were (`span_digest`): found again after edits
    tags: tuple[str, ...] = ()  # the chunk's (`Chunk.tags`), for the JSON of a citation
    properties: dict = field(default_factory=dict, hash=False)  # its note's front matter

    @classmethod
    def of(cls, n: int, chunk: Chunk, start_line: int, end_line: int) -> Citation:
        """Lines start..end of a chunk, cited as [n], with the chunk around them: all of it,
        or SHOWN_LINES of a longer one. What is shown is bounded: a very long line is cut
        (`shown_line`), and so are cited lines past SHOWN_LINES, saying how many."""
        lines, first, last = chunk.lines, start_line - chunk.start_line, end_line - chunk.start_line
        cited = lines[first : min(last + 1, first + SHOWN_LINES)]
        if last + 1 - first > SHOWN_LINES:
            cited.append(f"… [{last + 1 - first - SHOWN_LINES:,} more lines]")
        a = max(0, min(first - SHOWN_LINES // 4, len(lines) - SHOWN_LINES))
        b = min(len(lines), a + SHOWN_LINES)
        text, excerpt = ("\n".join(map(shown_line, part)) for part in (cited, lines[a:b]))
        where = (excerpt, chunk.start_line + a, chunk.start_line + b - 1)
        digest = span_digest(lines[first : last + 1])
        cited_lines = (n, chunk.path, chunk.heading, start_line, end_line, text)
        return cls(*cited_lines, *where, digest, chunk.tags, chunk.properties)

    @property
    def location(self) -> str:
        return location(self.path, self.start_line, self.end_line)


@dataclass
class Answer:
    question: str  # as asked (cleaned)
    text: str
    answered: bool  # False: partial or not found, with the nearest sections
    citations: list[Citation] = field(default_factory=list)  # an LLM's: the cited ones first
    candidates: list[Hit] = field(default_factory=list)  # the nearest chunks, when declined
    hits: list[Hit] = field(default_factory=list)  # everything the search found
    searched: str = ""  # what was searched, when a follow-up was read with earlier questions
    notices: tuple[str, ...] = ()  # things the user should know: cuts, fallbacks, follow-ups
    generator: Generator = "extractive"  # who wrote `text`
    cited: tuple[int, ...] = ()  # the [n] an LLM's text cites, ascending
    uncited: bool = False  # an LLM's answer citing nothing: to be checked against the sources
    status: Status | None = None  # answered; partial: the topic, not the detail; not_found
    missing: tuple[str, ...] = ()  # the asked terms the notes (or the closest lines) lack

    def __post_init__(self) -> None:
        if self.status is None:
            self.status = "answered" if self.answered else "not_found"

    @property
    def by_llm(self) -> bool:
        return self.generator == "llm"


@dataclass(frozen=True)
class Token:
    text: str  # the next piece of an answer being written, its citations already checked


@dataclass(frozen=True)
class Done:
    answer: Answer


class Writer(Protocol):
    """The seam: writes the answer to a question from its hits."""

    def write(
        self, question: str, hits: Sequence[Hit], words: NoteWords, history: Sequence[Exchange]
    ) -> Iterator[Token | Done]:
        """Tokens as the answer is written (none for a quoted one), then exactly one Done."""
        ...


@dataclass(frozen=True)
class Exchange:
    """One earlier turn of a conversation."""

    question: str  # as the user asked it
    answer: str = ""  # the answer's text
