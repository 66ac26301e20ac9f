"""Answers as the chat shows them: HTML messages whose [n] open the note viewer.

    chat_html(answer)   # '<p>Max message size (256KB; 1KB-256KB) [<a href="/note/aws-notes.md?'
                        #   'start=1693&amp;end=1693#L1693" title="aws-notes.md:1693: ...">1</a>]'

The notes' markdown is rendered by `rag.web.markup` (code blocks with their language, tables,
inline code, links): inert HTML whatever a note holds. The [n] markers are our own links. The
/ask reply (markdown, for scripts) is `rag.web.reply`; the sources panel is `rag.web.panel`.
"""

from __future__ import annotations

import html
import re
import textwrap
from urllib.parse import quote

from rag.answer.base import MARKER, Answer, Citation, marker
from rag.index.cutting import UNIT_SEP, location
from rag.web.markup import ROUTE, block_html, inline_html, text_html

PREVIEW_CHARS = 160  # of the cited lines, in the title a [n] shows on hover


def note_url(path: str, start: int, end: int, digest: str = "") -> str:
    """The viewer's address for lines start..end of a note, scrolled to `start`; with the
    cited lines' `digest`, the viewer finds them again if the note has changed since."""
    found = f"&q={digest}" if digest else ""
    return f"{ROUTE}/{quote(path)}?start={start}&end={end}{found}#L{start}"


def citation_url(c: Citation) -> str:
    return note_url(c.path, c.start_line, c.end_line, c.digest)


def by_section(citations: list[Citation]) -> list[list[Citation]]:
    """Citations grouped by the section (chunk) they quote, in order of first citation."""
    groups: dict[tuple[str, int], list[Citation]] = {}
    for c in citations:
        groups.setdefault((c.path, c.excerpt_start_line), []).append(c)
    return list(groups.values())


_MARKERS = re.compile(rf"^(.*?)((?: {MARKER.pattern})*)$")  # "a line [1]" -> ("a line", " [1]")


def answer_parts(lines: list[str]) -> list[tuple[list[str], str]]:
    """An extractive answer's parts, each as (its lines, its markers): a part of several lines
    (a code block, a table, a nested list) ends at the line that carries its markers, whose
    markers are taken off it. A part still growing (no markers yet) is plain lines."""
    parts: list[tuple[list[str], str]] = []
    part: list[str] = []
    for line in lines:
        words, markers = _MARKERS.match(line).group(1, 2)
        part.append(words if markers else line)
        if markers:
            parts.append((part, markers))
            part = []
    return parts + [([line], "") for line in part]


def partial_head(answer: Answer) -> tuple[str, str]:
    """A partial answer's first line, which says what the notes lack (shown apart, in bold),
    and the rest; ("", text) for any other answer."""
    if answer.status != "partial" or "\n" not in answer.text:
        return "", answer.text
    first, rest = answer.text.split("\n", 1)
    return first, rest


def sources_label(answer: Answer) -> str:
    return "Sources" if answer.answered else "Closest lines"


def llm_flags(answer: Answer) -> list[str]:
    """What an LLM's answer says about itself, as markdown of ours."""
    if not answer.by_llm:
        return []
    if answer.uncited:
        return [
            "**Unchecked:** this answer cites none of the excerpts it was given. "
            "Compare it with the sources below before you rely on it."
        ]
    return ["*Written by your LLM from the excerpts below; each [n] names one it was given.*"]


# --- the chat message (HTML): the answer with linked [n], then a short list of its sources --


def chat_html(answer: Answer) -> str:
    """The chat message: notices, the answer whose [n] open the note, and the sources list."""
    blocks = [_notice(n) for n in answer.notices]
    if not answer.citations:
        blocks.append(_paragraph(answer.text))
        if answer.candidates:
            blocks += ["<p>The nearest sections of your notes:</p>", _nearest_html(answer)]
        return "".join(blocks)
    head, text = partial_head(answer)
    if head:
        blocks.append(f"<p><strong>{text_html(head)}</strong></p>")
    blocks.append(_answer_html(text, answer.citations, anywhere=answer.by_llm))
    blocks += map(block_html, llm_flags(answer))
    blocks.append(sources_block(answer))
    return "".join(blocks)


def sources_block(answer: Answer) -> str:
    """The answer's sources under it, a block that folds away (on a phone, the answer and
    its sources are all there is on the screen): its heading path and lines per section."""
    items = "".join(map(_source_item, by_section(answer.citations)))
    label = sources_label(answer)
    return (
        f'<details class="rag-sources" open><summary><strong>{label}</strong></summary>'
        f"<ul>{items}</ul></details>"
    )


def nothing_searched_html(reason: str) -> str:
    """Why a question was not searched (it was empty), as a chat message."""
    return f"<p><strong>Nothing searched:</strong> {text_html(reason)}.</p>"


def _notice(text: str) -> str:
    return f"<p><strong>Note:</strong> {text_html(text)}</p>"


def _paragraph(text: str) -> str:
    return f"<p>{'<br>'.join(map(text_html, text.splitlines()))}</p>"


_SLOT = "\ue000"  # where an answer part's markers go once it is rendered (private use)


def _answer_html(text: str, linked: list[Citation], anywhere: bool = False) -> str:
    """The answer, its notes' markdown rendered and its [n] linked: the trailing markers of
    each part of an extractive answer (a note's own "[2]" stays text), or, `anywhere`, those
    in an LLM's answer, every one of which was checked against the excerpts it was given."""
    by_n = {c.n: c for c in linked}

    def link(m: re.Match) -> str:
        n = int(m[1])
        return _marker_html(by_n[n]) if n in by_n else text_html(marker(n))

    text = text.replace(_SLOT, "")
    if anywhere:
        return _written_html(text, link)
    out: list[str] = []
    lines: list[str] = []  # one-line parts, shown as the lines of one paragraph
    for part, markers in answer_parts(text.splitlines()):
        links = MARKER.sub(link, markers)
        if len(part) == 1:
            lines.append(inline_html(part[0]) + links)
            continue
        if lines:
            out, lines = [*out, f"<p>{'<br>'.join(lines)}</p>"], []
        out.append(_block_part(part, links.strip()))
    if lines:
        out.append(f"<p>{'<br>'.join(lines)}</p>")
    return "".join(out)


def _block_part(lines: list[str], links: str) -> str:
    """Lines of a note as the note has them (a code block with its language, a table, a
    nested list), then their markers: at the end of the last line, or after a block that
    text cannot follow on its line (a fence, a table row)."""
    body = textwrap.dedent("\n".join(lines))
    if body.rsplit("\n", 1)[-1].strip().startswith(("```", "~~~", "|")):
        return f"{block_html(body)}<p>{links}</p>"
    return block_html(body + _SLOT).replace(_SLOT, " " + links)


def _written_html(text: str, link) -> str:
    """An LLM's answer: its markdown rendered, line breaks kept, each [n] through `link`."""
    slotted = MARKER.sub(lambda m: f"{_SLOT}{m[1]}{_SLOT}", text)
    return re.sub(f"{_SLOT}(\\d+){_SLOT}", link, block_html(slotted, breaks=True))


def _unlinked(m: re.Match) -> str:
    return text_html(marker(int(m[1])))


def _marker_html(c: Citation) -> str:
    # "[<a>1</a>]": the brackets stay text, the number opens the note; hovering previews it.
    url, title = html.escape(citation_url(c)), html.escape(_preview(c))
    return f'[<a href="{url}" title="{title}" target="_blank" rel="noopener">{c.n}</a>]'


def _preview(c: Citation) -> str:
    """A citation as a link title: where, then its text on one line, cut at PREVIEW_CHARS."""
    text = " ".join(c.text.split())
    text = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    return f"{c.location}: {text}"


def _source_item(group: list[Citation]) -> str:
    cited = ", ".join(f"{_marker_html(c)} {text_html(c.location)}" for c in group)
    return f"<li>{heading_html(group[0].heading, group[0].path)}: {cited}</li>"


def _nearest_html(answer: Answer) -> str:
    items = []
    for h in answer.candidates:
        c = h.chunk
        url = html.escape(note_url(c.path, c.start_line, c.end_line))
        where = text_html(location(c.path, c.start_line, c.end_line))
        link = f'<a href="{url}" target="_blank" rel="noopener">{where}</a>'
        items.append(f"<li>{heading_html(c.heading, c.path)} ({link})</li>")
    return f"<ul>{''.join(items)}</ul>"


def heading_html(heading: tuple[str, ...], path: str) -> str:
    """A heading path ("AWS › SQS › Limits"), each heading's inline markdown rendered."""
    return UNIT_SEP.join(map(inline_html, heading)) or text_html(path)


class PartialAnswer:
    """An LLM's answer while it streams, its (already checked) [n] not yet links.

        partial = PartialAnswer(notices)
        partial.add("The limit [1")      # then partial.html(), as often as wanted

    The text so far is rendered whole each time (an open code block shows as one): the chat
    redraws at most every REDRAW seconds, so that costs its length times a bounded count."""

    def __init__(self, notices: tuple[str, ...]) -> None:
        self.head = [_notice(n) for n in notices]
        self.text = ""

    def add(self, piece: str) -> None:
        self.text += piece

    def html(self) -> str:
        text = self.text.replace(_SLOT, "")
        body = _written_html(text, _unlinked) if text.strip() else "<p>…</p>"
        return "".join([*self.head, body])
