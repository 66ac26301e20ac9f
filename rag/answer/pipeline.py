"""The one way a question becomes an answer, for the CLI, the chat page, the API, the eval
and the benchmarks: prepare -> read as a follow-up -> search -> write -> notices, merged once.

    answer = ask(engine, "what is the default visibility timeout?")
    answer = ask(engine, "and the max?", history=[Exchange("sqs visibility timeout", "...")])
    for event in stream_ask(engine, question, writer=LLMWriter(settings.llm)):
        ...   # Searched (hits known), then Tokens (an LLM's words), then Done(answer)

An empty question is BadInput, raised before anything is searched. Misspelled words are
searched as the notes spell them (`spelling=False`: as typed). The writer is the seam:
`Extractive()` (the default) quotes lines, `LLMWriter` has a model write them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

from rag.answer.base import Answer, Done, Exchange, Token, Writer
from rag.answer.extractive import Extractive
from rag.search.engine import Engine, Hit, prepare_question
from rag.search.followup import contextualize
from rag.settings import Mode


@dataclass(frozen=True)
class Searched:
    """The first event: what was searched and found, before the answer is written."""

    question: str  # as asked, cleaned
    searched: str  # the question, or it read together with an earlier one
    hits: list[Hit]
    notices: tuple[str, ...]  # about the question itself: cut, read as a follow-up


Event = Searched | Token | Done


def stream_ask(
    engine: Engine,
    question: str,
    *,
    history: Sequence[Exchange] = (),
    k: int = 5,
    mode: Mode = "hybrid",
    writer: Writer | None = None,
    spelling: bool = True,
) -> Iterator[Event]:
    """Searched, then the writer's Tokens, then one Done whose answer carries every notice.

    The question is cleaned and searched when the first event is asked for; BadInput then if
    it is empty. With `spelling`, a word the notes do not use is searched as the notes spell
    it, when they use a word one or two edits away (`rag.search.terms`), with a notice.
    """
    prepared = prepare_question(question)
    searched = contextualize(prepared.text, [turn.question for turn in history])
    notices = prepared.notices
    if searched != prepared.text:
        notices += (f'read as a follow-up: searched for "{searched}"',)
    if spelling:
        corrected = engine.words.correct(searched)
        if corrected.fixes:
            searched = corrected.text
            notices += (corrected.notice(),)
    hits = engine.search(searched, k=k, mode=mode)
    yield Searched(prepared.text, searched, hits, notices)
    for event in (writer or Extractive()).write(searched, hits, engine.words, history):
        if isinstance(event, Done):
            event = Done(_finished(event.answer, prepared.text, searched, hits, notices))
        yield event


def ask(engine: Engine, question: str, **options) -> Answer:
    """The whole answer at once: what `stream_ask` (same keyword options) ends with."""
    for event in stream_ask(engine, question, **options):
        if isinstance(event, Done):
            return event.answer
    raise RuntimeError("the writer ended without an answer")  # its contract: exactly one Done


def _finished(
    answer: Answer, asked: str, searched: str, hits: list[Hit], notices: tuple[str, ...]
) -> Answer:
    return replace(
        answer,
        question=asked,
        searched=searched if searched != asked else "",
        hits=hits,
        notices=notices + answer.notices,
    )
