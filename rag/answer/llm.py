"""Stage 6, optional: a fluent answer from any OpenAI-compatible LLM, grounded in the hits.

    writer = LLMWriter(settings.llm)            # settings.llm is None unless RAG_LLM_URL is set
    for event in writer.write(question, hits, engine.words, history=()):
        if isinstance(event, Token):
            print(event.text, end="")           # checked text, as it arrives
        else:
            answer = event.answer               # the extractive answer after a fault

The prompt numbers the top hits [1]..[k]. Every [n] the model writes is checked as it streams:
one naming an excerpt that was not given is removed, and an answer left citing nothing is
flagged `uncited`. No server, an error status, a stall or a malformed stream ends in the
extractive answer with a notice, within `timeout` seconds (`rag.answer.llm_client`).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace

import httpx

from rag.answer.base import DECLINE, Answer, Citation, Done, Exchange, Token, Writer, marker
from rag.answer.extractive import Extractive, compose
from rag.answer.llm_client import Finished, chat_stream, why_failed, within
from rag.errors import LLMError
from rag.index.cutting import heading_text
from rag.search.engine import Hit
from rag.search.terms import NoteWords
from rag.settings import LLMSettings

log = logging.getLogger(__name__)
HISTORY_SHARE = 0.25  # of the prompt budget, at most, for earlier turns (newest kept first)
MIN_EXCERPT_CHARS = 200  # less room than this left in the budget is not worth an excerpt
CHARS_PER_TOKEN = 10  # the answer is cut at max_tokens * this, whatever the server does

SYSTEM = f"""You answer questions from numbered excerpts of the user's notes.
- Use only what the excerpts say; add nothing from elsewhere.
- After each claim, cite the excerpt it comes from as [n], for example [1] or [2][3].
- If the excerpts do not answer the question, reply: {DECLINE}.
- Be brief: a few sentences."""

# How a model writes citations: [1], [ 2 ], [1, 3]; each is rewritten as [1][3].
_WRITTEN = re.compile(r"([ \t]*)\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_OPEN_TAIL = re.compile(r"[ \t]*(?:\[\s*(?:\d+(?:\s*[,;]\s*\d*)*\s*)?)?$")  # may become one
_DECLINED = re.compile(
    r"\b" + re.escape(DECLINE).replace("your", "(?:your|the|my)") + r"\b", re.IGNORECASE
)


def writer_for(llm: LLMSettings | None) -> Writer:
    """Who writes the answers: the LLM when one is configured, else quoted lines."""
    return LLMWriter(llm) if llm is not None else Extractive()


class LLMWriter:
    """The Writer that has an LLM write the answer from the hits, citations checked."""

    def __init__(self, llm: LLMSettings, client: httpx.Client | None = None) -> None:
        self.llm, self.client = llm, client  # `client`: a test seam (httpx.MockTransport)

    def write(
        self, question: str, hits: Sequence[Hit], words: NoteWords, history: Sequence[Exchange] = ()
    ) -> Iterator[Token | Done]:
        """Tokens of the LLM's answer as they arrive, then one Done; on a fault, Done with the
        extractive answer (`words` is for that) and a notice saying why."""
        hits = list(hits)
        if not hits:  # nothing to ground an answer in: no need to ask
            yield Done(compose(question, hits, words))
            return
        messages, given = build_messages(question, hits, history, self.llm.context_chars)
        check = CitationCheck({c.n for c in given})
        notices: list[str] = []
        parts: list[str] = []
        try:
            for text in self._checked_pieces(messages, check, notices):
                parts.append(text)
                yield Token(text)
            if not "".join(parts).strip():
                raise LLMError("the answer was empty")
        except (LLMError, httpx.HTTPError, httpx.StreamError) as e:  # an answer follows anyway
            why = why_failed(e, self.llm)
            log.warning("LLM answer failed (%s); showing the extractive answer", why)
            notice = f"LLM answer failed ({why}); showing the extractive answer"
            yield Done(replace(compose(question, hits, words), notices=(notice,)))
            return
        text = "".join(parts).strip()
        yield Done(_checked_answer(question, text, hits, given, check, notices))

    def _checked_pieces(
        self, messages: list[dict], check: CitationCheck, notices: list[str]
    ) -> Iterator[str]:
        """The model's text with its citations checked, in pieces, within the deadline."""
        llm, started = self.llm, False
        room = llm.max_tokens * CHARS_PER_TOKEN  # a server may ignore max_tokens
        cut = f"the LLM's answer was cut at {llm.max_tokens} tokens"
        stream = within(llm.timeout, lambda stop: chat_stream(llm, messages, stop, self.client))
        with contextlib.closing(stream):
            for item in stream:
                if isinstance(item, Finished):
                    if item.reason == "length":
                        notices.append(cut)
                    continue
                room -= len(item)
                if room < 0:
                    notices.append(cut)
                    break
                text = check.feed(item)
                text = text if started else text.lstrip()
                if text:
                    started = True
                    yield text
        yield check.finish()


def build_messages(
    question: str, hits: Sequence[Hit], history: Sequence[Exchange], budget: int
) -> tuple[list[dict], list[Citation]]:
    """Chat messages within `budget` characters, and the numbered excerpts they give."""
    turns = _history_messages(history, int(budget * HISTORY_SHARE))
    intro, ask = "Excerpts from my notes:\n\n", f"\n\nQuestion: {question}"
    used = len(SYSTEM) + sum(len(m["content"]) for m in turns) + len(intro) + len(ask)
    given = excerpts(hits, budget - used)
    user = intro + "\n\n".join(excerpt_block(c) for c in given) + ask
    return [{"role": "system", "content": SYSTEM}, *turns, {"role": "user", "content": user}], given


def excerpts(hits: Sequence[Hit], budget: int) -> list[Citation]:
    """The hits as excerpts [1]..[k], best first, cut at a line end to fit `budget` characters.

    The first hit is always given, cut to MIN_EXCERPT_CHARS if need be.
    """
    given: list[Citation] = []
    for hit in hits:
        c = hit.chunk
        whole = Citation.of(len(given) + 1, c, c.start_line, c.start_line)
        room = budget - len(excerpt_block(replace(whole, text=""))) - 2
        if room < MIN_EXCERPT_CHARS:
            if given:
                break
            room = MIN_EXCERPT_CHARS
        lines: list[str] = []
        left = room
        for line in c.text.split("\n"):
            if len(line) > left:
                break
            lines.append(line)
            left -= len(line) + 1
        while lines and not lines[-1].strip():
            lines.pop()
        if lines:
            excerpt = Citation.of(whole.n, c, c.start_line, c.start_line + len(lines) - 1)
        else:  # a first line longer than the room: give its start
            excerpt = replace(whole, text=c.text.split("\n")[0][:room])
        given.append(excerpt)
        budget -= len(excerpt_block(excerpt)) + 2
    return given


def excerpt_block(c: Citation) -> str:
    return f"{marker(c.n)} {heading_text(c.heading, c.path)}\n{c.text}"


class CitationCheck:
    """Checks [n] markers as the text streams in: keeps those naming a given excerpt.

        check = CitationCheck(valid={1, 2})
        check.feed("Yes [1") + check.feed("] and [9].") + check.finish()  # 'Yes [1] and.'
        check.cited, check.removed                                        # [1], [9]

    A marker split across pieces is held back until it closes; "[1, 2]" becomes "[1][2]".
    """

    def __init__(self, valid: set[int]):
        self.valid = valid
        self.cited: list[int] = []  # valid numbers, in order of first citation
        self.removed: list[int] = []  # invalid numbers, as they came
        self._pending = ""  # the end of the text so far, while it may be an unclosed marker

    def feed(self, piece: str) -> str:
        text = _WRITTEN.sub(self._check, self._pending + piece)
        cut = _OPEN_TAIL.search(text).start()
        self._pending = text[cut:]
        return text[:cut]

    def finish(self) -> str:
        """What is still held back: a marker the stream cut off is dropped."""
        rest, self._pending = self._pending, ""
        return "" if "[" in rest else rest

    def _check(self, m: re.Match) -> str:
        numbers = [int(x) for x in re.findall(r"\d+", m.group(2))]
        keep = [n for n in dict.fromkeys(numbers) if n in self.valid]
        self.removed += [n for n in numbers if n not in self.valid]
        self.cited += [n for n in keep if n not in self.cited]
        return m.group(1) + "".join(map(marker, keep)) if keep else ""


def _history_messages(history: Sequence[Exchange], budget: int) -> list[dict]:
    """The newest turns that fit; their [n] go, as they named other excerpts."""
    turns: list[dict] = []
    for turn in reversed(history):
        answer = _WRITTEN.sub("", turn.answer)
        budget -= len(turn.question) + len(answer)
        if budget < 0:
            break
        turns[:0] = [
            {"role": "user", "content": turn.question},
            {"role": "assistant", "content": answer},
        ]
    return turns


def _checked_answer(
    question: str,
    text: str,
    hits: list[Hit],
    given: list[Citation],
    check: CitationCheck,
    notices: list[str],
) -> Answer:
    cited = tuple(sorted(check.cited))
    if check.removed:
        gone = " ".join(map(marker, check.removed[:5]))
        gone += " ..." if len(check.removed) > 5 else ""
        notices.append(f"removed citations of excerpts that were not given: {gone}")
    declined = not cited and bool(_DECLINED.search(text))
    sources = [c for c in given if c.n in cited] + [c for c in given if c.n not in cited]
    return Answer(
        question,
        text,
        answered=not declined,
        citations=[] if declined else sources,
        candidates=hits[:3] if declined else [],
        hits=hits,
        notices=tuple(notices),
        generator="llm",
        cited=cited,
        uncited=not cited and not declined,
    )
