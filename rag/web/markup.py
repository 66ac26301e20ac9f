"""A note's markdown as safe HTML, for the chat, the sources panel and the viewer alike.

    block_html("Use `ls`:\n\n```sh\nls -la\n```")
    # '<p>Use <code>ls</code>:</p>\n<div class="code_wrap"><button ...><pre><code
    #  class="language-sh">ls -la\n</code></pre></div>'
    inline_html("see [docs](https://x.io) <b>")
    # 'see <a href="https://x.io" target="_blank" rel="noopener noreferrer">docs</a> &lt;b&gt;'
    lines_html(["| a | `b` |", "| - | - |"])   # one fragment per line: cells, then the dimmed
                                              # delimiter row
    inline_html("see [[Queues#Limits|the limits]]")   # with the viewer serving a folder that
    # has infra/queues.md: 'see <a href="/note/infra/queues.md?heading=Limits" ...>the limits</a>'

markdown-it-py reads the markdown (CommonMark, with tables and strikethrough) with raw HTML off,
so a tag in a note is shown as the text it is. A link is kept only when it goes to http(s) or
to the note viewer (ROUTE); any other (`javascript:`, `data:`, a relative path) stays text. An
image is a link to it: loading it would be a request leaving the machine. Then nh3 keeps only
the tags, attributes and URLs on its allow-list, so what reaches the page is inert whatever the
renderer let through. Gradio's copy button goes on each code block after that, as Gradio's own
markdown draws it: the chat's click handler copies the block's text.

An Obsidian [[wikilink]] (or embed, ![[...]], never loaded) is a link to the viewer, showing its
alias or "note › heading", when its name is a note of the folder the viewer serves
(`link_notes`, resolved as `rag.index.obsidian.LinkTargets` says); the viewer finds the heading
(`?heading=`). A name that is no note there is shown as its words, marked MISSING. The names
are resolved each time a note is shown, so a renamed note's links follow it unindexed.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Callable
from functools import cache, lru_cache
from urllib.parse import quote

import nh3
from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_inline import StateInline

from rag.index.obsidian import LinkTargets, wikilink

ROUTE = "/note"  # where the note viewer (rag.web.viewer) is served
LINKS = ("http://", "https://", ROUTE + "/")  # what a link may open; nothing else links
_LANGUAGE = re.compile(r"language-[\w+#.-]{1,40}")  # a code block's class: its language
_TAGS = {
    *("p", "br", "hr", "strong", "em", "del", "s", "code", "pre", "a", "div", "span"),
    *("ul", "ol", "li", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6"),
    *("table", "thead", "tbody", "tr", "th", "td"),
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "div": {"class"},
    "span": {"class", "title"},
    "ol": {"start"},
    "th": {"style"},  # a column's alignment: text-align only (filter_style_properties)
    "td": {"style"},
}
# Gradio's own copy button (as its markdown draws one): the chat copies the block's text, the
# button's included, so its glyphs come from CSS (rag.web.page.PAGE_CSS), not from text.
COPY_BUTTON = (
    '<button title="copy" class="copy_code_button" aria-label="Copy code">'
    '<span class="copy-text"></span><span class="check"></span></button>'
)
_CODE_WRAP = '<div class="code_wrap">'
MISSING = "missing-note"  # the class of a wikilink to no note: its words, with a title
_CLASSES = {"div": "code_wrap", "span": MISSING}  # the one class each tag may have (not code)
_WIKILINK = re.compile(r"(!?)\[\[([^\[\]\n`]+?)\]\]")  # as the index reads one, no code inside
_served: Callable[[], LinkTargets] | None = None  # the notes a wikilink may open: `link_notes`
_BETWEEN_TAGS = re.compile(r">\n+<")
_INLINE_MARK = re.compile(r"[\\`*_\[\]!<>&~\n]")  # what can start inline markdown (no linkify)


@cache
def _parser(breaks: bool = False) -> MarkdownIt:
    """`breaks`: a single newline is a line break, as an LLM writing lines means it."""
    options = {"html": False, "linkify": False, "typographer": False, "breaks": breaks}
    md = MarkdownIt("commonmark", options)
    md.enable(["table", "strikethrough"]).disable("image")
    md.validateLink = lambda url: url.lower().startswith(LINKS)  # else the link stays text
    md.add_render_rule("fence", _fence)
    md.inline.ruler.before("link", "wikilink", _wikilink)
    return md


@cache
def _blocks() -> MarkdownIt:
    """The same reading of blocks, their inline markdown left unparsed: where code blocks,
    headings and tables are, for `lines_html`, which renders each line's inline itself."""
    return MarkdownIt("commonmark").enable("table").disable("inline")


def _fence(self: RendererHTML, tokens, idx, options, env) -> str:
    return f"{_CODE_WRAP}{RendererHTML.fence(self, tokens, idx, options, env).rstrip()}</div>\n"


def _keep(tag: str, attribute: str, value: str) -> str | None:
    """nh3's last word on each attribute it allows: links to LINKS only, a language as the
    only class of code, code_wrap as the only class of a div."""
    if attribute == "href":
        return value if value.lower().startswith(LINKS) else None
    if attribute == "class":
        ok = _LANGUAGE.fullmatch(value) if tag == "code" else value == _CLASSES.get(tag)
        return value if ok else None
    return value


def clean(fragment: str) -> str:
    """HTML cut down to the allow-list: the last guard before anything reaches a page."""
    return nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        attribute_filter=_keep,
        url_schemes={"http", "https"},
        filter_style_properties={"text-align"},
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )


def block_html(text: str, breaks: bool = False) -> str:
    """Markdown (a note's lines, an answer) as safe HTML: paragraphs, lists, tables, and code
    blocks with their language and a copy button."""
    safe = clean(_parser(breaks).render(text, _env()))
    # No newline between tags: the chat keeps white space (pre-wrap), so each would be a blank
    # line. A newline in text or code is kept: text never holds a bare "<" or ">".
    return _BETWEEN_TAGS.sub("><", safe).strip().replace(_CODE_WRAP, _CODE_WRAP + COPY_BUTTON)


def inline_html(text: str) -> str:
    """One line's inline markdown (code, emphasis, links) as safe HTML; block syntax (`- `,
    `## `, `|`) stays the text it is."""
    return _inline_html(text, _env())


def _inline_html(text: str, env: dict) -> str:
    if not _INLINE_MARK.search(text):  # most lines of a note: plain text, rendered as it is
        return text_html(text)
    return clean(_parser().renderInline(text, env))


def text_html(text: str) -> str:
    """Text that is not markdown (a question, a path, a notice) as HTML that shows it as is."""
    return html.escape(text, quote=False)


# --- [[wikilinks]]: links to the notes of the folder the viewer serves -----------------------


def link_notes(targets: Callable[[], LinkTargets] | None) -> None:
    """From now on, resolve wikilinks against the notes `targets()` names (asked at each
    rendering, so it should be quick): the viewer does this when it is served, being what
    opens them. None: a wikilink is shown as its words."""
    global _served
    _served = targets


def _env(source: str = "") -> dict:
    """What the wikilink rule reads: the notes it may link to, and the note shown (`source`,
    for [[#heading]]), if known."""
    return {"targets": _served() if _served else None, "source": source}


def _wikilink(state: StateInline, silent: bool) -> bool:
    """markdown-it's inline rule for [[note#heading|alias]] and ![[embed]], tried at '[' and
    '!' after code spans (so `[[x]]` stays code): a viewer link, or words marked MISSING."""
    m = _WIKILINK.match(state.src, state.pos)
    if m is None:
        return False
    state.pos = m.end()
    if silent:
        return True
    link = wikilink(m[2], embed=bool(m[1]))
    targets, source = state.env.get("targets"), state.env.get("source", "")
    words = link.words(" › ")
    if targets is None or not (link.note or source):  # nothing to resolve against
        state.push("text", "", 0).content = words
        return True
    path = targets.resolve(link.note) if link.note else source
    if path is None:
        title = html.escape(f"No note “{link.note}” in the notes folder")
        state.push("html_inline", "", 0).content = f'<span class="{MISSING}" title="{title}">'
        state.push("text", "", 0).content = words
        state.push("html_inline", "", 0).content = "</span>"
        return True
    heading = f"?heading={quote(link.subpath, safe='')}" if link.subpath else ""
    opened = state.push("link_open", "a", 1)
    opened.attrs = {"href": f"{ROUTE}/{quote(path)}{heading}", "title": path}
    state.push("text", "", 0).content = words
    state.push("link_close", "a", -1)
    return True


# --- a note line by line: the viewer's rows and the panel's excerpts ---------------------------


def lines_html(lines: list[str], source: str = "") -> list[str]:
    """Each line of a note as HTML, one fragment per line so line numbers and marks still fit:
    a code block's lines as code (its fences dimmed), a table's rows as cells, a heading in
    bold, any other line's inline markdown rendered, its indentation and list marker kept;
    `source`, the note's path, links its [[#heading]]s. A long note takes a while to read
    (0.5 s for 3,700 lines): the last few are kept, with the notes their links resolved to."""
    return list(_rows(tuple(lines), _served() if _served else None, source))


@lru_cache(maxsize=16)
def _rows(lines: tuple[str, ...], targets: LinkTargets | None, source: str) -> tuple[str, ...]:
    kinds, languages, cells = _blocks_of(lines)
    env = {"targets": targets, "source": source}
    return tuple(
        _line(line, kinds.get(n), languages.get(n, ""), cells.get(n), env)
        for n, line in enumerate(lines)
    )


def _blocks_of(lines: tuple[str, ...]) -> tuple[dict, dict, dict]:
    """What each line is part of: kinds (line -> "fence", "code", "delimiter" or "h"), a code
    line's language, and a table row's cells (line -> each cell's inline markdown)."""
    kinds: dict[int, str] = {}
    languages: dict[int, str] = {}
    cells: dict[int, list[str]] = {}
    tokens = _blocks().parse("\n".join(lines))
    for i, token in enumerate(tokens):
        if token.map is None:
            continue
        first, after = token.map[0], min(token.map[1], len(lines))
        if token.type in ("fence", "code_block"):
            body = range(first + (token.type == "fence"), after)
            kinds.update(dict.fromkeys(body, "code"))
            languages.update(
                dict.fromkeys(body, token.info.split(maxsplit=1)[0] if token.info.strip() else "")
            )
            if token.type == "fence":
                kinds[first] = "fence"
                if after - 1 > first and lines[after - 1].strip().startswith(token.markup):
                    kinds[after - 1] = "fence"  # the closing fence (an open one runs to the end)
        elif token.type == "heading_open":
            kinds.update(dict.fromkeys(range(first, after), "h"))
        elif token.type == "table_open":
            kinds[first + 1] = "delimiter"
        elif token.type == "tr_open":
            row = itertools.takewhile(lambda t: t.type != "tr_close", tokens[i + 1 :])
            cells[first] = [t.content for t in row if t.type == "inline"]
    return kinds, languages, cells


def _line(line: str, kind: str | None, language: str, cells: list[str] | None, env: dict) -> str:
    if kind == "code":
        cls = f' class="language-{language}"' if _LANGUAGE.fullmatch(f"language-{language}") else ""
        return f"<code{cls}>{text_html(line)}</code>"
    if kind in ("fence", "delimiter"):
        return f'<span class="md-mark">{text_html(line)}</span>'
    if cells is not None:
        indent = text_html(line[: len(line) - len(line.lstrip())])
        shown = "".join(
            f'<span class="md-cell">{_inline_html(c, env) or " "}</span>' for c in cells
        )
        return f'{indent}<span class="md-row">{shown}</span>'
    if kind == "h":
        return f"<strong>{_inline_html(line, env)}</strong>"
    return _inline_html(line, env)
