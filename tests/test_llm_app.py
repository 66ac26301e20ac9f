"""LLM answers through the chat app: `app.py --llm-url` against the real llama.cpp server.

The /ask and /ask_json endpoints, and the chat page in a real browser (its tokens stream in,
its [n] are links, the panel lists the cited excerpts first), then faults: a stopped server
and one that stalls give the extractive answer with a notice, in time. As in test_llm.py,
SmolLM2-135M is not asked to answer well, only the code's guarantees are checked.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from gradio_client import Client
from llm_server import FakeLLM, endless, free_port, stall
from test_app import SQS_QUESTION, SQS_QUOTE, Server, app_files, run_app
from test_browser import _WATCH, BOX, Chat, _report, _screenshot
from test_llm import assert_checked

from rag.answer.base import Answer, Citation
from rag.index.cutting import Chunk
from rag.search.engine import Hit
from rag.web.panel import sources_html
from rag.web.render import PartialAnswer, chat_html
from rag.web.reply import reply_markdown

MARKER = re.compile(r"\[(\d+)\]")
# A small prompt and answer: the model is slow on 2 busy cores, and the checks are the same.
SMALL = {"RAG_LLM_CONTEXT_CHARS": "1500", "RAG_LLM_MAX_TOKENS": "64"}


@pytest.fixture(scope="module")
def llm_app(tmp_path_factory, aws_settings, embedder, llama):
    files = app_files(tmp_path_factory, aws_settings, embedder)
    workdir = tmp_path_factory.mktemp("llm-app")
    with run_app(files, workdir, "--llm-url", llama.url, "--llm-timeout", "90", env=SMALL) as app:
        yield app


def quotes_sqs(answer: str) -> bool:
    """The extractive answer to SQS_QUESTION: the 256KB line first, cited [1]."""
    return SQS_QUOTE in answer.splitlines()[0] and "[1]" in answer


def _client(server: Server) -> Client:
    return Client(server.url, verbose=False, download_files=False, analytics_enabled=False)


def test_ask_json_gives_a_checked_llm_answer(llm_app: Server):
    out = json.loads(_client(llm_app).predict(SQS_QUESTION, api_name="/ask_json"))
    assert out["generator"] == "llm", out["notices"]
    assert out["answer"].strip()
    assert_checked(out)


def test_ask_gives_the_llm_answer_with_its_sources(llm_app: Server):
    reply = _client(llm_app).predict(SQS_QUESTION, api_name="/ask")
    if "The nearest sections of your notes:" in reply:  # the model said "not in your notes"
        assert "(aws-notes.md:" in reply.split("The nearest sections of your notes:")[1]
        return
    answer, sources = reply.split("\n\n**Sources**\n\n")
    assert "Written by your LLM" in answer or "**Unchecked:**" in answer
    assert sources.startswith("**[1]** AWS Notes › ")


def test_the_chat_streams_a_checked_llm_answer(browser, llm_app: Server, capsys):
    context = browser.new_context(viewport={"width": 1360, "height": 960})
    page = context.new_page()
    page.goto(llm_app.url)
    page.wait_for_selector(BOX, timeout=30_000)
    chat = Chat(page, [])
    # A question no other test asks: llama.cpp reuses a cached prompt, which would hide its cost.
    first, full, states = chat.ask("How long are SQS messages kept?", timeout_ms=120_000)
    _report(capsys, "LLM answer in the chat (SmolLM2-135M)", [(first, full, states)])
    assert 0 < first < full and states >= 3  # tokens came one after another
    answer = chat.answer()
    title = page.locator("#sources .rag-title").inner_text()
    if "Unchecked:" in answer:  # cited nothing: flagged, and every excerpt is shown
        assert title.startswith("Cited: none of the ")
    elif "Written by your LLM" in answer:
        cited = set(MARKER.findall(answer.split("\nSources\n")[0]))
        links = page.locator("#chat .bot").last.locator("a[href*='/note/aws-notes.md']")
        assert cited and links.count() >= len(cited)  # each [n] opens its note
        assert re.match(r"Cited: \d+ of the \d+ excerpts given to the LLM", title)
    else:  # declined: the nearest sections instead
        assert "The nearest sections of your notes:" in answer
    _screenshot(chat, "llm-chat.png")

    page.click("#settings button.label-wrap")  # switch the LLM off: quoted lines again
    page.locator("#write input").uncheck()
    chat.ask(SQS_QUESTION)
    assert quotes_sqs(chat.answer())
    assert page.locator("#sources .rag-title").inner_text().startswith("Sources: ")
    context.close()


def test_typing_while_an_llm_answer_streams_is_kept(browser, llm_app: Server):
    context = browser.new_context(viewport={"width": 1360, "height": 960})
    page = context.new_page()
    page.goto(llm_app.url)
    page.wait_for_selector(BOX, timeout=30_000)
    page.fill(BOX, "How long can a Lambda function run?")
    page.evaluate(_WATCH, 0)
    page.press(BOX, "Enter")
    page.wait_for_function("document.querySelectorAll('#chat .user').length > 0")
    page.locator(BOX).press_sequentially("and the default?")  # the next question, drafted
    assert not page.evaluate("window.__ragCheck()")  # ... while the answer was streaming
    page.wait_for_function("window.__ragCheck()", timeout=120_000)
    assert page.input_value(BOX) == "and the default?"
    context.close()


def test_stop_ends_an_llm_answer_and_send_comes_back(
    browser, tmp_path_factory, aws_settings, embedder
):
    files = app_files(tmp_path_factory, aws_settings, embedder)
    workdir = tmp_path_factory.mktemp("llm-stop")
    writer = FakeLLM(endless("word ", every=0.2))  # an answer that goes on for a minute
    args = ("--llm-url", writer.url, "--llm-timeout", "60")
    with writer, run_app(files, workdir, *args) as app:
        context = browser.new_context(viewport={"width": 1360, "height": 960})
        page = context.new_page()
        page.goto(app.url)
        page.wait_for_selector(BOX, timeout=30_000)
        stop = page.get_by_role("button", name="Stop")
        send = page.get_by_role("button", name="Send")
        assert send.is_visible() and not stop.is_visible()  # no answer under way
        page.fill(BOX, SQS_QUESTION)
        page.press(BOX, "Enter")
        answer = page.locator("#chat .bot").last
        page.locator("#chat .bot", has_text="word word").wait_for(timeout=30_000)
        page.locator(BOX).press_sequentially("a draft")  # typed while it is written
        stop.click()
        send.wait_for(timeout=10_000)  # Send again, at once, not after the minute
        assert not stop.is_visible()
        cut = answer.inner_text()
        time.sleep(1)  # five more words, had it gone on
        assert answer.inner_text() == cut and "Sources" not in cut  # the words so far stay
        assert page.input_value(BOX) == "a draft"  # the buttons changed, not the text
        page.click("#settings button.label-wrap")  # quoted lines: the chat goes on
        page.locator("#write input").uncheck()
        Chat(page, []).ask(SQS_QUESTION)
        answer = page.locator("#chat .bot").last.inner_text()
        assert quotes_sqs(answer)
        context.close()


@pytest.mark.parametrize("fault", ["stopped", "stalls"])
def test_a_failing_llm_gives_the_extractive_answer_in_time(
    fault, tmp_path_factory, aws_settings, embedder
):
    files = app_files(tmp_path_factory, aws_settings, embedder)
    workdir = tmp_path_factory.mktemp(f"llm-{fault}")
    with FakeLLM(stall(["It is "])) as staller:
        url = staller.url if fault == "stalls" else f"http://127.0.0.1:{free_port()}/v1"
        with run_app(files, workdir, "--llm-url", url, "--llm-timeout", "3") as app:
            start = time.monotonic()
            out = json.loads(_client(app).predict(SQS_QUESTION, api_name="/ask_json"))
            took = time.monotonic() - start
    assert out["generator"] == "extractive"
    assert quotes_sqs(out["answer"])
    assert any(n.startswith("LLM answer failed (") for n in out["notices"]), out["notices"]
    assert took < 30, f"the answer took {took:.0f}s with a 3s LLM timeout"


# --- how an LLM's answer is shown (pure: no server) ----------------------------------------


def _excerpt(n: int, start: int) -> Citation:
    text = f"- line {start} <b>x</b>\n- line {start + 1}"
    return Citation(n, "a.md", ("T", f"S{n}"), start, start + 1, text, text, start, start + 1)


def _written(text: str, cited: tuple[int, ...]) -> Answer:
    given = [_excerpt(n, 10 * n) for n in (*cited, *(n for n in (1, 2, 3) if n not in cited))]
    return Answer("q", text, True, given, generator="llm", cited=cited, uncited=not cited)


def test_an_llm_answer_links_its_markers_wherever_they_are():
    answer = _written("It is <b>256KB</b> [2], see [1][2].\n- a [list] `item`", cited=(1, 2))
    message = chat_html(answer)

    def link(n: int) -> str:
        url = f"/note/a.md?start={10 * n}&amp;end={10 * n + 1}#L{10 * n}"
        title = (
            f"a.md:{10 * n}-{10 * n + 1}: - line {10 * n} &lt;b&gt;x&lt;/b&gt; - line {10 * n + 1}"
        )
        return f'[<a href="{url}" title="{title}" target="_blank" rel="noopener">{n}</a>]'

    assert message.startswith(
        f"<p>It is &lt;b&gt;256KB&lt;/b&gt; {link(2)}, see {link(1)}{link(2)}.</p>"
        "<ul><li>a [list] <code>item</code></li></ul>"
        "<p><em>Written by your LLM from the excerpts below; each [n] names one it was given."
        '</em></p><details class="rag-sources" open><summary><strong>Sources</strong></summary>'
        f"<ul><li>T › S1: {link(1)} a.md:10-11</li><li>T › S2: {link(2)} a.md:20-21</li>"
    )
    # hover: the lines
    assert message.endswith(f"<li>T › S3: {link(3)} a.md:30-31</li></ul></details>")
    reply = reply_markdown(answer)
    assert reply.startswith("It is &lt;b&gt;256KB&lt;/b&gt; [2], see [1][2].\n\\- a \\[list")
    assert "\n\n**Sources**\n\n**[1]** T › S1 (a.md:10-11)\n\n> \\- line 10" in reply


def test_an_uncited_llm_answer_is_flagged_and_shows_every_excerpt():
    answer = _written("It is 256KB.", cited=())
    assert "<p><strong>Unchecked:</strong> this answer cites none of the excerpts" in chat_html(
        answer
    )
    assert "**Unchecked:**" in reply_markdown(answer)
    panel = sources_html(answer, [])
    assert "Cited: none of the 3 excerpts given to the LLM" in panel
    assert panel.count('<li class="rag-card">') == 3


def test_the_panel_shows_the_cited_excerpts_and_lists_the_rest():
    answer = _written("It is 256KB [2].", cited=(2,))
    hits = [Hit(Chunk(f"c{n}", "a.md", ("T", f"S{n}"), 10 * n, 10 * n + 1, "t", "T", "h"), 0.5)
            for n in (1, 2, 3)]  # fmt: skip
    panel = sources_html(answer, hits)
    assert "Cited: 1 of the 3 excerpts given to the LLM" in panel
    assert panel.count('<li class="rag-card">') == 1 and "T › S2" in panel.split("rag-others")[0]
    assert panel.split("rag-others")[1].count("<li>") == 2  # S1 and S3, under "Also found"


def test_a_streaming_llm_answer_is_rendered_as_it_grows():
    assert (
        PartialAnswer(("a <note>",)).html()
        == "<p><strong>Note:</strong> a &lt;note&gt;</p><p>…</p>"
    )
    partial = PartialAnswer(())
    for piece in ["It is *bi", "g* [1", "]\n\n- <b>x", "</b>\n\n```sh\nls -l"]:
        partial.add(piece)
        shown = partial.html()
    assert shown == (
        "<p>It is <em>big</em> [1]</p><ul><li>&lt;b&gt;x&lt;/b&gt;</li></ul>"
        '<div class="code_wrap"><button title="copy" class="copy_code_button" aria-label='
        '"Copy code"><span class="copy-text"></span><span class="check"></span></button>'
        '<pre><code class="language-sh">ls -l</code></pre></div>'
    )  # the code block still open shows as one; its [n] are links only once it is checked
