"""Stage 7: the chat page, a thin Gradio front on the same engine calls as `rag ask`.

    serve(engine, settings)                  # http://127.0.0.1:7860: chat + note viewer
    Client(url).predict("max sqs message size?", api_name="/ask")   # the reply, as markdown

A question is cleaned, read together with the previous one when it is a follow-up
(`rag.followup`), searched, and answered by `rag.answer.compose`; the answer streams into the
chat and its sources fill the panel beside it (`rag.render`); a [n] or a `file:lines` opens
the note viewer (`rag.viewer`); a thumbs-down is kept (`rag.feedback`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from rag.answer import Answer, answer_json, ask, compose
from rag.feedback import append_feedback, default_feedback_path, feedback_entry
from rag.followup import contextualize
from rag.live import LiveIndex
from rag.render import PANEL_CSS, escape_md, reply_markdown, sources_html, stream_markdown
from rag.search import Engine, Hit, prepare_question
from rag.settings import MODES, Settings

__all__ = ["build_ui", "escape_md", "reply_markdown", "serve"]

PACE = 0.015  # seconds between streamed steps; the answer is ready before the first one
MAX_SOURCES = 10


@dataclass
class Turn:
    """One answered question, kept per browser session for follow-ups, panel and feedback."""

    asked: str  # the question as typed (cleaned)
    searched: str  # what was searched: `asked`, or it joined to an earlier question
    mode: str
    answer: Answer
    hits: list[Hit] = field(default_factory=list)
    message: int = 0  # index of the answer in the chat history

    def panel(self, why: bool) -> str:
        return sources_html(self.answer, self.hits, why, fused=self.mode == "hybrid")


def build_ui(
    engine: Engine, settings: Settings, feedback: Path | None = None, live: LiveIndex | None = None
) -> gr.Blocks:
    """The chat page, plus API endpoints: /ask (the reply as markdown), /ask_json, /reindex
    and /status. With `live`, every question uses its newest complete generation."""
    lock = threading.Lock()  # one engine, shared by every session and endpoint
    feedback = feedback or default_feedback_path(settings)
    live = live or LiveIndex.from_engine(settings, engine)

    def respond(message: str, history: list[dict] | None = None) -> str:
        """Answer a question from the notes, as markdown with [n] markers and its sources.

        Each question stands alone: `history` follows the chat convention and is not used.
        """
        try:
            with lock:
                answer = ask(live.engine, message, k=settings.top_k, mode=settings.mode)
        except ValueError as e:  # an empty question: say so, search nothing
            return f"**Nothing searched:** {escape_md(str(e))}."
        return reply_markdown(answer)

    def respond_json(message: str) -> str:
        """The answer as JSON text, as `rag ask --json` prints it; empty gives {"error": ...}.

        Text, not a dict: gradio_client takes any dict with a "path" key for a file to fetch.
        """
        try:
            with lock:
                answer = ask(live.engine, message, k=settings.top_k, mode=settings.mode)
        except ValueError as e:
            return json.dumps({"question": message, "error": str(e)})
        return json.dumps({"notices": [], **answer_json(answer)}, ensure_ascii=False)

    def answer_turn(message: str, turns: list[Turn], k: int, mode: str) -> Turn:
        question = prepare_question(message)  # ValueError when empty
        searched = contextualize(question.text, [t.asked for t in turns])
        with lock:
            current = live.engine  # a re-index swaps it whole; this question keeps its own
            hits = current.search(searched, k=int(k), mode=mode)
            answer = compose(searched, hits, current.idf)
        answer.notices = question.notices
        if searched != question.text:
            answer.notices += (f'read as a follow-up: searched for "{searched}"',)
        return Turn(question.text, searched, mode, answer, hits)

    def chat(message, history, turns, k, mode, why) -> Iterator[tuple]:
        """Stream one answer into the chat, a few words at a time; fill the sources panel."""
        history, turns = list(history or []), list(turns or [])
        try:
            turn = answer_turn(message, turns, k, mode)
        except ValueError as e:
            reply = {"role": "assistant", "content": f"**Nothing searched:** {escape_md(str(e))}."}
            yield "", [*history, reply], turns, gr.skip()
            return
        history.append({"role": "user", "content": escape_md(turn.asked)})
        turn.message = len(history)
        turns.append(turn)
        panel = turn.panel(why)
        for step, text in enumerate(stream_markdown(turn.answer)):
            if step:
                time.sleep(PACE)
            reply = {"role": "assistant", "content": text}
            yield "", [*history, reply], turns, (panel if step == 0 else gr.skip())

    def show_selected(turns, why, evt: gr.SelectData):
        """Clicking an earlier answer brings its sources back into the panel."""
        turn = _turn_at(turns, evt.index)
        return turn.panel(why) if turn else gr.skip()

    def show_last(turns, why):
        return turns[-1].panel(why) if turns else gr.skip()

    def vote(turns, data: gr.LikeData) -> None:
        turn = _turn_at(turns, data.index)
        if data.liked is False and turn is not None:
            append_feedback(feedback, feedback_entry(turn.searched, turn.answer, turn.asked))
            gr.Info(f"Saved to {feedback.name}: this answer and its sources.")

    def reindex() -> str:
        """Start bringing the index up to date; questions use the old one until it is done."""
        live.reindex_in_background()
        return live.describe()

    with gr.Blocks(title="Ask your notes", analytics_enabled=False) as demo:
        page = _page(engine, settings, live.describe())
        turns = gr.State([])
        ins = [page.box, page.chatbot, turns, page.k, page.mode, page.why]
        outs = [page.box, page.chatbot, turns, page.sources]
        private = dict(api_visibility="private")
        streamed = dict(private, show_progress="hidden", concurrency_id="chat", concurrency_limit=8)
        page.box.submit(chat, ins, outs, **streamed)
        page.chatbot.example_select(_example_text, None, page.box, queue=False, **private).then(
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


def _turn_at(turns: list[Turn], index: int | tuple[int, int]) -> Turn | None:
    index = index[0] if isinstance(index, (list, tuple)) else index
    return next((t for t in turns if t.message == index), None)


def _example_text(evt: gr.SelectData) -> str:
    return evt.value["text"]


@dataclass
class _Page:
    chatbot: gr.Chatbot
    box: gr.Textbox
    clear: gr.Button
    sources: gr.HTML
    k: gr.Slider
    mode: gr.Radio
    why: gr.Checkbox
    status: gr.Markdown
    reindex: gr.Button


def _page(engine: Engine, settings: Settings, status: str) -> _Page:
    folder = escape_md(str(settings.notes_dir))
    gr.Markdown(
        f"## Ask your notes\n\nAnswers are lines quoted from the notes in {folder}; "
        "each [n] opens the note at the lines it came from."
    )
    with gr.Row():
        status_line = gr.Markdown(escape_md(status), elem_id="index-status")
        reindex = gr.Button("Re-index", size="sm", variant="secondary", scale=0)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                label="Chat",
                height=560,
                sanitize_html=True,  # a second guard; escape_md already keeps HTML out
                allow_tags=False,
                latex_delimiters=[],  # "$$" in a note is text, not a formula
                buttons=["copy", "copy_all"],  # no "share": these are private notes
                feedback_options=["Like", "Dislike"],
                examples=[{"text": q} for q in example_questions(engine)],
                placeholder="Ask a question about your notes, or start from an example.",
                elem_id="chat",
            )
            box = gr.Textbox(
                placeholder="e.g. What is the maximum size of an SQS message?",
                show_label=False,
                submit_btn=True,
                autofocus=True,
                elem_id="question",
            )
            clear = gr.Button("Clear chat", size="sm", variant="secondary")
        with gr.Column(scale=2):
            with gr.Accordion("Search settings", open=False, elem_id="settings"):
                k = gr.Slider(1, MAX_SOURCES, value=settings.top_k, step=1, label="Sources")
                mode = gr.Radio(list(MODES), value=settings.mode, label="Retrieval mode")
                why = gr.Checkbox(
                    False, label="Why this source: BM25 rank, dense rank and fused score"
                )
            sources = gr.HTML(
                sources_html(None, []),
                css_template=PANEL_CSS,
                js_on_load=None,
                max_height=640,
                elem_id="sources",
            )
    return _Page(chatbot, box, clear, sources, k, mode, why, status_line, reindex)


def example_questions(engine: Engine, n: int = 4) -> list[str]:
    """A few questions about sections spread evenly through the notes, for the empty chat."""
    topics: list[str] = []
    for chunk in engine.chunks:
        topic = chunk.heading[-1].split(" -- ")[0].strip() if len(chunk.heading) > 1 else ""
        if topic and len(topic) <= 40 and topic not in topics:
            topics.append(topic)
    picks = [topics[(2 * i + 1) * len(topics) // (2 * n)] for i in range(n)] if topics else []
    return [f"What do my notes say about {t}?" for t in dict.fromkeys(picks)]


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

    from rag.viewer import add_viewer

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
