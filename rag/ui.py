"""Stage 7: the chat page, a thin Gradio front on the same engine calls as `rag ask`.

    demo = build_ui(open_engine(settings), settings)
    demo.launch(server_name=settings.host, server_port=settings.port)
    Client(url).predict("max sqs message size?", api_name="/ask")   # the reply, as markdown

Everything from the notes or the user passes through `escape_md` before it reaches markdown:
the chat shows notes as text, never as live HTML.
"""

import json
import re
import textwrap
from collections.abc import Callable

import gradio as gr

from rag.answer import Answer, Citation, answer_json, ask
from rag.search import Engine, Hit
from rag.settings import Settings

_INLINE = re.compile(r"([\\`*_\[\]|~])")  # emphasis, code, links/images, tables, strikethrough
_BLOCK_MARK = re.compile(r"^([#+=-])")  # a heading, list item or setext underline at line start
_ORDERED_MARK = re.compile(r"^(\d+)([.)])")
_MARKERS = re.compile(r"^(.*?)((?: \[\d+\])*)$")  # "line of the note [1]" -> (line, " [1]")


def escape_md(text: str) -> str:
    """Make text from the notes or the user display literally in the chat's markdown.

    escape_md("<img src=x onerror=alert(1)>")   # '&lt;img src=x onerror=alert(1)&gt;'
    escape_md("- **a** [b](c)")                 # '\\- \\*\\*a\\*\\* \\[b\\](c)'
    """
    return "\n".join(_escape_line(line) for line in text.splitlines())


def _escape_line(line: str) -> str:
    expanded = line.expandtabs(4)
    body = expanded.lstrip(" ")
    if not body:
        return ""
    indent = len(expanded) - len(body)
    # Entities, not backslashes, for HTML: a backslash does not stop a tag in raw HTML.
    body = body.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = _INLINE.sub(r"\\\1", body)
    body = _ORDERED_MARK.sub(r"\1\\\2", _BLOCK_MARK.sub(r"\\\1", body))
    # Keep the indentation visible; four real spaces would start a code block instead.
    return "&nbsp;" * indent + body


def reply_markdown(answer: Answer) -> str:
    """The chat reply: any notices, the answer with its [n] markers, then its sources."""
    notices = [f"**Note:** {escape_md(n)}" for n in answer.notices]
    if answer.answered:
        body = [_answer_lines(answer.text), "**Sources**", *map(_source, answer.citations)]
    else:
        body = [escape_md(answer.text)]
        if answer.candidates:
            body += ["The nearest sections of your notes:", _nearest(answer.candidates)]
    return "\n\n".join([*notices, *body])


def _answer_lines(text: str) -> str:
    """Escape each answer line but keep its trailing [n] markers, which are ours."""
    lines = []
    for line in text.splitlines():
        words, markers = _MARKERS.match(line).groups()
        lines.append(escape_md(words) + markers)
    return "\n".join(lines)


def _source(c: Citation) -> str:
    head = f"**[{c.n}]** {_heading(c.heading, c.path)} ({escape_md(c.location)})"
    cited = escape_md(textwrap.dedent(c.text)).splitlines() or [""]
    return head + "\n\n" + "\n".join(f"> {line}" for line in cited)


def _nearest(hits: list[Hit]) -> str:
    return "\n".join(
        f"- {_heading(h.chunk.heading, h.chunk.path)} ({escape_md(h.chunk.location)})" for h in hits
    )


def _heading(heading: tuple[str, ...], path: str) -> str:
    # The " > " is ours and mid-line, so it cannot open a quote; each part is escaped.
    return " > ".join(escape_md(part) for part in heading) or escape_md(path)


def build_ui(engine: Engine, settings: Settings) -> gr.Blocks:
    """The chat page, plus two API endpoints: /ask (the reply as markdown) and /ask_json."""

    def respond(message: str, history: list[dict] | None = None) -> str:
        """Answer a question from the notes, as markdown with [n] markers and its sources.

        Each question stands alone: `history` follows the chat convention and is not used.
        """
        try:
            answer = ask(engine, message, k=settings.top_k, mode=settings.mode)
        except ValueError as e:  # an empty question: say so, search nothing
            return f"**Nothing searched:** {escape_md(str(e))}."
        return reply_markdown(answer)

    def respond_json(message: str) -> str:
        """The answer as JSON text, as `rag ask --json` prints it; empty gives {"error": ...}.

        Text, not a dict: gradio_client takes any dict with a "path" key for a file to fetch.
        """
        try:
            answer = ask(engine, message, k=settings.top_k, mode=settings.mode)
        except ValueError as e:
            return json.dumps({"question": message, "error": str(e)})
        return json.dumps({"notices": [], **answer_json(answer)}, ensure_ascii=False)

    def chat(message: str, history: list[dict]) -> tuple[str, list[dict]]:
        turn = [{"role": "user", "content": escape_md(message)}] if message.strip() else []
        reply = {"role": "assistant", "content": respond(message, history)}
        return "", [*history, *turn, reply]

    with gr.Blocks(title="Ask your notes", analytics_enabled=False) as demo:
        _page(engine, settings, chat)
        # One queue for every way in: the engine is shared, and each answer takes milliseconds.
        gr.api(respond, api_name="ask", concurrency_id="engine")
        gr.api(respond_json, api_name="ask_json", concurrency_id="engine")
    return demo


def _page(engine: Engine, settings: Settings, chat: Callable) -> None:
    folder = escape_md(str(settings.notes_dir))
    gr.Markdown(
        f"## Ask your notes\n\nAnswers are lines quoted from the {len(engine.chunks)} sections "
        f"of the notes in {folder}, each with the file and lines it came from."
    )
    chatbot = gr.Chatbot(
        label="Chat",
        height=560,
        sanitize_html=True,  # a second guard; escape_md already keeps HTML out
        allow_tags=False,
        latex_delimiters=[],  # "$$" in a note is text, not a formula
        buttons=["copy", "copy_all"],  # no "share": these are private notes
        feedback_options=None,
        placeholder="Ask a question about your notes.",
    )
    box = gr.Textbox(
        placeholder="e.g. What is the maximum size of an SQS message?",
        show_label=False,
        submit_btn=True,
        autofocus=True,
    )
    box.submit(
        chat, [box, chatbot], [box, chatbot], api_visibility="private", concurrency_id="engine"
    )
    gr.ClearButton([box, chatbot], value="Clear chat")
