"""Stage 6, optional: a fluent answer from any OpenAI-compatible LLM, grounded in the hits.

    llm = LLMSettings.from_settings(settings)     # None unless RAG_LLM_URL is set
    for event in stream_ask(engine, "what is the default sqs visibility timeout?", llm):
        if isinstance(event, Token):
            print(event.text, end="")             # checked text, as it arrives
        else:
            answer = event.answer                 # an LLMAnswer; the extractive one on a fault

The prompt numbers the top hits [1]..[k]. Every [n] the model writes is checked as it streams:
one naming an excerpt that was not given is removed, and an answer left citing nothing is
flagged `uncited`. No server, an error status, a stall or a malformed stream ends in the
extractive answer with a notice, within `timeout` seconds.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Literal

from rag.answer.extractive import Answer, Citation, answer_json, compose
from rag.answer.llm_client import Finished, LLMError, LLMSettings, chat_stream, why_failed, within
from rag.search.engine import Engine, Hit, prepare_question
from rag.settings import Mode

Generator = Literal["llm", "extractive"]
History = Sequence[tuple[str, str]]  # earlier (question, answer) turns, oldest first
HISTORY_SHARE = 0.25  # of the prompt budget, at most, for earlier turns (newest kept first)
MIN_EXCERPT_CHARS = 200  # less room than this left in the budget is not worth an excerpt

SYSTEM = """You answer questions from numbered excerpts of the user's notes.
- Use only what the excerpts say; add nothing from elsewhere.
- After each claim, cite the excerpt it comes from as [n], for example [1] or [2][3].
- If the excerpts do not answer the question, reply: Not in your notes.
- Be brief: a few sentences."""

_MARKER = re.compile(r"([ \t]*)\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")  # [1], [1, 3]
_OPEN_TAIL = re.compile(r"[ \t]*(?:\[\s*(?:\d+(?:\s*[,;]\s*\d*)*\s*)?)?$")  # may become one
_DECLINE = re.compile(r"\bnot in (?:your|the|my) notes\b", re.IGNORECASE)


@dataclass
class LLMAnswer(Answer):
    """An Answer that says who wrote it. Its citations list the cited excerpts first."""

    generator: Generator = "llm"
    cited: tuple[int, ...] = ()  # the excerpt numbers the text cites, ascending
    uncited: bool = False  # an LLM answer that cites no excerpt: check it against the sources


@dataclass(frozen=True)
class Token:
    text: str  # the next piece of the answer, its citations already checked


@dataclass(frozen=True)
class Done:
    answer: LLMAnswer  # its text is what the Tokens spelt out, unless it fell back


LLMEvent = Token | Done


def written_by_llm(a: Answer) -> bool:
    """Whether an LLM wrote the answer: an LLMAnswer that did not fall back to quoted lines."""
    return isinstance(a, LLMAnswer) and a.generator == "llm"


def stream_ask(
    engine: Engine,
    raw_question: str,
    llm: LLMSettings | None,
    k: int = 5,
    mode: Mode = "hybrid",
    history: History = (),
) -> Iterator[LLMEvent]:
    """Like `answer.ask`, but streamed from the LLM when `llm` is set; the extractive if None.

    The question is cleaned and searched at once (an empty one is a ValueError here).
    """
    question = prepare_question(raw_question)
    hits = engine.search(question.text, k=k, mode=mode)
    if llm is None:
        events: Iterator[LLMEvent] = iter(
            [Done(_extractive(compose(question.text, hits, engine.idf)))]
        )
    else:
        events = stream_answer(question.text, hits, engine.idf, llm, history)
    return _add_notices(events, question.notices)


def stream_answer(
    question: str,
    hits: Sequence[Hit],
    idf: Callable[[str], float],
    llm: LLMSettings,
    history: History = (),
) -> Iterator[LLMEvent]:
    """Tokens of the LLM's answer from the hits as they arrive, then one Done.

    `idf` is `engine.idf`, for the extractive answer a fault falls back to.
    """
    hits = list(hits)
    if not hits:  # nothing to ground an answer in: no need to ask
        yield Done(_extractive(compose(question, hits, idf)))
        return
    messages, given = build_messages(question, hits, history, llm.context_chars)
    check = CitationCheck({c.n for c in given})
    notices: list[str] = []
    parts: list[str] = []
    try:
        for text in _checked_pieces(llm, messages, check, notices):
            parts.append(text)
            yield Token(text)
        if not "".join(parts).strip():
            raise LLMError("the answer was empty")
    except Exception as e:  # whatever the server did, the user gets an answer
        fallback = _extractive(compose(question, hits, idf))
        fallback.notices = (
            f"LLM answer failed ({why_failed(e, llm)}); showing the extractive answer",
        )
        yield Done(fallback)
        return
    yield Done(_checked_answer(question, "".join(parts).strip(), hits, given, check, notices))


def _checked_pieces(
    llm: LLMSettings, messages: list[dict], check: CitationCheck, notices: list[str]
) -> Iterator[str]:
    """The model's text with its citations checked, in pieces, within the deadline."""
    started = False
    stream = within(llm.timeout, lambda stop: chat_stream(llm, messages, stop))
    with contextlib.closing(stream):
        for item in stream:
            if isinstance(item, Finished):
                if item.reason == "length":
                    notices.append(f"the LLM's answer was cut at {llm.max_tokens} tokens")
                continue
            text = check.feed(item)
            text = text if started else text.lstrip()
            if text:
                started = True
                yield text
    yield check.finish()


def build_messages(
    question: str, hits: Sequence[Hit], history: History, budget: int
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
        room = budget - len(excerpt_block(_cite(len(given) + 1, hit, ""))) - 2
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
        if not lines:  # a first line longer than the room: give its start
            lines = [c.text.split("\n")[0][:room]]
        given.append(_cite(len(given) + 1, hit, "\n".join(lines)))
        budget -= len(excerpt_block(given[-1])) + 2
    return given


def excerpt_block(c: Citation) -> str:
    return f"[{c.n}] {' > '.join(c.heading) or c.path}\n{c.text}"


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
        text = _MARKER.sub(self._check, self._pending + piece)
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
        return m.group(1) + "".join(f"[{n}]" for n in keep) if keep else ""


def _history_messages(history: History, budget: int) -> list[dict]:
    """The newest turns that fit; their [n] go, as they named other excerpts."""
    turns: list[dict] = []
    for question, answer in reversed(history):
        answer = _MARKER.sub("", answer)
        budget -= len(question) + len(answer)
        if budget < 0:
            break
        turns[:0] = [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    return turns


def _cite(n: int, hit: Hit, text: str) -> Citation:
    c = hit.chunk
    end = c.start_line + text.count("\n")  # the text is the chunk's first lines
    return Citation(n, c.path, c.heading, c.start_line, end, text, c.text, c.start_line, c.end_line)


def _checked_answer(
    question: str,
    text: str,
    hits: list[Hit],
    given: list[Citation],
    check: CitationCheck,
    notices: list[str],
) -> LLMAnswer:
    cited = tuple(sorted(check.cited))
    if check.removed:
        gone = " ".join(f"[{n}]" for n in check.removed[:5])
        gone += " ..." if len(check.removed) > 5 else ""
        notices.append(f"removed citations of excerpts that were not given: {gone}")
    declined = not cited and bool(_DECLINE.search(text))
    sources = [c for c in given if c.n in cited] + [c for c in given if c.n not in cited]
    return LLMAnswer(
        question,
        text,
        answered=not declined,
        citations=[] if declined else sources,
        candidates=hits[:3] if declined else [],
        notices=tuple(notices),
        generator="llm",
        cited=cited,
        uncited=not cited and not declined,
    )


def _extractive(a: Answer) -> LLMAnswer:
    return LLMAnswer(**{f.name: getattr(a, f.name) for f in fields(Answer)}, generator="extractive")


def _add_notices(events: Iterator[LLMEvent], notices: tuple[str, ...]) -> Iterator[LLMEvent]:
    for event in events:
        if isinstance(event, Done):
            event.answer.notices = notices + event.answer.notices
        yield event


def result_json(a: Answer) -> dict:
    """The `rag ask --json` schema, plus "generator" and, for an LLM answer, "cited"/"uncited"."""
    out = answer_json(a)
    out["generator"] = "llm" if written_by_llm(a) else "extractive"
    if written_by_llm(a):
        out["cited"] = list(a.cited)
        out["uncited"] = a.uncited
    return out
