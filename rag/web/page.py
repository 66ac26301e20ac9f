"""The chat page's layout: chat, question box, search settings, sources panel, index status.

    page = build_page(live.current, settings, live.describe())  # inside `gr.Blocks()`
    intro_md, questions = first_screen(live.current, settings)  # again after each re-index

`rag.web.app` wires the handlers to these components.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import zip_longest

import gradio as gr

from rag.answer.base import Answer
from rag.answer.pipeline import ask
from rag.index.chunkfile import rows_by_path
from rag.index.cutting import Chunk
from rag.search.engine import Engine
from rag.settings import MODES, LLMSettings, Settings
from rag.web.feedback import REASONS
from rag.web.panel import PANEL_CSS, sources_html
from rag.web.reply import escape_md

MAX_SOURCES = 10
EXAMPLES = 4  # example questions on the empty chat
NEXT_QUESTIONS = 3  # questions offered under an answer (`next_questions`)
# Chunks the first screen reads: every one of a smaller index, this many evenly spread rows of
# a larger. A large index parses a row as it is read (rag.index.chunkfile): 36 us a row, so
# all of 1M rows would hold the page for half a minute when it opens.
FIRST_SCREEN_CHUNKS = 4_000
# The page's own CSS, beside Gradio's theme: a slider's min and max and a control's info
# line are drawn at 1.9:1 contrast (axe: serious); here in the text colour.
# A citation's [n] is a target of at least 24x24 px (WCAG 2.5.8), not the digit's 8x22.
# Gradio's own hover colour for a radio outranks its "checked" one: the chosen mode, with the
# pointer still on it after the click, showed a white dot on white. The question box had no
# focus ring (outline: none), so one is drawn around it.
# A down-vote's reasons open on hovering the flag only: on focus too here, for the keyboard.
# On a phone (up to 640 px wide) the question box stays at the bottom of the screen, over
# the page, and the chat takes the screen's height less that box; each answer carries its
# own sources (a block that folds), so the panel further down is not needed to read it.
PAGE_CSS = """
#settings .min_value, #settings .max_value, #settings .info-text {
  color: var(--body-text-color) !important; }
#chat .bot a[href^="/note/"] { display: inline-block; min-width: 24px; min-height: 24px;
  line-height: 24px; text-align: center; }
#chat .md p { margin: 0 0 0.6em; }
#chat .md :is(ul, ol) { margin: 0 0 0.6em; padding-left: 1.4em; }
#chat .md :not(pre) > code { padding: 1px 4px; border-radius: 4px;
  background: var(--code-background-fill); font-family: var(--font-mono); font-size: 0.92em; }
#chat .md pre { margin: 0 0 0.6em; padding: 10px 12px; overflow-x: auto;
  border-radius: 6px; background: var(--code-background-fill); font-family: var(--font-mono);
  font-size: 13px; white-space: pre; }
#chat .copy_code_button .copy-text::before { content: "⧉"; }
#chat .copy_code_button .check::before { content: "✓"; }
#chat .md table { margin: 0 0 0.6em; border-collapse: collapse; }
#chat .md :is(th, td) { padding: 4px 10px;
  border: 1px solid var(--border-color-primary); }
#chat .missing-note, #sources .missing-note { text-decoration: underline dotted; cursor: help; }
#settings input[type="radio"]:checked:hover { border-color: var(--checkbox-border-color-selected);
  background-color: var(--checkbox-background-color-selected); }
#settings input[type="radio"]:focus-visible, #question:focus-within {
  outline: 2px solid var(--color-accent); outline-offset: 2px; }
#chat .rag-sources > summary { cursor: pointer; margin-bottom: 0.3em; }
#chat .extra-feedback:focus-within .extra-feedback-options { display: flex; }
@media (max-width: 640px) {
  #chat { height: auto !important; min-height: 30dvh; max-height: calc(100dvh - 140px); }
  #chat .placeholder { padding-top: 2.5em; }
  #status-row { flex-wrap: wrap; gap: 4px; }
  #status-row > * { flex: 1 1 100% !important; min-width: 100% !important; }
  #question { position: fixed !important; left: 8px; right: 8px; bottom: 8px; z-index: 20;
    margin: 0 !important; box-shadow: 0 -2px 12px rgb(0 0 0 / 0.18); }
  .gradio-container { padding-bottom: 96px !important; }
  #intro h1 { font-size: 1.5rem; margin-bottom: 0.3em; }
}
/* The answer whose sources the panel shows, when there are several (PAGE_JS). */
#chat .bot[data-rag-shown] { box-shadow: -4px 0 0 var(--color-accent); }
/* The note viewer's sheet (PAGE_JS): from the right on a wide screen, the whole of a phone's. */
#rag-sheet { position: fixed; inset: 0 0 0 auto; width: min(760px, 100vw); max-width: 100vw;
  height: 100dvh; max-height: 100dvh; margin: 0; padding: 0; border: 0; box-sizing: border-box;
  border-left: 1px solid var(--border-color-primary); flex-direction: column;
  background: var(--background-fill-primary); color: var(--body-text-color); }
#rag-sheet[open] { display: flex; }
#rag-sheet::backdrop { background: rgb(0 0 0 / 0.4); }
.rag-sheet-bar { display: flex; flex-wrap: wrap; align-items: center; gap: 8px; padding: 8px;
  border-bottom: 1px solid var(--border-color-primary); font-size: 14px; }
.rag-sheet-bar button, .rag-sheet-bar a { min-height: 32px; padding: 4px 12px; font: inherit;
  border: 1px solid var(--border-color-primary); border-radius: 6px; cursor: pointer;
  background: var(--button-secondary-background-fill); color: var(--body-text-color);
  text-decoration: none; display: inline-flex; align-items: center; }
.rag-sheet-bar button:disabled { opacity: 0.6; cursor: default; }
.rag-sheet-page { margin-left: auto; }
#rag-sheet iframe { flex: 1; width: 100%; border: 0; background: #fff; }
"""

# A message is HTML (rag.web.render): "Copy message" copies what it shows, as text, not its
# markup. In the capture phase, before Gradio's own handler, which would copy the HTML.
PAGE_JS = """() => {
  document.addEventListener("click", (event) => {
    const button = event.target.closest("#chat button[aria-label='Copy message']");
    const panel = button && button.closest(".message-buttons");
    const shown = panel && panel.previousElementSibling?.querySelector(".md");
    if (!shown) return;
    event.stopImmediatePropagation();
    navigator.clipboard.writeText(shown.innerText.trim());
  }, true);
  // Escape closes what is open over the page (the settings, the conversations, a toast) and
  // goes back to the question box, leaving its text as it is.
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.isComposing) return;
    const open = "#settings button.label-wrap.open, #conversations.open > button.toggle-button,"
      + " button[data-testid='toast-close']";
    document.querySelectorAll(open).forEach((button) => button.click());
    document.querySelector("#question textarea")?.focus();
  });
  // Gradio names each radio of a gr.Radio apart ("radio-1", "radio-2", ... and new names on
  // every change), so a group is three Tab stops and arrows move nothing. One name per group
  // makes it the browser's own radio group: one Tab stop, arrows choose (Gradio follows).
  let groups = 0;
  const group = () => {
    for (const radio of document.querySelectorAll("fieldset input[type=radio][name^='radio-']")) {
      const set = radio.closest("fieldset");
      if (!set.dataset.ragGroup) {
        set.dataset.ragGroup = `rag-group-${++groups}`;
        set.setAttribute("role", "radiogroup");
        const label = set.querySelector("[data-testid='block-info']");
        if (label) set.setAttribute("aria-label", label.textContent.trim());
      }
      radio.name = set.dataset.ragGroup;
    }
  };
  group();
  new MutationObserver(group).observe(document.body,
    {childList: true, subtree: true, attributes: true, attributeFilter: ["name"]});
  // A link to a note (a citation, a source card, a nearest section, a wikilink) opens the
  // viewer in a sheet over the chat: Prev/Next step through the links of the same answer
  // (or panel), "Back to answer" and Escape close it and return to the link. A click with a
  // modifier key, or the sheet's "Open as a page", still opens the viewer in a tab of its own.
  const sheet = document.createElement("dialog");
  sheet.id = "rag-sheet";
  sheet.setAttribute("aria-label", "Note viewer");
  sheet.innerHTML = '<div class="rag-sheet-bar">'
    + '<button type="button" data-step="0">← Back to answer</button>'
    + '<button type="button" data-step="-1" aria-label="Previous citation">‹ Prev</button>'
    + '<span class="rag-sheet-count" role="status"></span>'
    + '<button type="button" data-step="1" aria-label="Next citation">Next ›</button>'
    + '<a class="rag-sheet-page" target="_blank" rel="noopener">Open as a page ↗</a></div>'
    + '<iframe title="The cited note"></iframe>';
  document.body.append(sheet);
  const frame = sheet.querySelector("iframe");
  let links = [], at = 0, opener = null;
  const NOTE = "a[href^='/note/']";
  const show = (i) => {
    at = (i + links.length) % links.length;
    const href = links[at].getAttribute("href");
    frame.src = href;
    sheet.querySelector(".rag-sheet-page").href = href;
    sheet.querySelector(".rag-sheet-count").textContent =
      links.length > 1 ? `${at + 1} of ${links.length}` : "";
    sheet.querySelectorAll("[data-step='-1'], [data-step='1']")
      .forEach((b) => { b.disabled = links.length < 2; });
  };
  document.addEventListener("click", (event) => {
    const link = event.target.closest(NOTE);
    if (!link || sheet.contains(link) || event.button !== 0 || event.ctrlKey
        || event.metaKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    const scope = link.closest("#chat .bot, #sources") || document;
    const seen = new Set();
    links = [...scope.querySelectorAll(NOTE)].filter((a) => {
      const href = a.getAttribute("href");
      return !seen.has(href) && seen.add(href);
    });
    opener = link;
    show(links.findIndex((a) => a.getAttribute("href") === link.getAttribute("href")));
    if (!sheet.open) sheet.showModal();
    sheet.querySelector("[data-step='0']").focus();
  }, true);
  sheet.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-step]");
    if (event.target === sheet || (button && button.dataset.step === "0")) sheet.close();
    else if (button) show(at + Number(button.dataset.step));
  });
  sheet.addEventListener("close", () => {
    frame.src = "about:blank";
    if (opener?.isConnected) opener.focus();
  });
  // With more than one answer, the one whose sources the panel shows is marked: the newest,
  // or the one clicked (the click that brings its sources back, Handlers.show_selected).
  let shown = -1, answers = 0;  // shown: an answer's place, or -1 for the newest
  const markShown = () => {
    const bots = [...document.querySelectorAll("#chat .bot")];
    if (bots.length !== answers) { answers = bots.length; shown = -1; }
    const target = bots.length > 1 ? bots.at(shown < 0 ? -1 : shown) : null;
    for (const bot of bots) {  // only changes: the observer sees no attributes, no loop
      const marked = bot.hasAttribute("data-rag-shown");
      if (bot === target && !marked) bot.setAttribute("data-rag-shown", "");
      else if (bot !== target && marked) bot.removeAttribute("data-rag-shown");
    }
  };
  new MutationObserver(markShown).observe(document.body, {childList: true, subtree: true});
  document.addEventListener("click", (event) => {
    const bot = event.target.closest("#chat .bot");
    if (!bot || event.target.closest("a, button, summary, input")) return;
    shown = [...document.querySelectorAll("#chat .bot")].indexOf(bot);
    markShown();
  });
}"""

# The theme: light, dark or the system's, kept in this browser (localStorage). Gradio draws
# dark when <body> has the class "dark" (from ?__theme=dark, or the system's preference, which
# it follows live); a choice made here is applied after that, and again after each change of
# the system's preference, which Gradio would otherwise follow.
THEMES = ("light", "dark", "system")
THEME_HTML = (
    '<fieldset class="rag-theme"><legend>Theme</legend>'
    + "".join(
        f'<label><input type="radio" name="rag-theme" value="{t}">{t.title()}</label>'
        for t in THEMES
    )
    + "</fieldset>"
)
THEME_CSS = """
.rag-theme { display: flex; align-items: center; gap: 12px; margin: 0; padding: 0; border: 0;
  font-size: 13px; color: var(--body-text-color); }
.rag-theme legend { float: left; padding: 0; }
.rag-theme label { display: inline-flex; align-items: center; gap: 4px; cursor: pointer; }
.rag-theme input { margin: 0; accent-color: var(--color-accent); }
.rag-theme input:focus-visible { outline: 2px solid var(--color-accent); outline-offset: 2px; }
"""
THEME_JS = """
const system = window.matchMedia("(prefers-color-scheme: dark)");
const read = () => { try { return localStorage.getItem("rag-theme"); } catch { return null; } };
const asked = new URL(location.href).searchParams.get("__theme");
let theme = [read(), asked].find((t) => ["light", "dark", "system"].includes(t)) || "system";
const apply = () => {
  const dark = theme === "dark" || (theme === "system" && system.matches);
  document.body.classList.toggle("dark", dark);
  element.querySelector(`input[value=${theme}]`).checked = true;
};
element.addEventListener("change", (event) => {
  theme = event.target.value;
  try { localStorage.setItem("rag-theme", theme); } catch {}
  apply();
});
system.addEventListener("change", apply);
apply();
"""


@dataclass
class Page:
    chatbot: gr.Chatbot
    box: gr.Textbox
    clear: gr.Button
    sources: gr.HTML
    k: gr.Slider
    mode: gr.Radio
    why: gr.Checkbox
    status: gr.Markdown
    reindex: gr.Button
    theme: gr.HTML  # light / dark / system, all in the browser
    write: gr.Checkbox  # answers written by the LLM (hidden when none is configured)
    spelling: gr.Checkbox  # misspelled words searched as the notes spell them
    only: gr.Textbox  # filters, as `--where` takes them: "tag:infra folder:projects/*"
    history: gr.Dataset  # the conversations kept in this browser, newest first
    examples: list[gr.Button]  # example questions, shown while the chat is empty
    examples_row: gr.Row
    intro: gr.Markdown  # the first screen's words: what is here, how answers are made


def build_page(engine: Engine | None, settings: Settings, status: str) -> Page:
    """The page's components; `engine` None: the first index is still being built (the
    intro and the examples follow from `first_screen` once it is in)."""
    intro_md, questions = first_screen(engine, settings)
    llm = settings.llm
    with gr.Sidebar(label="Conversations", open=False, elem_id="conversations"):
        gr.Markdown("Kept in this browser only.")
        history = gr.Dataset(
            components=[gr.Textbox(visible=False)],
            samples=[],
            type="index",
            layout="table",
            show_label=False,
            elem_id="history",
        )
    intro_box = gr.Markdown(intro_md, elem_id="intro")
    with gr.Row(elem_id="status-row"):
        status_line = gr.Markdown(escape_md(status), elem_id="index-status")
        theme = gr.HTML(
            THEME_HTML, css_template=THEME_CSS, js_on_load=THEME_JS, scale=0, elem_id="theme"
        )
        reindex = gr.Button("Re-index", size="sm", variant="secondary", scale=0)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                label="Chat",
                height=560,
                # Messages are HTML already (rag.web.render, through rag.web.markup's
                # allow-list): Gradio does not read them as markdown again, and its own
                # sanitizer is a second guard.
                render_markdown=False,
                sanitize_html=True,
                allow_tags=False,
                latex_delimiters=[],  # "$$" in a note is text, not a formula
                buttons=["copy", "copy_all"],  # no "share": these are private notes
                # Thumbs, and under the flag the reasons a down-vote can give.
                feedback_options=["Like", "Dislike", *REASONS],
                placeholder="Ask a question about your notes, or start from an example.",
                elem_id="chat",
            )
            # Buttons of our own, not the Chatbot's examples: those are a role="list" of
            # buttons, which screen readers cannot read as a list (axe: critical).
            with gr.Row(elem_id="examples") as examples_row:
                questions += [""] * (EXAMPLES - len(questions))  # "": hidden, for now
                examples = [
                    gr.Button(
                        q, visible=bool(q), size="sm", variant="secondary", elem_classes="example"
                    )
                    for q in questions
                ]
            box = gr.Textbox(
                label="Your question",
                placeholder="Ask a question about your notes",
                show_label=False,
                submit_btn="Send",
                autofocus=True,
                elem_id="question",
            )
            clear = gr.Button("New chat", size="sm", variant="secondary", elem_id="new-chat")
        with gr.Column(scale=2):
            with gr.Accordion("Search settings", open=False, elem_id="settings"):
                k = gr.Slider(
                    1,
                    MAX_SOURCES,
                    value=settings.top_k,
                    step=1,
                    label="Sources",
                    info="how many sections are searched and shown per answer",
                )
                mode = gr.Radio(list(MODES), value=settings.mode, label="Retrieval mode")
                why = gr.Checkbox(
                    False, label="Why this source: BM25 rank, dense rank and fused score"
                )
                spelling = gr.Checkbox(
                    True,
                    label="Search a misspelled word as my notes spell it (off: as typed)",
                    elem_id="spelling",
                )
                only = gr.Textbox(
                    "",
                    label="Only notes matching",
                    placeholder="tag:infra folder:projects/* status:draft since:2026-01-01",
                    info="rag search --where's words, since:DATE for --since; all must hold; "
                    "empty: every note",
                    elem_id="only",
                )
                write = gr.Checkbox(
                    llm is not None,
                    visible=llm is not None,
                    label=f"Answers written by the LLM ({llm_name(llm)}); off: quoted lines",
                    elem_id="write",
                )
            sources = gr.HTML(
                sources_html(None, []),
                css_template=PANEL_CSS,
                js_on_load=None,
                max_height=640,
                elem_id="sources",
            )
    return Page(
        chatbot,
        box,
        clear,
        sources,
        k,
        mode,
        why,
        status_line,
        reindex,
        theme,
        write,
        spelling,
        only,
        history,
        examples,
        examples_row,
        intro_box,
    )


def first_screen(engine: Engine | None, settings: Settings) -> tuple[str, list[str]]:
    """The empty chat's intro and example questions, for `engine`'s index (None: not built)."""
    folder = escape_md(str(settings.folders))
    if engine is None:
        return intro(None, folder, settings.llm), []
    return intro(engine, folder, settings.llm), example_questions(engine, EXAMPLES)


def intro(engine: Engine | None, folder: str, llm: LLMSettings | None, topics: int = 8) -> str:
    """The first screen's words: what is here (the notes' top headings as topics), how
    answers are made, and that nothing leaves the machine."""
    how = "lines quoted from your notes" if llm is None else "written by your LLM from your notes"
    chunks = engine.chunks if engine else ()
    heads: dict[str, None] = {}  # the sections under each note's title, in order
    for chunk in _spread(chunks):
        if len(chunk.heading) > 1:
            heads.setdefault(chunk.heading[1].split(" -- ")[0].strip(), None)  # "X -- what X is"
    shown = " · ".join(escape_md(h) for h in list(heads)[:topics])
    more = f" and {len(heads) - topics} more" if len(heads) > topics else ""
    if more and len(chunks) > FIRST_SCREEN_CHUNKS:  # not every chunk was read: no count
        more = " and more"
    return (
        f"# Ask your notes\n\nAnswers are {how} ({folder}); each [n] opens the note at the "
        "lines it came from. Everything runs on this machine: no question or note leaves it."
        + (f"\n\n**Topics:** {shown}{more}" if heads else "")
        + (
            ""
            if engine
            else "\n\nYour notes are being indexed for the first time: ask now, "
            "and the answer follows as soon as the index is in."
        )
    )


def llm_name(llm: LLMSettings | None) -> str:
    """The model's name if one is set, else the server's address (never the API key)."""
    if llm is None:
        return "none"
    return llm.model or llm.shown_url


def example_questions(engine: Engine, n: int = 4, tries: int = 6) -> list[str]:
    """Questions about sections spread evenly through the notes, for the empty chat: each kept
    only when the ask pipeline answers it from the section it names (an example that answers
    badly would show the product at its worst)."""
    topics: dict[str, tuple[str, ...]] = {}  # topic -> the heading path it closes
    for chunk in _spread(engine.chunks):
        if topic := _topic(chunk.heading):
            topics.setdefault(topic, chunk.heading)
    names = list(topics)
    picks: list[str] = []
    for i in range(n):
        start = (2 * i + 1) * len(names) // (2 * n)
        for topic in names[start : start + tries]:
            question = about(topic)
            answer = ask(engine, question)
            if answer.status == "answered" and answer.citations[0].heading == topics[topic]:
                picks.append(question)
                break
    return picks


def next_questions(engine: Engine, answer: Answer, n: int = NEXT_QUESTIONS) -> list[str]:
    """What to ask next, under an answer: the sections around those it cited (below one
    first, then beside it), as questions; none the answer cited or the question named."""
    cited = list(dict.fromkeys((c.path, c.heading) for c in answer.citations))
    asked = answer.question.casefold()
    around = {path: _sections_under(engine, path) for path, _ in cited}  # each note read once
    near = [  # for each cited section: its own sub-sections, then its siblings
        [s for parent in (heading, heading[:-1]) for s in around[path].get(parent, ())]
        for path, heading in cited
    ]
    cited_headings = {heading for _, heading in cited}
    picks: dict[str, None] = {}
    for section in (s for row in zip_longest(*near) for s in row if s):  # in turn
        topic = _topic(section)
        if section not in cited_headings and topic and topic.casefold() not in asked:
            picks.setdefault(topic, None)
    return [about(topic) for topic in list(picks)[:n]]


def about(topic: str) -> str:
    return f"What do my notes say about {topic}?"


def _topic(heading: tuple[str, ...]) -> str:
    """What a section is about, short enough to ask about: its own heading without a gloss
    after " -- "; "" for a note's title alone or a long heading."""
    topic = heading[-1].split(" -- ")[0].strip() if len(heading) > 1 else ""
    return topic if len(topic) <= 40 else ""


def _spread(chunks: Sequence[Chunk]) -> Iterator[Chunk]:
    """The chunks the first screen reads, in row order: all of them, or FIRST_SCREEN_CHUNKS
    evenly spread rows of a larger index."""
    step = max(1, -(-len(chunks) // FIRST_SCREEN_CHUNKS))
    return (chunks[row] for row in range(0, len(chunks), step))


_ROWS: weakref.WeakKeyDictionary[Engine, dict[str, list[int]]] = weakref.WeakKeyDictionary()


def _sections_under(engine: Engine, path: str) -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """Each heading path of one note -> its sections one level below, in note order. Only that
    note's rows are read; which rows they are is found once per index (a re-index swaps in a
    new engine) from the rows' paths, which a large index reads without parsing a row."""
    rows = _ROWS.get(engine)
    if rows is None:
        rows = _ROWS[engine] = rows_by_path(engine.chunks)
    found: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    for heading in dict.fromkeys(engine.chunks[r].heading for r in rows.get(path, ())):
        found.setdefault(heading[:-1], []).append(heading)
    return found
