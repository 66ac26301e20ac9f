"""Stage 7: the chat page, a thin Gradio front on the same pipeline as `rag ask`.

    python app.py                              # http://127.0.0.1:7860: chat + note viewer
    Client(url).predict("max sqs message size?", api_name="/ask")   # the reply, as markdown

`build_ui` lays out the page (`rag.web.page`) and wires it to the handlers
(`rag.web.handlers`); `serve` adds the note viewer (`rag.web.viewer`) and the live index
(`rag.search.live`) and runs the server; `main` is app.py's command line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time

from rag.errors import RagError, internal_error
from rag.search.live import LiveIndex, serving, shut_down
from rag.settings import (
    Settings,
    add_flags,
    add_verbosity_flags,
    configure_logging,
    settings_from_args,
)

log = logging.getLogger(__name__)
FLAGS = ("notes_dir", "index_dir", "model_path", "port", "host", "allowed_hosts", "auth_file")
FLAGS += ("feedback", "editor")
LLM_FLAGS = ("llm_url", "llm_model", "llm_timeout")
EXAMPLES = """examples:
  python app.py
  python app.py --notes ~/notes --port 7861
  python app.py --host 0.0.0.0 --auth-file ~/.rag-auth   # the file holds me:secret
  python app.py --llm-url http://127.0.0.1:8080/v1  # an LLM writes the answers"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Chat with your markdown notes: answers are quoted lines, with citations.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(parser, *FLAGS, *LLM_FLAGS)
    add_verbosity_flags(parser)
    parser.add_argument("--auth", help=argparse.SUPPRESS)  # refused below, with the way out
    args = parser.parse_args(argv)
    if args.auth is not None:
        parser.error(
            "--auth would show the password to every user of this machine (ps); put "
            "user:password in a file only you can read and pass --auth-file FILE, or set RAG_AUTH"
        )
    configure_logging(args, "app")
    try:
        settings = settings_from_args(args)
        live = serving(settings, page=True)  # no index yet: built once the page serves
    except RagError as e:
        print(f"app: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not the user's doing
        if args.debug:
            raise
        print(internal_error("app", e), file=sys.stderr)
        return 1
    serve(live, settings)
    return 0


def build_ui(live: LiveIndex, settings: Settings):
    """The chat page, plus API endpoints: /ask (the reply as markdown), /ask_json, /reindex
    and /status. Every question uses the live index's newest complete generation."""
    import gradio as gr  # seconds to import: after the settings and the index are known good

    from rag.web.handlers import Handlers
    from rag.web.page import build_page
    from rag.web.panel import sources_html
    from rag.web.reply import escape_md

    h = Handlers(live, settings)
    with gr.Blocks(title="Ask your notes", analytics_enabled=False) as demo:
        page = build_page(live.current, settings, live.describe())
        turns = gr.State([])
        ins = [page.box, page.chatbot, turns, page.k, page.mode, page.why, page.write]
        ins += [page.spelling, page.only]
        outs = [page.box, page.chatbot, turns, page.sources]
        # Updates that take milliseconds show no progress: gradio's default lays a fading
        # overlay over the outputs (the panel on every click in the chat, the status line on
        # every tick), which flickers and, caught mid-fade, fails the page's contrast audit.
        private = dict(api_visibility="private", show_progress="hidden")
        streamed = dict(private, concurrency_id="chat", concurrency_limit=8)
        # Callable as /chat (not listed in the API page): bench/served.py drives it.
        chat = dict(streamed, api_name="chat", api_visibility="undocumented")
        # Each answered question keeps the conversation in the browser's local storage.
        saved = gr.BrowserState([], storage_key="rag-conversations")
        conversation = gr.State(None)  # its id in `saved`; None: not kept yet
        keep = dict(
            fn=h.keep_conversation,
            inputs=[conversation, page.chatbot, turns, saved],
            outputs=[conversation, saved],
            **private,
        )
        # With an LLM, whose answer takes seconds, Send is a Stop button while it is written.
        stop = _StopButton(page.box, private) if settings.llm is not None else None
        if stop:  # (gradio runs a trigger's listeners in order: this one must come first)
            stop.on(page.box.submit)
        asked = [page.box.submit(h.chat, ins, outs, **chat)]
        for example in page.examples:  # its text into the box, then asked like a typed one
            shown = example.click(lambda text: text, example, page.box, queue=False, **private)
            if stop:
                stop.on(shown.then)
            asked.append(shown.then(h.chat, ins, outs, **streamed))
        # A question offered under an answer (`next_questions`): asked as a typed one.
        picked = page.chatbot.option_select(h.picked, None, page.box, queue=False, **private)
        if stop:
            stop.on(picked.then)
        asked.append(picked.then(h.chat, ins, outs, **streamed))
        for answering in asked:
            answering.then(**keep)
        if stop:
            stop.cancels(asked)
        page.chatbot.change(
            lambda messages: gr.Row(visible=not messages),
            page.chatbot,
            page.examples_row,
            queue=False,
            **private,
        )
        page.chatbot.select(h.show_selected, [turns, page.why], page.sources, **private)
        page.chatbot.like(h.vote, [turns], None, **private)
        page.why.change(h.show_last, [turns, page.why], page.sources, **private)

        # "New chat" and the chat's trash icon both start over: the messages, the follow-up
        # memory and the sources panel (the trash alone used to leave the last two behind).
        def new_chat():
            return [], [], sources_html(None, []), None

        restart = [page.chatbot, turns, page.sources, conversation]
        page.clear.click(new_chat, None, restart, **private)
        page.chatbot.clear(lambda: new_chat()[1:], None, restart[1:], **private)
        gr.on([demo.load, saved.change], h.conversation_titles, saved, page.history, **private)
        page.history.click(h.reopen, [page.history, saved], restart, **private)
        reindexing = dict(private, show_progress="minimal")  # seconds: its timer shows
        page.reindex.click(lambda: escape_md(h.reindex()), None, page.status, **reindexing)
        # The status line; and the intro and examples again once a new index is in.
        shown = gr.State(live.version)  # the version the first screen was made from
        screen = [page.status, shown, page.intro, *page.examples]
        gr.on([demo.load], h.tick, shown, screen, **private)
        gr.Timer(3.0).tick(h.tick, shown, screen, **private)
        gr.api(h.reindex, api_name="reindex")
        gr.api(h.status, api_name="status")
        gr.api(h.respond, api_name="ask", concurrency_id="api", concurrency_limit=8)
        gr.api(h.respond_json, api_name="ask_json", concurrency_id="api", concurrency_limit=8)
    return demo


class _StopButton:
    """While an answer is written, the question box's Send button is a Stop button that ends
    it (the words so far stay), as gradio's ChatInterface does. Only the buttons change: what
    is typed in the box meanwhile stays."""

    def __init__(self, box, private: dict) -> None:
        self.box, self.private = box, private

    def on(self, trigger) -> None:
        """Show Stop when `trigger` starts an answer; register it before the answer's own
        listener on the same trigger."""
        import gradio as gr

        def answering():
            return gr.Textbox(submit_btn=False, stop_btn="Stop")

        trigger(answering, None, self.box, queue=False, **self.private)

    def cancels(self, asked: list) -> None:
        """Stop ends any of the `asked` events; Send comes back when one ends either way."""
        import gradio as gr

        def idle():
            return gr.Textbox(submit_btn="Send", stop_btn=False)

        for event in asked:
            event.then(idle, None, self.box, queue=False, **self.private)
        self.box.stop(None, None, None, cancels=asked, **self.private)


def serve(live: LiveIndex, settings: Settings) -> None:
    """Serve the chat at /, the note viewer at /note/ and the JSON API at /api/ until
    interrupted (`rag.search.live.serving` gives `live`)."""
    import gradio as gr
    import uvicorn
    from fastapi import FastAPI, Request
    from starlette.routing import Mount

    from rag.web.api import add_api
    from rag.web.guard import Guard, Throttle
    from rag.web.page import PAGE_CSS, PAGE_JS
    from rag.web.service import Service
    from rag.web.viewer import add_viewer

    demo = build_ui(live, settings)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    throttle = Throttle() if settings.sign_in else None  # Host, headers, uploads, sign-ins
    app.add_middleware(Guard, names=settings.host_names, throttle=throttle)

    async def signed_in(request: Request) -> bool:
        """Gradio's own test: with auth on, the request carries a session cookie it issued."""
        chat = next(r.app for r in app.routes if isinstance(r, Mount) and r.path in ("", "/"))
        if chat.auth is None:
            return True
        cookies = request.cookies
        token = cookies.get(f"access-token-{chat.cookie_id}") or cookies.get(
            f"access-token-unsecure-{chat.cookie_id}"
        )
        return token in chat.tokens

    # Before the page's mount, which takes all the rest.
    add_viewer(app, settings.folders, signed_in, settings.feedback_file)
    add_api(app, Service(live, settings), settings, signed_in)
    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        server_name=settings.host,
        server_port=settings.port,
        auth=settings.sign_in,
        css=PAGE_CSS,
        js=PAGE_JS,
        footer_links=[],  # no "Use via API" drawer in the user's way: /api/docs has it
        ssr_mode=False,
        run_history=False,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_level="warning")
    )
    url = f"http://{settings.host}:{settings.port}"
    threading.Thread(target=_announce, args=(server, url, live), daemon=True).start()
    try:
        server.run()
    finally:
        shut_down(live)  # a first build or a line pass in progress ends before the process


def _announce(server, url: str, live: LiveIndex) -> None:
    """Say where the chat is, once the server listens; a first build waiting for it starts."""
    while not server.started and not server.should_exit:
        time.sleep(0.05)
    if server.started:
        live.page_up()
        log.info("Running on local URL:  %s", url)
