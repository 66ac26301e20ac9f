"""The sources panel beside the chat: a card per cited section, its cited lines marked.

    sources_html(answer, hits)        # heading, file:lines links, the excerpt with marks
    sources_html(answer, hits, why=True)   # plus each hit's BM25 rank, dense rank and score
    sources_html(answer, hits, links=settings.links)   # plus "open in editor" on each card

A note's lines are shown one row per line, their markdown rendered by `rag.web.markup`
(inline code, links, a code block's lines as code, a table's rows as cells): inert HTML,
whatever a note holds.
"""

from __future__ import annotations

import html

from rag.answer.base import DECLINE, SHOWN_LINES, Answer, Citation, marker
from rag.editor import Editor
from rag.index.cutting import Chunk, location, shown_line
from rag.search.engine import Hit
from rag.web.markup import lines_html
from rag.web.render import by_section, citation_url, heading_html, note_url


def sources_html(
    answer: Answer | None,
    hits: list[Hit],
    why: bool = False,
    fused: bool = True,
    links: Editor | None = None,
) -> str:
    """The sources panel for one answer: a card per cited section, or per nearest section.

    `why` adds each hit's BM25 rank, dense rank and score (`fused`: the hybrid's blend);
    `links`, a link on each card that opens its first line in the user's editor.
    """
    if answer is None:
        return '<div class="rag-sources rag-empty">The sources of an answer show here.</div>'

    def explain(h: Hit | None) -> str:
        return _why(h, fused) if why and h else ""

    if answer.citations:  # answered, or partial: the closest lines
        citations, title = _cited(answer)
        groups = by_section(citations)
        shown = [_hit_of(g[0], hits) for g in groups]
        cards = [_cited_card(g, explain(h), links) for g, h in zip(groups, shown, strict=True)]
    else:
        shown = answer.candidates
        title = f"{DECLINE}. The nearest sections:"
        cards = [
            _card(h.chunk, _loc_link(h.chunk) + _editor_link(h.chunk, links), _rows(h.chunk), why)
            for h in shown
            for why in [explain(h)]
        ]
    others = "".join(
        f"<li>{_heading_html(h.chunk)} {_loc_link(h.chunk)}{explain(h)}</li>"
        for h in hits
        if h not in shown
    )
    if others:
        others = (
            f'<details class="rag-others"><summary>Also found</summary><ul>{others}</ul></details>'
        )
    asked = f'<div class="rag-asked">For “{html.escape(answer.question)}”</div>'
    return (
        f'<div class="rag-sources"><div class="rag-title">{html.escape(title)}</div>{asked}'
        f'<ol class="rag-cards">{"".join(cards)}</ol>{others}</div>'
    )


def _cited(answer: Answer) -> tuple[list[Citation], str]:
    """The citations to show as cards, and the panel's title. An LLM's answer shows the
    excerpts it cites; the others it was given are among "Also found"."""
    if not answer.by_llm:
        sections = len(by_section(answer.citations))
        lines = _count(len(answer.citations), "cited line")
        label = "Sources" if answer.answered else "Partly in your notes, the closest lines"
        return answer.citations, f"{label}: {lines} from {_count(sections, 'section')}"
    given = answer.citations
    cited = [c for c in given if c.n in answer.cited]
    if not cited:
        return given, f"Cited: none of the {_count(len(given), 'excerpt')} given to the LLM"
    return cited, f"Cited: {len(cited)} of the {_count(len(given), 'excerpt')} given to the LLM"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _hit_of(c: Citation, hits: list[Hit]) -> Hit | None:
    for h in hits:
        if h.chunk.path == c.path and h.chunk.start_line <= c.start_line <= h.chunk.end_line:
            return h
    return None


def _cited_card(group: list[Citation], why: str, editor: Editor | None) -> str:
    """One section with each cited line marked with its [n]."""
    first = group[0]
    links = " ".join(_loc_link(c, f"{marker(c.n)} ") for c in group) + _editor_link(first, editor)
    marks = {n: c for c in group for n in range(c.start_line, c.end_line + 1)}
    lines = enumerate(lines_html(first.excerpt.split("\n")), first.excerpt_start_line)
    rows = "".join(_row(line, marks.get(n), n) for n, line in lines)
    return _card(first, links, rows, why)


def _rows(chunk: Chunk) -> str:
    return "".join(map(_row, lines_html([shown_line(x) for x in chunk.lines[:SHOWN_LINES]])))


def _row(line: str, cited: Citation | None = None, n: int = 0) -> str:
    """One line of a note, already HTML; a cited one marked, with its [n] on its first."""
    text = line or " "
    if cited is None:
        return f'<span class="rag-line">{text}</span>'
    badge = f'<span class="rag-n">{marker(cited.n)}</span>' if n == cited.start_line else ""
    return f'<mark class="rag-line">{badge}{text}</mark>'


def _loc_link(c: Chunk | Citation, label: str = "") -> str:
    where = location(c.path, c.start_line, c.end_line)
    url = html.escape(
        citation_url(c) if isinstance(c, Citation) else note_url(c.path, c.start_line, c.end_line)
    )
    return (
        f'<a class="rag-loc" href="{url}" target="_blank" rel="noopener">'
        f"{html.escape(label + where)}</a>"
    )


def _editor_link(c: Chunk | Citation, links: Editor | None) -> str:
    """ "open in editor", at the first line of `c`: the browser hands the URI to the editor."""
    if links is None:
        return ""
    uri = html.escape(links.uri(c.path, c.start_line, c.end_line))
    where = html.escape(location(c.path, c.start_line, c.end_line))
    return (
        f'<a class="rag-editor" href="{uri}" title="Open {where} in your editor">open in editor</a>'
    )


def _heading_html(c: Chunk | Citation) -> str:
    return heading_html(c.heading, c.path)


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


# Gradio nests this in the panel's own scope (`#html-... { ... }`): `.dark &` is the panel
# under the dark theme, whose highlight is a dark yellow rather than a glaring light one.
PANEL_CSS = """
.rag-sources { font-size: 14px; }
.rag-empty { color: var(--body-text-color); padding: 8px 0; }
.rag-title { font-weight: 600; margin: 4px 0 2px; }
.rag-asked { margin: 0 0 8px; font-style: italic; overflow-wrap: anywhere; }
.rag-cards { list-style: none; padding: 0; margin: 0; }
.rag-card { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 8px 10px; margin-bottom: 10px; }
.rag-head { font-weight: 600; }
.rag-locs { display: flex; flex-wrap: wrap; gap: 2px 12px; }
.rag-loc { font-family: var(--font-mono); font-size: 13px; }
.rag-editor { margin-left: auto; font-size: 12px; }
.rag-excerpt { margin-top: 6px; font-family: var(--font-mono); font-size: 12px;
  line-height: 1.45; white-space: pre-wrap; overflow-wrap: anywhere;
  color: var(--body-text-color-subdued); }
.rag-line { display: block; }
.rag-excerpt code { font-family: inherit; color: var(--body-text-color); }
.rag-excerpt .md-cell { display: inline-block; min-width: 10ch; padding: 0 6px;
  border-left: 1px solid var(--border-color-primary); }
mark.rag-line { background: #fff3b0; color: #1f2328; box-shadow: inset 3px 0 #d4a72c; }
.rag-n { float: right; padding: 0 4px; font-weight: 600; color: #6f4a00; }
.dark & mark.rag-line { background: #433500; color: #fde68a; }
.dark & .rag-n { color: #ffd866; }
.rag-why { margin-top: 6px; font-size: 12px; color: var(--body-text-color); }
.rag-others summary { cursor: pointer; color: var(--body-text-color); }
.rag-others ul { margin: 4px 0 0; padding-left: 18px; }
"""
