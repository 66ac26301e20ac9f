"""The chat page in a real browser: Debian's headless Chromium, driven by Playwright.

Each test does what a person does (types, presses Enter, clicks a citation, votes) and checks
what they would see. Times from pressing Enter to the first visible answer token and to the
whole answer are measured in the page and printed. Without Chromium or Playwright the tests
skip and say why, unless CI=true: then a missing browser is a failure.
The screenshots go to test-output/ (gitignored).
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from test_app import SQS_HEADING, SQS_QUESTION, SQS_QUOTE, Server, app_files, line_of, run_app

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "test-output"
FIRST_TOKEN_BUDGET_MS = 300  # Enter -> first visible answer token, median over a few questions
SQS_PATH = "AWS Notes › Integration and Messaging › " + SQS_HEADING
BOX = "#question textarea"


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory, aws_settings, embedder):
    files = app_files(tmp_path_factory, aws_settings, embedder)
    workdir = tmp_path_factory.mktemp("browser")
    feedback = {"RAG_FEEDBACK": str(workdir / "feedback.jsonl")}
    with run_app(files, workdir, env=feedback) as running:
        yield running


@dataclass
class Chat:
    """One browser tab on the chat page, and every dialog that tried to open in it."""

    page: object  # playwright Page
    dialogs: list[str]

    def ask(self, question: str, timeout_ms: int = 15_000) -> tuple[float, float, int]:
        """Type `question`, press Enter, wait for the whole answer.

        Returns milliseconds from Enter to the first visible answer token and to the whole
        answer, and how many different texts the answer showed on the way (streaming).
        """
        users = self.page.locator("#chat .user").count()
        asked = f"document.querySelectorAll('#chat .user').length > {users}"
        self.page.fill(BOX, question)
        for _ in range(3):
            self.page.evaluate(_WATCH, users)
            self.page.press(BOX, "Enter")
            try:  # the question shows at once, unless Enter came while the last answer's event
                self.page.wait_for_function(asked, timeout=3_000)  # was closing: Gradio drops
                break  # a submit while one is pending (trigger_mode "once"), as for a person
            except PlaywrightTimeout:
                continue
        try:
            self.page.wait_for_function("window.__ragCheck()", timeout=timeout_ms)
        except PlaywrightTimeout:  # say what the page showed
            shown = self.page.locator("#chat .bot").all_inner_texts()[-2:]
            raise AssertionError(f"no whole answer to {question!r}; last: {shown}") from None
        t = self.page.evaluate("window.__rag")
        return t["first"] - t["t0"], t["full"] - t["t0"], t["states"]

    def answer(self, index: int = -1) -> str:
        return self.page.locator("#chat .bot").nth(index).inner_text()


# Installed just before Enter: times the keydown, the first non-empty text of the new answer
# and its final form (with its sources list), all on the page's own clock. The new answer is
# the last one once the new question shows: the handler adds both in one update. (Counting
# answers beforehand was flaky: right after an answer Gradio may briefly render one more.)
# `window.__ragCheck` is the same check, for the test's polling should a mutation be missed.
_WATCH = """(users) => {
  const t = window.__rag = {t0: null, first: null, full: null, states: 0, last: ""};
  document.querySelector("#question textarea").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && t.t0 === null) t.t0 = performance.now();
  }, {capture: true, once: true});
  const done = /\\n(Sources|Closest lines|The nearest sections of your notes:)\\n|Nothing searched/;
  const check = () => {
    if (t.full !== null || document.querySelectorAll("#chat .user").length <= users) return;
    const bots = document.querySelectorAll("#chat .bot");
    const text = bots.length ? bots[bots.length - 1].innerText.trim() : "";
    if (!text || text === "…" || text === t.last) return;  // "…": an LLM's answer to come
    const now = performance.now();
    t.last = text; t.states += 1;
    if (t.first === null) t.first = now;
    if (done.test(text)) t.full = now;
  };
  window.__ragCheck = () => { check(); return t.full !== null; };
  // The whole body, not #chat: Gradio may render or replace the chat element after the box.
  new MutationObserver(check).observe(document.body,
                                      {childList: true, subtree: true, characterData: true});
}"""


@pytest.fixture
def chat(browser, server: Server):
    context = browser.new_context(viewport={"width": 1360, "height": 960})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url[:-1])
    page = context.new_page()
    dialogs: list[str] = []

    def refuse(dialog) -> None:  # an alert() from a note or a question must never happen
        dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    context.on("page", lambda p: p.on("dialog", refuse))
    page.on("dialog", refuse)
    page.goto(server.url)
    page.wait_for_selector(BOX, timeout=30_000)
    page.wait_for_selector("#chat", state="attached", timeout=30_000)
    yield Chat(page, dialogs)
    context.close()
    assert dialogs == [], f"a dialog opened: {dialogs}"


def _report(capsys, label: str, times: list[tuple[float, float, int]]) -> None:
    with capsys.disabled():  # the figures are wanted in every run, not only with -s
        for first, full, steps in times:
            print(f"\n{label}: first token {first:.0f} ms, full answer {full:.0f} ms", end="")
            print(f" ({steps} steps)")


def _screenshot(chat: Chat, name: str, full_page: bool = True) -> None:
    OUT.mkdir(exist_ok=True)
    chat.page.screenshot(path=str(OUT / name), full_page=full_page)


# --- asking -------------------------------------------------------------------------------


def test_answer_shows_whole_with_a_cited_heading(chat: Chat, server: Server, capsys):
    line = line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    first, full, states = chat.ask(SQS_QUESTION)
    _report(capsys, "SQS question", [(first, full, states)])
    assert 0 < first == full  # quoted lines are ready at once: no pacing to look like typing
    answer = chat.answer()
    assert SQS_QUOTE in answer.splitlines()[0] and "[1]" in answer
    loc = re.search(rf"{SQS_HEADING}: \[1\] (aws-notes\.md:{line}(-\d+)?)", answer)[1]
    card = chat.page.locator("#sources .rag-card").first
    assert card.locator(".rag-head").inner_text() == SQS_PATH
    assert card.locator(".rag-loc").first.inner_text() == f"[1] {loc}"
    assert card.locator("mark").first.inner_text().startswith(f"[1]\n  - {SQS_QUOTE}")
    editor = card.locator("a.rag-editor")  # the line in the user's editor (RAG_EDITOR)
    notes = (server.notes / "aws-notes.md").resolve()
    assert editor.get_attribute("href") == f"vscode://file{notes}:{line}"
    assert editor.inner_text() == "open in editor"
    _screenshot(chat, "chat.png")


def test_first_token_arrives_quickly(chat: Chat, capsys):
    questions = [SQS_QUESTION, "what is the default visibility timeout", "gp3 max iops"]
    times = [chat.ask(q) for q in questions]
    _report(capsys, "timing", times)
    median_first = statistics.median(first for first, _, _ in times)
    assert median_first <= FIRST_TOKEN_BUDGET_MS, f"median first token {median_first:.0f} ms"


def test_a_citation_opens_the_note_in_a_sheet_at_its_lines(chat: Chat, server: Server):
    line = line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    chat.ask(SQS_QUESTION)
    page = chat.page
    end = int(re.search(rf"aws-notes\.md:{line}-?(\d*)$", chat.answer())[1] or line)
    cited = rf"/note/aws-notes\.md\?start={line}&end={end}&q=[0-9a-f]{{16}}#L{line}$"
    sheet = page.locator("#rag-sheet")
    marker = page.locator("#chat .bot a", has_text="1").first  # the [1] in the answer
    for link in (marker, page.locator("#sources .rag-loc").first):  # and the panel's card
        link.click()
        sheet.wait_for(state="visible")
        assert re.search(cited, sheet.locator("iframe").get_attribute("src"))  # q: the digest
        note = page.frame_locator("#rag-sheet iframe")
        row = note.locator(f"#L{line}")
        assert row.get_attribute("class") == "l hit"
        assert row.inner_text() == f"{line}\n  - {SQS_QUOTE}"
        assert note.locator("header .where").inner_text() == SQS_PATH  # the heading path
        assert note.locator(".hit").count() == end - line + 1
        box, frame = row.bounding_box(), sheet.locator("iframe").bounding_box()
        assert frame["y"] < box["y"] < frame["y"] + frame["height"] - box["height"], "not in view"
        _screenshot(chat, "viewer-sheet.png")
        page.keyboard.press("Escape")  # closes it, back on the link it came from
        sheet.wait_for(state="hidden")
        assert page.evaluate("document.activeElement.getAttribute('href')") == (
            link.get_attribute("href")
        )
    box = marker.bounding_box()  # a target one can hit
    assert box["width"] >= 24 and box["height"] >= 24, box
    assert SQS_QUOTE in marker.get_attribute("title")  # preview
    with page.context.expect_page() as opened:  # with Ctrl: the viewer in a tab of its own
        marker.click(modifiers=["Control"])
    full = opened.value
    full.wait_for_load_state()
    assert re.search(cited, full.url), full.url
    assert full.locator(f"#L{line}").get_attribute("class") == "l hit"
    full.close()
    assert not sheet.is_visible()


def test_the_sheet_steps_through_the_sources_and_goes_back(chat: Chat):
    chat.ask(SQS_QUESTION)
    page = chat.page
    cards = page.locator("#sources .rag-loc")
    hrefs = list(dict.fromkeys(cards.evaluate_all("els => els.map(e => e.getAttribute('href'))")))
    assert len(hrefs) >= 2, hrefs
    sheet, frame = page.locator("#rag-sheet"), page.locator("#rag-sheet iframe")
    cards.first.click()
    count = sheet.locator(".rag-sheet-count")
    assert count.inner_text() == f"1 of {len(hrefs)}"
    sheet.get_by_role("button", name="Next citation").click()
    assert (frame.get_attribute("src"), count.inner_text()) == (hrefs[1], f"2 of {len(hrefs)}")
    sheet.get_by_role("button", name="Previous citation").click()
    sheet.get_by_role("button", name="Previous citation").click()  # round to the last
    assert frame.get_attribute("src") == hrefs[-1]
    assert sheet.locator(".rag-sheet-page").get_attribute("href") == hrefs[-1]
    sheet.get_by_role("button", name="Back to answer").click()
    sheet.wait_for(state="hidden")
    assert page.evaluate("document.activeElement.getAttribute('href')") == hrefs[0]


def test_questions_offered_under_an_answer_are_asked_with_a_click(chat: Chat):
    chat.ask(SQS_QUESTION)
    page = chat.page
    offered = page.locator("#chat").get_by_role("button", name="What do my notes say about")
    offered.first.wait_for()
    assert offered.count() == 3
    question = offered.first.inner_text().strip()
    assert question == "What do my notes say about SNS - Simple Notification Service?"
    offered.first.click()
    page.wait_for_function(
        "document.querySelectorAll('#chat .bot').length === 2 && "
        "/Sources/.test([...document.querySelectorAll('#chat .bot')].pop().innerText)"
    )
    assert page.locator("#chat .user").last.inner_text() == question
    assert "SNS" in chat.answer()
    assert page.locator("#sources .rag-asked").inner_text() == f"For “{question}”"
    _screenshot(chat, "next-questions.png")


def test_the_answer_whose_sources_show_is_marked(chat: Chat):
    chat.ask(SQS_QUESTION)
    chat.ask("gp3 max iops")
    page = chat.page
    bots, asked = page.locator("#chat .bot"), page.locator("#sources .rag-asked")
    shown = page.locator("#chat .bot[data-rag-shown]")
    assert bots.count() == 2 and shown.count() == 1
    assert bots.nth(1).get_attribute("data-rag-shown") == ""  # the newest, as the panel
    assert asked.inner_text() == "For “gp3 max iops”"
    bots.nth(0).locator("p, li").first.click()  # an earlier answer: its sources come back
    page.wait_for_function(
        "document.querySelector('#sources .rag-asked').innerText.includes('SQS')"
    )
    assert bots.nth(0).get_attribute("data-rag-shown") == "" and shown.count() == 1
    assert asked.inner_text() == f"For “{SQS_QUESTION}”"
    _screenshot(chat, "earlier-answer.png")
    chat.ask("what is the default visibility timeout")  # a new answer: marked, as the panel
    assert bots.nth(2).get_attribute("data-rag-shown") == "" and shown.count() == 1


def test_html_from_notes_and_questions_stays_inert(chat: Chat):
    payload = "<img src=x onerror=alert(1)>"
    chat.ask(f"What is the onerror payload? {payload}")
    page = chat.page
    assert page.locator("#chat .user").last.inner_text().endswith(payload)
    assert f"The onerror payload is {payload} in a note [1]" in chat.answer()
    chat.ask("What is the template payload?")
    template = "${alert(1)} and {{constructor.constructor('alert(1)')()}}"
    assert template in chat.answer()
    assert template in page.locator("#sources").inner_text()
    chat.ask("What is the script payload?")
    assert "<script>alert(1)</script>" in page.locator("#sources").inner_text()
    page.locator("#sources .rag-loc").first.click()  # the note, in the sheet over the chat
    note = page.frame_locator("#rag-sheet iframe")
    assert "<script>alert(1)</script>" in note.locator("body").inner_text()
    assert f"{payload} in a note" in note.locator("body").inner_text()
    for where in (page, note):
        assert where.locator("img[src=x], .rag-excerpt img, .note img").count() == 0
        assert where.locator("main script, #chat script, #sources script").count() == 0
    page.wait_for_timeout(300)  # an onerror would have fired by now
    assert chat.dialogs == []


def test_bare_urls_in_notes_stay_text(chat: Chat):
    chat.ask("What is the autolink payload?")
    shown = "https://example.com/phish and www.example.com and ann@example.com"
    assert shown in chat.answer()  # as written, backslash escapes not visible
    links = chat.page.locator("#chat a, #sources a:not(.rag-editor)").evaluate_all(
        "(a) => a.map((x) => x.href)"
    )
    assert links and all("/note/" in href for href in links)  # only citations link anywhere
    editor = chat.page.locator("#sources a.rag-editor").evaluate_all("(a) => a.map((x) => x.href)")
    assert editor and all(href.startswith("vscode://file/") for href in editor)  # and their lines


def test_a_followup_is_answered_in_context(chat: Chat, capsys):
    chat.ask("lambda max timeout")
    times = chat.ask("and the default?")
    _report(capsys, "follow-up", [times])
    answer = chat.answer()
    assert 'read as a follow-up: searched for "lambda max timeout the default?"' in answer
    assert "Timeout: 3s (1s-900s) [1]" in answer
    head = chat.page.locator("#sources .rag-card .rag-head").first.inner_text()
    assert head == "AWS Notes › Lambda › Lambda Function Configuration"
    _screenshot(chat, "followup.png")


def test_a_conversation_is_kept_in_the_browser_and_reopens(chat: Chat):
    rows = chat.page.locator("#history tr")

    def conversations() -> list[str]:
        chat.page.locator("#conversations button[aria-label*='idebar']").first.click()
        rows.filter(has_text="default visibility timeout").first.wait_for(timeout=10_000)
        return rows.all_inner_texts()

    chat.ask("lambda max timeout")
    chat.page.click("#new-chat")
    chat.page.wait_for_function("document.querySelectorAll('#chat .user').length === 0")
    chat.ask("what is the default visibility timeout")
    before = conversations()  # the list follows as questions are answered
    chat.page.reload()  # a reload starts a new chat; the list is still there, newest first
    chat.page.wait_for_selector(BOX)
    assert chat.page.locator("#chat .user").count() == 0
    titles = conversations()
    assert titles == before and len(titles) >= 2
    assert "default visibility timeout" in titles[0] and "lambda max timeout" in titles[1]
    rows.filter(has_text="lambda max timeout").first.click()
    chat.page.wait_for_function("document.querySelectorAll('#chat .user').length === 1")
    assert "lambda max timeout" in chat.page.locator("#chat .user").first.inner_text()
    chat.ask("and the default?")  # its follow-up memory came back with it
    assert 'read as a follow-up: searched for "lambda max timeout the default?"' in chat.answer()


@pytest.mark.parametrize("control", ["#new-chat", "#chat button[aria-label='Clear']"])
def test_new_chat_and_the_trash_icon_forget_the_conversation(chat: Chat, control: str):
    chat.ask("lambda max timeout")
    chat.page.click(control)
    chat.page.wait_for_selector("#sources .rag-empty")  # the panel starts over too
    assert chat.page.locator("#chat .user").count() == 0
    chat.ask("and the default?")  # no earlier question now: searched as it stands
    assert "read as a follow-up" not in chat.answer()


# --- controls and comforts ------------------------------------------------------------------


def test_controls_change_the_search_and_explain_it(chat: Chat):
    page = chat.page
    page.click("#settings button.label-wrap")
    page.get_by_role("radio", name="bm25").check()
    page.get_by_label("Why this source: BM25 rank, dense rank and fused score").check()
    number = page.locator("#settings input[type=number]")
    number.fill("2")
    number.press("Enter")
    chat.ask(SQS_QUESTION)
    panel = page.locator("#sources")
    why = panel.locator(".rag-card .rag-why").first.inner_text()
    assert why.startswith("BM25 rank #1 · dense rank not found · score ")
    assert panel.locator(".rag-card").count() + panel.locator(".rag-others li").count() <= 2


def test_copy_and_downvote(chat: Chat, server: Server):
    line = line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    chat.ask(SQS_QUESTION)
    page = chat.page
    page.locator("#chat .bot").last.hover()
    page.locator("#chat button[aria-label='Copy message']").last.click()
    copied = page.evaluate("navigator.clipboard.readText()")  # the text shown, not its HTML
    assert SQS_QUOTE in copied.splitlines()[0] and "[1]" in copied
    end = int(re.search(rf"{SQS_HEADING}: \[1\] aws-notes\.md:{line}-?(\d*)$", copied)[1] or line)
    assert "<" not in copied and "/note/" not in copied
    page.locator("#chat button[aria-label='Dislike']").last.click()
    page.get_by_text("Saved to feedback.jsonl").wait_for()
    feedback = Path(server.log.parent / "feedback.jsonl").read_text().splitlines()
    entry = json.loads(feedback[-1])
    assert (entry["question"], entry["vote"]) == (SQS_QUESTION, "down")
    assert SQS_QUOTE in entry["answer"].splitlines()[0] and "[1]" in entry["answer"]
    cited = entry["citations"][0]
    assert cited == {
        "n": 1,
        "path": "aws-notes.md",
        "heading": ["AWS Notes", "Integration and Messaging", SQS_HEADING],
        "start_line": line,
        "end_line": end,
        "text": cited["text"],
    }
    assert cited["text"].split("\n")[0] == f"  - {SQS_QUOTE}"
    votes = Path(server.log.parent / "feedback.jsonl")
    before = len(votes.read_text().splitlines())
    page.locator("#chat .bot").last.hover()
    page.locator("#chat button[aria-label='Feedback']").last.click()  # the flag: reasons
    page.locator("#chat button", has_text="Wrong lines").last.click()
    deadline = time.monotonic() + 10  # the second "Saved" toast may sit beside the first
    while "reason" not in votes.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    again = json.loads(votes.read_text().splitlines()[-1])
    assert (again["id"], again["vote"], again["reason"]) == (entry["id"], "down", "Wrong lines")
    assert len(votes.read_text().splitlines()) == before  # replaced, not added
    page.locator("#chat .bot").last.hover()
    page.locator("#chat button[aria-label='Feedback']").last.click()
    page.locator("#chat button", has_text="Wrong lines").last.click()  # again: taken back
    page.get_by_text("was taken out of feedback.jsonl").first.wait_for()
    assert entry["id"] not in votes.read_text()


def test_a_down_vote_reason_is_given_by_keyboard_alone(chat: Chat, server: Server):
    votes = Path(server.log.parent / "feedback.jsonl")
    chat.ask("how long are sqs messages kept by default")
    page = chat.page
    page.mouse.move(0, 0)  # no hover: the keyboard alone
    page.locator("#chat button[aria-label='Feedback']").last.focus()
    page.keyboard.press("Tab")  # into the reasons the flag offers
    focused = "document.activeElement.innerText"
    assert page.evaluate(focused) == "Wrong lines"
    page.keyboard.press("Tab")
    assert page.evaluate(focused) == "Missed part of the answer"
    page.keyboard.press("Enter")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (
        votes.is_file() and "Missed part" in votes.read_text()
    ):
        time.sleep(0.1)
    entry = json.loads(votes.read_text().splitlines()[-1])
    assert (entry["vote"], entry["reason"]) == ("down", "Missed part of the answer")


def test_a_down_vote_gets_gold_lines_in_the_viewer_and_becomes_an_eval_case(
    chat: Chat, server: Server
):
    from rag.quality.evaluate import load_cases
    from rag.web.feedback import eval_cases, load_votes

    votes = Path(server.log.parent / "feedback.jsonl")
    question = "what is the default visibility timeout of a queue"
    chat.ask(question)
    page = chat.page
    page.locator("#chat .bot").last.hover()
    page.locator("#chat button[aria-label='Dislike']").last.click()
    page.get_by_text("Saved to feedback.jsonl").first.wait_for()
    entry = next(v for v in reversed(load_votes(votes)) if v["vote"] == "down")
    line = line_of(server.notes / "aws-notes.md", "Visibility timeout (default 30s")
    page.goto(f"{server.url}note/aws-notes.md?start={line}&end={line}#L{line}")
    form = page.locator("form.gold")
    assert f"Down-voted: “{entry['question']}”" in form.inner_text()
    assert form.locator("input[name=start]").input_value() == str(line)
    form.locator("input[name=end]").fill(str(line + 1))
    form.get_by_role("button", name="These lines answer my question").click()
    page.get_by_text(f"Lines {line}-{line + 1} are marked as answering").wait_for()
    assert page.locator(".hit").count() == 2  # the marked lines, shown
    _screenshot(chat, "viewer-gold.png")
    marked = next(v for v in load_votes(votes) if v.get("id") == entry["id"])
    gold = [{"path": "aws-notes.md", "start_line": line, "end_line": line + 1}]
    assert marked["gold"] == gold
    case = next(c for c in eval_cases(load_votes(votes)) if c["question"] == entry["question"])
    mine = votes.with_name("mine.jsonl")
    mine.write_text(json.dumps(case) + "\n")
    assert [(c.question, c.gold[0].start_line) for c in load_cases(mine)] == [
        (entry["question"], line)
    ]
    # Another site's page cannot post marks into the user's file.
    for sent in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):
        other = httpx.post(
            f"{server.url}note/aws-notes.md",
            data={"vote": entry["id"], "start": "1", "end": "1"},
            headers={"Origin": "null", **sent},
        )
        assert other.status_code == 403, sent
    assert next(v for v in load_votes(votes) if v.get("id") == entry["id"])["gold"] == gold


def test_the_empty_chat_offers_examples(chat: Chat):
    intro = chat.page.locator("#intro").inner_text()  # what is here, and the local promise
    assert "Topics: Overview · " in intro and "no question or note leaves it" in intro
    status = chat.page.locator("#index-status").inner_text()
    # re.search: while the 3 s status tick runs, Gradio adds its timer ("0.1s") before the text
    assert re.search(r"Index: 2 notes, \d+ sections, updated (just now|\d+ (min|h) ago)", status)
    examples = chat.page.locator("#examples button.example")
    assert examples.count() == 4
    _screenshot(chat, "empty.png")
    text = examples.first.inner_text()
    assert text.startswith("What do my notes say about ")
    examples.first.click()
    chat.page.wait_for_function(
        "document.querySelectorAll('#chat .bot').length === 1 && /Sources|Closest lines|"
        "nearest sections/.test(document.querySelector('#chat .bot').innerText)"
    )
    assert chat.page.locator("#chat .user").first.inner_text() == text
    chat.page.locator("#examples").wait_for(state="hidden")  # the chat is no longer empty


@contextlib.contextmanager
def own_app(browser, files: Path, workdir: Path) -> Iterator[Chat]:
    """app.py over `files` (notes/, maybe no index/ yet), for one test, and a desktop tab on
    its page once the question box shows."""
    with run_app(files, workdir) as server:
        context = browser.new_context(viewport={"width": 1360, "height": 960})
        page = context.new_page()
        page.goto(server.url)
        page.wait_for_selector(BOX, timeout=30_000)
        page.wait_for_selector("#chat", state="attached")
        try:
            yield Chat(page, [])
        finally:
            context.close()


def test_a_citation_of_a_note_edited_since_finds_its_lines_again(browser, tmp_path):
    """An old answer's [n] after its note was edited: the sheet shows the quoted lines where
    they are now, and says so; after they are deleted, it says they are gone."""
    files = tmp_path / "files"
    (files / "notes").mkdir(parents=True)
    note = files / "notes" / "queues.md"
    body = "## Retention\n\n- Messages are kept for 4 days by default\n- At most 14 days\n"
    note.write_text(f"# Queues\n\n{body}")
    with own_app(browser, files, tmp_path) as chat:
        page = chat.page
        chat.ask("how long are messages kept by default", timeout_ms=180_000)
        assert "4 days" in chat.answer()
        marker = page.locator("#chat .bot a", has_text="1").first
        start, end = map(
            int, re.search(r"start=(\d+)&end=(\d+)", marker.get_attribute("href")).groups()
        )
        note.write_text(f"# Queues\n\nTwo lines\nwritten above.\n\n{body}")  # 3 lines down
        marker.click()
        frame = page.frame_locator("#rag-sheet iframe")
        was = str(start) if start == end else f"{start}-{end}"
        now = str(start + 3) if start == end else f"{start + 3}-{end + 3}"
        lines = "line is" if start == end else "lines are"
        said = f"This note changed since the answer; the quoted {lines} now {now} (was {was})."
        assert frame.locator(".changed").inner_text() == said
        assert frame.locator(f"#L{start + 3}").get_attribute("class") == "l hit"
        assert frame.locator(".hit").count() == end - start + 1
        page.keyboard.press("Escape")
        note.write_text("# Queues\n\n## Retention\n\n- Kept as long as you like\n")
        marker.click()
        assert "no longer in it" in frame.locator(".changed").inner_text()
        assert frame.locator(".hit").count() == 0


def test_the_page_serves_before_the_first_index_and_answers_once_it_is_in(
    browser, tmp_path, aws_settings
):
    """A newcomer's first `make app`: no index yet. The page serves while it is built, a
    question asked at once is answered when the first pass is in, and the first screen fills
    in (topics, examples) without a reload."""
    files = tmp_path / "files"
    shutil.copytree(aws_settings.notes_dir, files / "notes")  # and no index/
    with own_app(browser, files, tmp_path) as chat:
        page = chat.page
        chat.ask(SQS_QUESTION, timeout_ms=180_000)  # waits for the first pass, however long
        assert "256" in chat.answer() and "Sources" in chat.answer()
        intro = page.locator("#intro")
        page.wait_for_function(  # the next status tick brings the first screen
            "document.querySelector('#intro').innerText.includes('Topics:')", timeout=30_000
        )
        assert "being indexed" not in intro.inner_text()
        page.click("#new-chat")  # an empty chat again: the examples made from the index
        examples = page.locator("#examples button.example")
        examples.first.wait_for(timeout=10_000)
        assert examples.count() == 4 and examples.first.inner_text().startswith("What do my")
        status = page.locator("#index-status").inner_text()
        assert re.search(r"Index: 1 note, 451 sections, updated ", status), status


# --- accessibility ------------------------------------------------------------------------


def _axe(page, label: str, capsys) -> list[str]:
    """axe-core's critical and serious violations on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    bad = [v for v in found if v["impact"] in ("critical", "serious")]
    with capsys.disabled():
        print(f"\naxe, {label}: " + (", ".join(f"{v['id']} ({len(v['nodes'])})" for v in found)))
    return [
        f"{v['impact']} {v['id']}: {n['target']} {n.get('failureSummary', '')[:200]}"
        for v in bad
        for n in v["nodes"][:8]
    ]


def test_axe_finds_no_critical_or_serious_violation(chat: Chat, server: Server, capsys):
    page = chat.page
    problems = _axe(page, "empty chat", capsys)
    chat.ask(SQS_QUESTION)
    chat.ask("What is the capital of France?")  # declined: the nearest sections
    page.click("#settings button.label-wrap")
    page.locator("#settings input[type=checkbox]").first.check()  # why this source
    page.locator("#sources .rag-others summary").first.click()
    problems += _axe(page, "answered, settings and why open", capsys)
    line = line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    page.goto(f"{server.url}note/aws-notes.md?start={line}&end={line}")
    problems += _axe(page, "viewer", capsys)
    assert page.locator("h1").count() == 1
    page.emulate_media(color_scheme="dark")  # the viewer follows the system's theme
    try:
        background = "getComputedStyle(document.body).backgroundColor"
        assert page.evaluate(background) == "rgb(13, 17, 23)"
        problems += _axe(page, "viewer, dark", capsys)
    finally:
        page.emulate_media(color_scheme="light")
    assert problems == [], "\n".join(problems)


def test_on_a_phone_the_question_box_stays_in_view_and_sources_fold(browser, server, capsys):
    context = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_selector(BOX, timeout=30_000)
    page.wait_for_selector("#chat", state="attached")
    chat = Chat(page, [])

    def box_in_view() -> bool:
        box = page.locator(BOX).bounding_box()
        return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 844

    assert box_in_view()  # the empty page: not below the fold
    chat.ask(SQS_QUESTION)
    for where in ("0", "document.body.scrollHeight"):  # the top of the page and its end
        page.evaluate(f"window.scrollTo(0, {where})")
        assert box_in_view(), where
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    sources = page.locator("#chat .bot .rag-sources").last
    listed = sources.locator("li").first
    assert "aws-notes.md:" in listed.inner_text()
    _screenshot(chat, "phone.png")
    sources.locator("summary").click()  # folded: the answer alone
    listed.wait_for(state="hidden")
    sources.locator("summary").click()
    listed.wait_for(state="visible")
    problems = _axe(page, "phone, answered", capsys)
    listed.locator("a").first.tap()  # the viewer's sheet: the whole screen, laid out for it
    sheet = page.locator("#rag-sheet")
    sheet.wait_for(state="visible")
    assert sheet.bounding_box() == {"x": 0, "y": 0, "width": 390, "height": 844}
    viewer = page.frame_locator("#rag-sheet iframe")
    viewer.locator(".hit").first.wait_for()
    assert viewer.locator("html").evaluate("e => e.scrollWidth") <= 390
    _screenshot(chat, "phone-viewer.png", full_page=False)  # the screen, as the sheet covers it
    problems += _axe(page, "phone, viewer sheet", capsys)
    context.close()
    assert problems == [], "\n".join(problems)


def _dark(page) -> bool:
    return page.evaluate("document.body.classList.contains('dark')")


def _theme_shown(page, theme: str) -> None:
    """Wait until the theme toggle shows `theme` chosen (it is set as the page loads)."""
    page.wait_for_function(f"document.querySelector('#theme input:checked')?.value === '{theme}'")


def test_axe_finds_no_critical_or_serious_violation_in_the_dark_theme(chat: Chat, capsys):
    page = chat.page
    page.get_by_role("radio", name="Dark").check()
    assert _dark(page)
    page.wait_for_function("document.getAnimations().length === 0")  # colours in transition
    app = "getComputedStyle(document.querySelector('gradio-app')).backgroundColor"
    background = page.evaluate(app)
    assert background != "rgb(255, 255, 255)", background  # the theme's colours followed
    problems = _axe(page, "empty chat, dark", capsys)
    chat.ask(SQS_QUESTION)
    chat.ask("What is the capital of France?")
    page.click("#settings button.label-wrap")
    page.locator("#settings input[type=checkbox]").first.check()
    page.locator("#sources .rag-others summary").first.click()
    problems += _axe(page, "answered, settings and why open, dark", capsys)
    assert problems == [], "\n".join(problems)
    chat.ask(SQS_QUESTION)  # the cited line's highlight is a dark one, not a glaring light one
    mark = page.locator("#sources mark.rag-line").first
    assert mark.evaluate("(m) => getComputedStyle(m).backgroundColor") == "rgb(67, 53, 0)"
    _screenshot(chat, "dark.png")


def test_the_theme_choice_is_kept_across_a_reload(chat: Chat):
    page = chat.page  # the system's preference: light (Playwright's default)
    _theme_shown(page, "system")
    assert not _dark(page)
    page.get_by_role("radio", name="Dark").check()
    assert _dark(page)
    page.reload()
    page.wait_for_selector(BOX)
    _theme_shown(page, "dark")
    assert _dark(page)
    page.get_by_role("radio", name="Light").check()
    # Gradio follows the system's preference live; a choice made here outranks it. The page's
    # listeners run before this one, added last (in the order their queries were made).
    changed = "new Promise((done) => matchMedia('(prefers-color-scheme: dark)')"
    page.evaluate(f"() => {{ window.__changed = {changed}.addEventListener('change', done)); }}")
    page.emulate_media(color_scheme="dark")
    page.evaluate("window.__changed")
    assert not _dark(page)
    page.reload()
    page.wait_for_selector(BOX)
    _theme_shown(page, "light")
    assert not _dark(page)
    page.get_by_role("radio", name="System").check()  # back to following the system, live
    assert _dark(page)
    page.emulate_media(color_scheme="light")
    page.wait_for_function("!document.body.classList.contains('dark')")
    assert page.evaluate("localStorage.getItem('rag-theme')") == "system"


def test_escape_closes_the_settings_and_the_sidebar_and_returns_to_the_box(chat: Chat):
    page = chat.page
    page.fill(BOX, "a draft")
    page.click("#settings button.label-wrap")
    radio = page.get_by_role("radio", name="bm25")
    radio.focus()
    page.keyboard.press("Escape")
    radio.wait_for(state="hidden")
    assert page.locator("#settings button.label-wrap.open").count() == 0
    assert page.evaluate("document.activeElement.matches('#question textarea')")
    assert page.input_value(BOX) == "a draft"  # what the user typed stays
    page.locator("#conversations button[aria-label='Toggle Sidebar']").first.click()
    page.locator("#conversations.open").wait_for()
    page.keyboard.press("Escape")
    page.locator("#conversations.open").wait_for(state="detached")
    assert page.evaluate("document.activeElement.matches('#question textarea')")


def test_the_retrieval_modes_are_one_keyboard_radio_group(chat: Chat):
    page = chat.page
    page.click("#settings button.label-wrap")
    group = page.get_by_role("radiogroup", name="Retrieval mode")
    group.wait_for()  # the settings' controls render as they open, then become a group
    radios = group.get_by_role("radio")
    assert radios.count() == 3
    radios.first.focus()  # hybrid, the chosen one
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.value") == "bm25"
    assert [r.is_checked() for r in radios.all()] == [False, True, False]
    page.keyboard.press("Tab")  # one Tab stop: out of the group, not to "dense"
    assert page.evaluate("document.activeElement.type") != "radio"
    page.keyboard.press("Shift+Tab")  # back in, on the chosen one
    assert page.evaluate("document.activeElement.value") == "bm25"
    page.get_by_label("Why this source: BM25 rank, dense rank and fused score").check()
    chat.ask(SQS_QUESTION)  # the server searched as the keyboard chose: bm25 alone
    why = page.locator("#sources .rag-card .rag-why").first.inner_text()
    assert why.startswith("BM25 rank #1 · dense rank not found · score "), why
    dense = group.get_by_role("radio", name="dense")
    dense.click()  # by mouse: the pointer stays on it while the next question is typed
    page.focus(BOX)
    colour = "(r) => getComputedStyle(r).backgroundColor"
    assert dense.evaluate(colour) != radios.first.evaluate(colour)  # the chosen dot shows


# --- the notes' markdown, rendered ----------------------------------------------------------


def test_a_code_block_keeps_its_language_and_indentation_and_copies(chat: Chat, server: Server):
    chat.ask("Which Resources Queue Type is in the code payload?")
    page = chat.page
    code = page.locator("#chat .bot").last.locator("pre code.language-yaml")
    expected = "Resources:\n  Queue:\n    Type: AWS::SQS::Queue  # <script>alert(4)</script>"
    assert code.inner_text().rstrip("\n") == expected
    page.locator("#chat .bot").last.locator(".copy_code_button").click()
    assert page.evaluate("navigator.clipboard.readText()") == expected
    assert page.locator("#chat script, #sources script").count() == 0
    card = page.locator("#sources .rag-card", has_text="The code payload is this YAML").first
    assert card.locator("code.language-yaml").first.inner_text() == "  Resources:"
    line = line_of(server.notes / "hostile.md", "```yaml")
    card.locator(".rag-loc").first.click()  # the viewer, in the sheet over the chat
    note = page.frame_locator("#rag-sheet iframe")
    assert note.locator(f"#L{line + 1} code.language-yaml").inner_text() == "  Resources:"
    typed = "      Type: AWS::SQS::Queue  # <script>alert(4)</script>"  # as the note has it
    assert note.locator(f"#L{line + 3}").inner_text() == f"{line + 3}\n{typed}"
    assert note.locator(".hit").count() >= 1 and note.locator("main script").count() == 0
    _screenshot(chat, "code-block.png")


def test_a_table_renders_and_html_in_its_cells_stays_inert(chat: Chat):
    chat.ask("What is in the table payload?")
    page = chat.page
    cells = page.locator("#chat .bot").last.locator("table td")
    assert cells.nth(0).inner_text() == "<img src=y onerror=alert(2)>"
    assert cells.nth(1).locator("code").inner_text() == "<img src=z onerror=alert(3)>"
    assert page.locator("#chat .bot").last.locator("table th").first.inner_text() == "Table payload"
    panel = page.locator("#sources .md-cell", has_text="onerror=alert(2)")
    assert panel.first.inner_text() == "<img src=y onerror=alert(2)>"
    assert page.locator("#chat img, #sources img").count() == 0
    page.wait_for_timeout(300)  # an onerror would have fired by now
    _screenshot(chat, "table.png")


def test_links_in_notes_open_only_http_and_stay_text_otherwise(chat: Chat):
    page = chat.page
    chat.ask("What is the link payload?")
    chat.ask("What is the data payload?")
    chat.ask("What is the angle payload?")
    shown = page.locator("#chat").inner_text() + page.locator("#sources").inner_text()
    for text in [
        "[x](javascript:alert(1))",
        "[d](data:text/html,<script>alert(5)</script>)",
        "<javascript:alert(6)>",
    ]:
        assert text in shown  # as written: not a link
    angle = page.locator('#chat .bot a[href="https://example.com/angle"]').first
    assert angle.inner_text() == "https://example.com/angle"  # an autolink to http(s) links
    assert angle.get_attribute("target") == "_blank" and "noopener" in angle.get_attribute("rel")
    hrefs = page.locator("#chat a[href], #sources a[href]").evaluate_all(
        "(a) => a.map((x) => x.getAttribute('href'))"
    )
    assert hrefs and all(h.startswith(("/note/", "https://", "vscode://file/")) for h in hrefs)
    page.locator("#sources .rag-loc", has_text="hostile.md").first.click()  # in the sheet
    note = page.frame_locator("#rag-sheet iframe")
    body = note.locator("body").inner_text()
    assert "[x](javascript:alert(1))" in body and "<javascript:alert(6)>" in body
    assert note.locator('a[href="https://example.com/angle"]').count() == 1
    assert note.locator("a").count() == 1  # the one http link; nothing else opens anything
    page.wait_for_timeout(300)
