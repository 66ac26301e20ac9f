"""Stage 7: the chat page, a thin Gradio front on the same engine calls as `rag ask`.

    serve(engine, settings)                  # http://127.0.0.1:7860: chat + note viewer
    Client(url).predict("max sqs message size?", api_name="/ask")   # the reply, as markdown

A question is cleaned, read together with the previous one when it is a follow-up
(`rag.search.followup`), searched, and answered by `rag.answer.compose`, or, when an LLM is
configured (RAG_LLM_URL, `app.py --llm-url`), written by it from the hits with checked [n]
citations (`rag.answer.llm`), streamed token by token. The answer fills the chat
(`rag.web.render`) and its sources the panel beside it (`rag.web.panel`); a [n] or a
`file:lines` opens the note viewer (`rag.web.viewer`); a thumbs-down is kept (`rag.web.feedback`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from rag.answer.extractive import Answer, compose
from rag.answer.llm import Token, result_json, stream_answer, stream_ask
from rag.answer.llm_client import LLMSettings
from rag.search.engine import Engine, Hit, prepare_question
from rag.search.followup import contextualize
from rag.search.live import LiveIndex
from rag.settings import Settings
from rag.web.feedback import append_feedback, default_feedback_path, feedback_entry
from rag.web.page import build_page, example_text
from rag.web.panel import sources_html
from rag.web.render import (
    chat_markdown,
    escape_md,
    llm_partial_markdown,
    reply_markdown,
    stream_markdown,
)

__all__ = ["build_ui", "escape_md", "reply_markdown", "serve"]

PACE = 0.015  # seconds between streamed steps; the answer is ready before the first one


@dataclass
class Turn:
    """One answered question, kept per browser session for follow-ups, panel and feedback."""

    asked: str  # the question as typed (cleaned)
    searched: str  # what was searched: `asked`, or it joined to an earlier question
    mode: str
    answer: Answer | None  # None while an LLM is still writing it
    hits: list[Hit] = field(default_factory=list)
    message: int = 0  # index of the answer in the chat history

    def panel(self, why: bool) -> str:
        return sources_html(self.answer, self.hits, why, fused=self.mode == "hybrid")


def build_ui(
    engine: Engine, settings: Settings, feedback: Path | None = None, live: LiveIndex | None = None
) -> gr.Blocks:
    """The chat page, plus API endpoints: /ask (the reply as markdown), /ask_json, /reindex
    and /status. With `live`, every question uses its newest complete generation. With an
    LLM in `settings`, answers are written by it (the page has a switch back to quotes)."""
    lock = threading.Lock()  # one engine, shared by every session and endpoint
    feedback = feedback or default_feedback_path(settings)
    live = live or LiveIndex.from_engine(settings, engine)
    llm = LLMSettings.from_settings(settings)

    def answer_of(message: str) -> Answer:
        """The whole answer to one question, by the LLM if there is one (ValueError: empty)."""
        with lock:  # the search; an LLM writes outside the lock, other questions go on
            events = stream_ask(live.engine, message, llm, k=settings.top_k, mode=settings.mode)
        *_, done = events
        return done.answer

    def respond(message: str, history: list[dict] | None = None) -> str:
        """Answer a question from the notes, as markdown with [n] markers and its sources.

        Each question stands alone: `history` follows the chat convention and is not used.
        """
        try:
            answer = answer_of(message)
        except ValueError as e:  # an empty question: say so, search nothing
            return f"**Nothing searched:** {escape_md(str(e))}."
        return reply_markdown(answer)

    def respond_json(message: str) -> str:
        """The answer as JSON text, as `rag ask --json` prints it; empty gives {"error": ...}.

        Text, not a dict: gradio_client takes any dict with a "path" key for a file to fetch.
        """
        try:
            answer = answer_of(message)
        except ValueError as e:
            return json.dumps({"question": message, "error": str(e)})
        return json.dumps({"notices": [], **result_json(answer)}, ensure_ascii=False)

    def chat(message, history, turns, k, mode, why, write) -> Iterator[tuple]:
        """Stream one answer into the chat and fill the sources panel: the LLM's tokens as
        they come, or the quoted lines a few words at a time."""
        history, turns = list(history or []), list(turns or [])
        try:
            question = prepare_question(message)
        except ValueError as e:  # an empty question: say so, search nothing
            reply = {"role": "assistant", "content": f"**Nothing searched:** {escape_md(str(e))}."}
            yield "", [*history, reply], turns, gr.skip()
            return
        searched = contextualize(question.text, [t.asked for t in turns])
        notices = question.notices
        if searched != question.text:
            notices += (f'read as a follow-up: searched for "{searched}"',)
        with lock:
            current = live.engine  # a re-index swaps it whole; this question keeps its own
            hits = current.search(searched, k=int(k), mode=mode)
        history.append({"role": "user", "content": escape_md(question.text)})
        turn = Turn(question.text, searched, mode, None, hits, message=len(history))
        if llm is not None and write:
            past = [(t.asked, t.answer.text) for t in turns]
            steps = _written(turn, stream_answer(searched, hits, current.idf, llm, past), notices)
        else:
            turn.answer = compose(searched, hits, current.idf)
            turn.answer.notices = notices
            steps = _paced(stream_markdown(turn.answer))
        turns.append(turn)
        shown = False  # the panel: as soon as the answer is known, once
        for text in steps:
            reply = {"role": "assistant", "content": text}
            panel = gr.skip() if shown or turn.answer is None else turn.panel(why)
            shown = shown or turn.answer is not None
            yield "", [*history, reply], turns, panel

    def show_selected(turns, why, evt: gr.SelectData):
        """Clicking an earlier answer brings its sources back into the panel."""
        turn = _turn_at(turns, evt.index)
        return turn.panel(why) if turn else gr.skip()

    def show_last(turns, why):
        return turns[-1].panel(why) if turns else gr.skip()

    def vote(turns, data: gr.LikeData) -> None:
        turn = _turn_at(turns, data.index)
        if data.liked is False and turn is not None and turn.answer is not None:
            append_feedback(feedback, feedback_entry(turn.searched, turn.answer, turn.asked))
            gr.Info(f"Saved to {feedback.name}: this answer and its sources.")

    def reindex() -> str:
        """Start bringing the index up to date; questions use the old one until it is done."""
        live.reindex_in_background()
        return live.describe()

    with gr.Blocks(title="Ask your notes", analytics_enabled=False) as demo:
        page = build_page(engine, settings, live.describe(), llm)
        turns = gr.State([])
        ins = [page.box, page.chatbot, turns, page.k, page.mode, page.why, page.write]
        outs = [page.box, page.chatbot, turns, page.sources]
        private = dict(api_visibility="private")
        streamed = dict(private, show_progress="hidden", concurrency_id="chat", concurrency_limit=8)
        page.box.submit(chat, ins, outs, **streamed)
        page.chatbot.example_select(example_text, None, page.box, queue=False, **private).then(
            chat, ins, outs, **streamed
        )
        page.chatbot.select(show_selected, [turns, page.why], page.sources, **private)
        page.chatbot.like(vote, [turns], None, **private)
        page.why.change(show_last, [turns, page.why], page.sources, **private)
        cleared = [page.chatbot, turns, page.sources]
        page.clear.click(lambda: ([], [], sources_html(None, [])), None, cleared, **private)
        page.reindex.click(lambda: escape_md(reindex()), None, page.status, **private)
        gr.Timer(3.0).tick(lambda: escape_md(live.describe()), None, page.status, **private)
        gr.api(reindex, api_name="reindex")
        gr.api(live.describe, api_name="status")
        gr.api(respond, api_name="ask", concurrency_id="api", concurrency_limit=8)
        gr.api(respond_json, api_name="ask_json", concurrency_id="api", concurrency_limit=8)
    return demo


def _paced(steps: Iterator[str]) -> Iterator[str]:
    """An extractive answer, ready at once, revealed a few words every PACE seconds."""
    for i, text in enumerate(steps):
        if i:
            time.sleep(PACE)
        yield text


def _written(turn: Turn, events, notices: tuple[str, ...]) -> Iterator[str]:
    """An LLM's answer as it streams in, then in full with linked [n]; on a fault, the
    extractive answer with a notice replaces what had come (`rag.llm.stream_answer`)."""
    parts: list[str] = []
    yield llm_partial_markdown(notices, "")
    for event in events:
        if isinstance(event, Token):
            parts.append(event.text)
            yield llm_partial_markdown(notices, "".join(parts))
        else:
            turn.answer = event.answer
            turn.answer.notices = notices + turn.answer.notices
    yield chat_markdown(turn.answer)


def _turn_at(turns: list[Turn], index: int | tuple[int, int]) -> Turn | None:
    index = index[0] if isinstance(index, (list, tuple)) else index
    return next((t for t in turns if t.message == index), None)


def serve(
    engine: Engine,
    settings: Settings,
    auth: tuple[str, str] | None = None,
    feedback: Path | None = None,
) -> None:
    """Serve the chat at / and the note viewer at /note/ until interrupted."""
    import uvicorn
    from fastapi import FastAPI, Request
    from starlette.routing import Mount

    from rag.web.viewer import add_viewer

    live = LiveIndex.from_engine(settings, engine)
    live.watch()  # re-index after notes are edited, in the background
    if live.stale():  # notes changed while the app was not running: catch up now
        live.reindex_in_background()
    demo = build_ui(engine, settings, feedback, live)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    async def signed_in(request: Request) -> bool:
        """Gradio's own test: with auth on, the request carries a session cookie it issued."""
        chat = next(r.app for r in app.routes if isinstance(r, Mount))
        if chat.auth is None:
            return True
        cookies = request.cookies
        token = cookies.get(f"access-token-{chat.cookie_id}") or cookies.get(
            f"access-token-unsecure-{chat.cookie_id}"
        )
        return token in chat.tokens

    add_viewer(app, settings.notes_dir, signed_in)  # before the mount, which takes all the rest
    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        server_name=settings.host,
        server_port=settings.port,
        auth=auth,
        footer_links=["api"],
        ssr_mode=False,
        run_history=False,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    )
    url = f"http://{settings.host}:{settings.port}"
    threading.Thread(target=_announce, args=(server, url), daemon=True).start()
    server.run()


def _announce(server, url: str) -> None:
    """Say where the chat is, once the server listens."""
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        print(f"Running on local URL:  {url}", flush=True)
