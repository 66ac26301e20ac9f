"""What the chat page does when its user acts: each handler a method of one `Handlers`.

    handlers = Handlers(live, settings)
    handlers.respond("max sqs message size?")      # /ask: the reply as markdown
    for outputs in handlers.chat(...): ...         # the chat: the answer as it grows

Every answer comes from `rag.answer.pipeline`, like the CLI's: the chat passes the earlier
turns, so a short follow-up ("and the default?") is read with the question before it.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import gradio as gr

from rag.answer.base import Answer, Done, Exchange, Token, Writer
from rag.answer.llm import writer_for
from rag.answer.pipeline import Searched, ask, stream_ask
from rag.answer.schema import answer_json
from rag.editor import Editor
from rag.errors import BadInput, IndexProblem
from rag.search.engine import Engine, Hit
from rag.search.filters import Where, filtered
from rag.search.live import LiveIndex
from rag.settings import Mode, Settings
from rag.web.feedback import feedback_entry, record_vote
from rag.web.markup import text_html
from rag.web.page import EXAMPLES, first_screen, next_questions
from rag.web.panel import sources_html
from rag.web.render import PartialAnswer, chat_html, nothing_searched_html
from rag.web.reply import escape_md, reply_markdown

KEPT_CONVERSATIONS = 50  # in the browser's local storage, newest first
TITLE_CHARS = 60
REDRAW = 0.05  # seconds, at least, between two redraws of an LLM's answer as it streams
WAIT_STEP = 1.0  # seconds between two progress messages while the first index is built


@dataclass
class Turn:
    """One answered question, kept per browser session for follow-ups, panel and feedback."""

    asked: str  # the question as typed (cleaned)
    mode: Mode
    answer: Answer | None  # None while an LLM is still writing it
    hits: list[Hit] = field(default_factory=list)
    message: int = 0  # index of the answer in the chat history

    links: Editor | None = None  # the user's editor, for "open in editor" on each card
    key: str = field(default_factory=lambda: uuid.uuid4().hex)  # names its vote in the file

    def panel(self, why: bool) -> str:
        fused = self.mode == "hybrid"
        return sources_html(self.answer, self.hits, why, fused=fused, links=self.links)

    def exchange(self) -> Exchange:
        return Exchange(self.asked, self.answer.text if self.answer else "")


class Handlers:
    def __init__(self, live: LiveIndex, settings: Settings) -> None:
        self.live, self.settings = live, settings
        self.llm = settings.llm
        self.links = settings.links
        self._screen: tuple[int, str, list[str]] | None = None  # first_screen's, per version
        self._screen_lock = threading.Lock()

    def tick(self, shown: int):
        """Every few seconds and on page load: the status line, and, when the live index is
        not the one the page's first screen was made from (`shown`: its version), that
        screen again: the intro and the example questions. Returns (status, version shown,
        intro, *example buttons)."""
        status = escape_md(self.live.describe())
        version = self.live.version
        if version == shown:
            return status, gr.skip(), gr.skip(), *[gr.skip()] * EXAMPLES
        with self._screen_lock:  # one session works it out; the others take it
            if self._screen is None or self._screen[0] != version:
                self._screen = (version, *first_screen(self.live.current, self.settings))
            _, text, questions = self._screen
        buttons = [gr.Button(q, visible=True) for q in questions]
        buttons += [gr.Button(visible=False)] * (EXAMPLES - len(questions))
        return status, version, text, *buttons

    def writer(self, write: bool = True) -> Writer:
        """The LLM when one is configured and `write` is on; quoted lines otherwise."""
        return writer_for(self.llm if write else None)

    def answer(self, message: str) -> Answer:
        s = self.settings
        return ask(self.live.engine, message, k=s.top_k, mode=s.mode, writer=self.writer())

    def respond(self, message: str) -> str:
        """Answer a question from the notes, as markdown with [n] markers and its sources."""
        try:
            return reply_markdown(self.answer(message))
        except BadInput as e:  # an empty question: say so, search nothing
            return f"**Nothing searched:** {escape_md(str(e))}."

    def respond_json(self, message: str) -> str:
        """The answer as JSON text, as `rag ask --json` prints it; empty gives {"error": ...}.

        Text, not a dict: gradio_client takes any dict with a "path" key for a file to fetch.
        """
        try:
            answer = answer_json(self.answer(message), self.links)
            return json.dumps(answer, ensure_ascii=False)
        except BadInput as e:
            return json.dumps({"question": message, "error": str(e)})

    def chat(
        self, message, history, turns, k, mode, why, write, spelling=True, only=""
    ) -> Iterator[tuple]:
        """Answer into the chat and fill the sources panel: an LLM's tokens as they come, or
        the quoted lines at once. The question box is emptied by the first step only: what
        the user types while an answer streams is theirs (`gr.skip()` leaves it alone).
        `only` scopes the search as `--where` does: "tag:infra folder:projects/*"."""
        history, turns = list(history or []), list(turns or [])
        box = ""  # the question, taken: emptied once
        if not self.live.ready:  # the first index is being built: say how far, then answer
            asked = {"role": "user", "content": text_html(message)}
            while not self.live.wait_ready(WAIT_STEP):
                yield box, [*history, asked, _waiting(self.live.describe())], turns, gr.skip()
                box = gr.skip()
        try:
            events = stream_ask(
                self.scoped(only),  # a re-index swaps it whole; this question keeps its own
                message,
                history=[t.exchange() for t in turns],
                k=int(k),
                mode=mode,
                writer=self.writer(write),
                spelling=spelling,
            )
            searched: Searched = next(events)  # type: ignore[assignment]
        except (BadInput, IndexProblem) as e:  # an empty question, a bad filter, no index:
            reply = {"role": "assistant", "content": nothing_searched_html(str(e))}  # say so
            yield box, [*history, reply], turns, gr.skip()
            return
        history.append({"role": "user", "content": text_html(searched.question)})
        turn = Turn(searched.question, mode, None, searched.hits, len(history), self.links)
        turns.append(turn)
        if self.llm is not None and write:
            steps = _written(turn, events, searched.notices)
        else:
            steps = _quoted(turn, events)
        shown = False  # the panel: as soon as the answer is known, once
        for text in steps:
            reply = {"role": "assistant", "content": text}
            if turn.answer is not None:  # the whole answer: what to ask next, under it
                asked_next = next_questions(self.live.engine, turn.answer)
                reply["options"] = [{"label": q, "value": q} for q in asked_next]
            panel = gr.skip() if shown or turn.answer is None else turn.panel(why)
            shown = shown or turn.answer is not None
            yield box, [*history, reply], turns, panel
            box = gr.skip()

    def scoped(self, only: str | None) -> Engine:
        """The live engine, searching only the notes `only` allows: the words of
        `rag search --where` (quote one with spaces: 'aliases:"mq design"'), all must hold,
        and `since:YYYY-MM-DD` for `--since`."""
        try:
            words = shlex.split(only or "")
        except ValueError as e:  # an unclosed quote
            raise BadInput(f"the filter {only!r} cannot be read: {e}") from None
        since = [w.partition(":")[2] for w in words if w.lower().startswith("since:")]
        if len(since) > 1:
            raise BadInput(f"the filter {only!r} names more than one since: date")
        words = [w for w in words if not w.lower().startswith("since:")]
        where = Where.parse(words, since=since[0] if since else None)
        return filtered(self.live.engine, where, self.settings.folders)

    def keep_conversation(self, conversation, messages, turns, saved):
        """Keep this conversation in the browser's storage, newest first: its messages as
        shown and its questions (the follow-up memory). Returns (its id, all kept)."""
        if not turns:
            return conversation, gr.skip()
        conversation = conversation or uuid.uuid4().hex
        entry = {
            "id": conversation,
            "title": _title(turns[0].asked),
            "messages": messages,
            "questions": [t.asked for t in turns],
            "modes": [t.mode for t in turns],
        }
        others = [c for c in saved or [] if isinstance(c, dict) and c.get("id") != conversation]
        return conversation, [entry, *others][:KEPT_CONVERSATIONS]

    def conversation_titles(self, saved):
        return gr.Dataset(samples=[[c.get("title", "")] for c in saved or []])

    def reopen(self, index: int, saved):
        """A kept conversation back in the chat: its messages and its follow-up memory (the
        sources of its answers come back when they are asked again)."""
        try:
            kept = saved[index]
            messages = [
                m
                for m in kept["messages"]
                if isinstance(m, dict) and m.get("role") in ("user", "assistant")
            ]
            questions = [str(q) for q in kept["questions"]]
        except (IndexError, KeyError, TypeError):  # storage edited or from another version
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()
        asked = [i for i, m in enumerate(messages) if m["role"] == "user"]
        modes = kept.get("modes") or [self.settings.mode] * len(questions)
        turns = [
            Turn(q, mode, None, message=i + 1)
            for q, mode, i in zip(questions, modes, asked, strict=False)
        ]
        return messages, turns, sources_html(None, []), kept["id"]

    def picked(self, evt: gr.SelectData) -> str:
        """A question offered under an answer, clicked: into the question box, to be asked."""
        return str(evt.value)

    def show_selected(self, turns, why, evt: gr.SelectData):
        """Clicking an earlier answer brings its sources back into the panel."""
        turn = _turn_at(turns, evt.index)
        return turn.panel(why) if turn else gr.skip()

    def show_last(self, turns, why):
        return turns[-1].panel(why) if turns else gr.skip()

    def vote(self, turns, data: gr.LikeData) -> None:
        """A thumb, a reason (a down-vote that says what is wrong), or the vote taken back
        (the same button again): the answer's one line in the feedback file follows."""
        turn = _turn_at(turns, data.index)
        if turn is None or turn.answer is None:
            return
        path = self.settings.feedback_file
        if data.liked in (None, ""):
            record_vote(path, None, key=turn.key)
            gr.Info(f"Your vote on this answer was taken out of {path.name}.")
            return
        vote, reason = ("up", "") if data.liked is True else ("down", "")
        if isinstance(data.liked, str):
            reason = data.liked
        record_vote(path, feedback_entry(turn.answer, vote, reason, turn.key))
        gr.Info(f"Saved to {path.name}: this answer, its sources and your vote.")

    def reindex(self) -> str:
        """Start bringing the index up to date; questions use the old one until it is done."""
        self.live.reindex_in_background()
        return self.live.describe()

    def status(self) -> str:
        return self.live.describe()


def _quoted(turn: Turn, events: Iterator) -> Iterator[str]:
    """An extractive answer: ready at once, shown whole (no pacing to look like typing)."""
    turn.answer = next(e for e in events if isinstance(e, Done)).answer
    yield chat_html(turn.answer)


def _written(turn: Turn, events: Iterator, notices: tuple[str, ...]) -> Iterator[str]:
    """An LLM's answer as it streams in, then in full with linked [n]; on a fault, the
    extractive answer with a notice replaces what had come (`rag.answer.llm`)."""
    partial = PartialAnswer(notices)
    yield partial.html()
    shown = time.monotonic()
    for event in events:
        if isinstance(event, Token):
            partial.add(event.text)
            if time.monotonic() - shown >= REDRAW:  # a fast server: fewer, bigger steps
                yield partial.html()
                shown = time.monotonic()
        elif isinstance(event, Done):
            turn.answer = event.answer
    yield chat_html(turn.answer)


def _title(question: str) -> str:
    """A kept conversation's name in the list: its first question, cut."""
    question = " ".join(question.split())
    return question if len(question) <= TITLE_CHARS else question[: TITLE_CHARS - 1] + "…"


def _turn_at(turns: list[Turn], index: int | tuple[int, int]) -> Turn | None:
    index = index[0] if isinstance(index, (list, tuple)) else index
    return next((t for t in turns if t.message == index), None)


def _waiting(status: str) -> dict:
    """The chat's message while a question waits for the first index: how far it is."""
    said = status.removeprefix("Index: ")
    return {"role": "assistant", "content": f"<p><em>{text_html(said)}.</em></p>"}
