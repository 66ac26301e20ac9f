"""Answers as the chat shows them: markdown for messages, HTML for the sources panel.

    chat_markdown(answer)             # "Max message size (256KB; 1KB-256KB) [[1]]\n..."
                                      #   ..."\n[1]: /note/aws-notes.md?start=1693&end=1693#L1693"
    list(stream_markdown(answer))     # the same message, growing a few words at a time
    sources_html(answer, hits)        # a card per cited section: heading, file:lines, excerpt

Everything from the notes or the user is escaped on the way out (`escape_md` for markdown,
`html.escape` for HTML): a note is shown as text, never as live HTML.
"""

from __future__ import annotations

import html
import re
import textwrap
from collections.abc import Iterator
from urllib.parse import quote

from rag.answer import Answer, Citation
from rag.chunking import Chunk, location
from rag.search import Hit
from rag.viewer import ROUTE

_INLINE = re.compile(r"([\\`*_\[\]|~])")  # emphasis, code, links/images, tables, strikethrough
_BLOCK_MARK = re.compile(r"^([#+=-])")  # a heading, list item or setext underline at line start
_ORDERED_MARK = re.compile(r"^(\d+)([.)])")
_MARKERS = re.compile(r"^(.*?)((?: \[\d+\])*)$")  # "line of the note [1]" -> (line, " [1]")
WORDS_PER_STEP = 2  # streaming granularity


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


def note_url(path: str, start: int, end: int) -> str:
    """The viewer's address for lines start..end of a note, scrolled to `start`."""
    return f"{ROUTE}/{quote(path)}?start={start}&end={end}#L{start}"


# --- the API reply (`/ask`): answer, then each source with its quoted lines -----------------


def reply_markdown(answer: Answer) -> str:
    """The /ask reply: any notices, the answer with its [n] markers, then its sources."""
    notices = [f"**Note:** {escape_md(n)}" for n in answer.notices]
    if answer.answered:
        body = [_answer_lines(answer.text), "**Sources**", *map(_quoted_source, answer.citations)]
    else:
        body = [escape_md(answer.text)]
        if answer.candidates:
            body += ["The nearest sections of your notes:", _nearest(answer.candidates, False)]
    return "\n\n".join([*notices, *body])


def _answer_lines(text: str, linked: list[Citation] | None = None) -> str:
    """Escape each answer line but keep its trailing [n] markers, which are ours."""
    return "\n".join(_answer_line(line, linked) for line in text.splitlines())


def _answer_line(line: str, linked: list[Citation] | None) -> str:
    words, markers = _MARKERS.match(line).groups()
    if linked:
        by_n = {c.n: c for c in linked}
        markers = re.sub(r"\[(\d+)\]", lambda m: _marker_link(by_n.get(int(m[1]))), markers)
    return escape_md(words) + markers


def _marker_link(c: Citation | None) -> str:
    # "[[1]]": the inner [1] is a reference link (defined at the end of the message), the
    # outer brackets stay text: it shows as "[1]" and copies as plain text, not as a URL.
    return f"[[{c.n}]]" if c else ""


def _quoted_source(c: Citation) -> str:
    head = f"**[{c.n}]** {heading_md(c.heading, c.path)} ({escape_md(c.location)})"
    cited = escape_md(textwrap.dedent(c.text)).splitlines() or [""]
    return head + "\n\n" + "\n".join(f"> {line}" for line in cited)


def _nearest(hits: list[Hit], linked: bool) -> str:
    return "\n".join(
        f"- {heading_md(h.chunk.heading, h.chunk.path)} "
        f"({_location_md(h.chunk.path, h.chunk.start_line, h.chunk.end_line, linked)})"
        for h in hits
    )


def heading_md(heading: tuple[str, ...], path: str) -> str:
    # The " > " is ours and mid-line, so it cannot open a quote; each part is escaped.
    return " > ".join(escape_md(part) for part in heading) or escape_md(path)


def _location_md(path: str, start: int, end: int, linked: bool) -> str:
    shown = escape_md(location(path, start, end))
    return f"[{shown}]({note_url(path, start, end)})" if linked else shown


# --- the chat message: answer with linked [n], then a short list of its sources -------------


def chat_markdown(answer: Answer) -> str:
    """The chat message: notices, the answer whose [n] open the note, and the sources list."""
    return "\n\n".join(_chat_blocks(answer, answer.text, final=True))


def _chat_blocks(answer: Answer, text: str, final: bool) -> list[str]:
    blocks = [f"**Note:** {escape_md(n)}" for n in answer.notices]
    if not answer.answered:
        blocks.append(escape_md(text))
        if final and answer.candidates:
            blocks += ["The nearest sections of your notes:", _nearest(answer.candidates, True)]
        return blocks
    blocks.append(_answer_lines(text, answer.citations))
    if final:
        blocks += ["**Sources**", "\n".join(map(_source_item, by_section(answer.citations)))]
    return [*blocks, _link_definitions(answer.citations)]  # invisible; they make [n] links


def by_section(citations: list[Citation]) -> list[list[Citation]]:
    """Citations grouped by the section (chunk) they quote, in order of first citation."""
    groups: dict[tuple[str, int], list[Citation]] = {}
    for c in citations:
        groups.setdefault((c.path, c.excerpt_start_line), []).append(c)
    return list(groups.values())


def _source_item(group: list[Citation]) -> str:
    cited = ", ".join(f"[[{c.n}]] {escape_md(c.location)}" for c in group)
    return f"- {heading_md(group[0].heading, group[0].path)}: {cited}"


def _link_definitions(citations: list[Citation]) -> str:
    return "\n".join(f"[{c.n}]: {note_url(c.path, c.start_line, c.end_line)}" for c in citations)


def stream_markdown(answer: Answer, words_per_step: int = WORDS_PER_STEP) -> Iterator[str]:
    """`chat_markdown(answer)` as it grows: a few more words of the answer at each step.

    A line's [n] markers appear once the line is complete, the sources list at the end.
    """
    lines = answer.text.splitlines()
    for i, line in enumerate(lines):
        words, markers = _MARKERS.match(line).groups()
        split = words.split(" ")
        for upto in range(words_per_step, len(split) + words_per_step, words_per_step):
            shown = [*lines[:i], " ".join(split[:upto]) + (markers if upto >= len(split) else "")]
            yield "\n\n".join(_chat_blocks(answer, "\n".join(shown), final=False))
    yield chat_markdown(answer)


# --- the sources panel: a card per section, the cited lines marked --------------------------


def sources_html(
    answer: Answer | None, hits: list[Hit], why: bool = False, fused: bool = True
) -> str:
    """The sources panel for one answer: a card per cited section, or per nearest section.

    `why` adds each hit's BM25 rank, dense rank and score (`fused`: the hybrid's blend).
    """
    if answer is None:
        return '<div class="rag-sources rag-empty">The sources of an answer show here.</div>'

    def explain(h: Hit | None) -> str:
        return _why(h, fused) if why and h else ""

    if answer.answered:
        groups = by_section(answer.citations)
        shown = [_hit_of(g[0], hits) for g in groups]
        lines, sections = (
            _count(len(answer.citations), "cited line"),
            _count(len(groups), "section"),
        )
        title = f"Sources: {lines} from {sections}"
        cards = [_cited_card(g, explain(h)) for g, h in zip(groups, shown, strict=True)]
    else:
        shown = answer.candidates
        title = "Not in your notes. The nearest sections:"
        cards = [_card(h.chunk, _loc_link(h.chunk), _rows(h.chunk), explain(h)) for h in shown]
    others = "".join(
        f"<li>{_heading_html(h.chunk)} {_loc_link(h.chunk)}{explain(h)}</li>"
        for h in hits
        if h not in shown
    )
    if others:
        others = (
            f'<details class="rag-others"><summary>Also found</summary><ul>{others}</ul></details>'
        )
    return (
        f'<div class="rag-sources"><div class="rag-title">{html.escape(title)}</div>'
        f'<ol class="rag-cards">{"".join(cards)}</ol>{others}</div>'
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _hit_of(c: Citation, hits: list[Hit]) -> Hit | None:
    for h in hits:
        if h.chunk.path == c.path and h.chunk.start_line == c.excerpt_start_line:
            return h
    return None


def _cited_card(group: list[Citation], why: str) -> str:
    """One section with each cited line marked with its [n]."""
    first = group[0]
    links = " ".join(_loc_link(c, f"[{c.n}] ") for c in group)
    marks = {n: c for c in group for n in range(c.start_line, c.end_line + 1)}
    lines = enumerate(first.excerpt.split("\n"), first.excerpt_start_line)
    rows = "".join(_row(line, marks.get(n), n) for n, line in lines)
    return _card(first, links, rows, why)


def _rows(chunk: Chunk) -> str:
    return "".join(_row(line) for line in chunk.text.split("\n"))


def _row(line: str, cited: Citation | None = None, n: int = 0) -> str:
    text = html.escape(line) or " "
    if cited is None:
        return f'<span class="rag-line">{text}</span>'
    badge = f'<span class="rag-n">[{cited.n}]</span>' if n == cited.start_line else ""
    return f'<mark class="rag-line">{badge}{text}</mark>'


def _loc_link(c: Chunk | Citation, label: str = "") -> str:
    where = location(c.path, c.start_line, c.end_line)
    url = html.escape(note_url(c.path, c.start_line, c.end_line))
    return (
        f'<a class="rag-loc" href="{url}" target="_blank" rel="noopener">'
        f"{html.escape(label + where)}</a>"
    )


def _heading_html(c: Chunk | Citation) -> str:
    return html.escape(" › ".join(c.heading) or c.path)


def _card(source: Chunk | Citation, links: str, rows: str, why: str) -> str:
    return (
        f'<li class="rag-card"><div class="rag-head">{_heading_html(source)}</div>'
        f'<div class="rag-locs">{links}</div><div class="rag-excerpt">{rows}</div>{why}</li>'
    )


def _why(h: Hit, fused: bool) -> str:
    def rank(r: int | None) -> str:
        return f"#{r}" if r is not None else "not found"

    score = "fused score" if fused else "score"
    return (
        f'<div class="rag-why">BM25 rank {rank(h.bm25_rank)} · dense rank {rank(h.dense_rank)}'
        f" · {score} {h.score:.3f}</div>"
    )


PANEL_CSS = """
.rag-sources { font-size: 14px; }
.rag-empty { color: var(--body-text-color-subdued); padding: 8px 0; }
.rag-title { font-weight: 600; margin: 4px 0 8px; }
.rag-cards { list-style: none; padding: 0; margin: 0; }
.rag-card { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 8px 10px; margin-bottom: 10px; }
.rag-head { font-weight: 600; }
.rag-locs { display: flex; flex-wrap: wrap; gap: 2px 12px; }
.rag-loc { font-family: var(--font-mono); font-size: 13px; }
.rag-excerpt { margin-top: 6px; font-family: var(--font-mono); font-size: 12px;
  line-height: 1.45; white-space: pre-wrap; overflow-wrap: anywhere;
  color: var(--body-text-color-subdued); }
.rag-line { display: block; }
mark.rag-line { background: #fff3b0; color: #1f2328; box-shadow: inset 3px 0 #d4a72c; }
.rag-n { float: right; padding: 0 4px; font-weight: 600; color: #9a6700; }
.rag-why { margin-top: 6px; font-size: 12px; color: var(--body-text-color-subdued); }
.rag-others summary { cursor: pointer; color: var(--body-text-color-subdued); }
.rag-others ul { margin: 4px 0 0; padding-left: 18px; }
"""
