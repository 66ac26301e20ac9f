"""Answers as the chat shows them: markdown for the chat messages and the /ask reply.

    chat_markdown(answer)             # "Max message size (256KB; 1KB-256KB) [[1]]\n..."
                                      #   ..."\n[1]: /note/aws-notes.md?start=1693&end=1693#L1693"

Everything from the notes or the user is escaped on the way out: a note is shown as text,
never as live HTML. The sources panel beside the chat is `rag.web.panel`.
"""

from __future__ import annotations

import re
import textwrap
from urllib.parse import quote

from rag.answer.base import MARKER, Answer, Citation, marker
from rag.index.cutting import LIST_ITEM, UNIT_SEP, location
from rag.search.engine import Hit

_INLINE = re.compile(r"([\\`*_\[\]|~])")  # emphasis, code, links/images, tables, strikethrough
_BLOCK_MARK = re.compile(r"^([#+=-])")  # a heading, list item or setext underline at line start
_ORDERED_MARK = re.compile(r"^(\d+)([.)])")
# What GFM turns into a link without brackets: "https://", "ftp://", "www.", "a@b.c"
_AUTOLINK = re.compile(r"(?i)\b((?:https?|ftp):|www\.|@)")
ROUTE = "/note"  # where the note viewer (rag.web.viewer) is served
PREVIEW_CHARS = 160  # of the cited lines, in the title a [n] shows on hover


def escape_md(text: str) -> str:
    """Make text from the notes or the user display literally in the chat's markdown.

    escape_md("<img src=x onerror=alert(1)>")   # '&lt;img src=x onerror=alert(1)&gt;'
    escape_md("- **a** [b](c)")                 # '\\- \\*\\*a\\*\\* \\[b\\](c)'
    escape_md("see https://x.io")               # 'see https\\://x.io': text, not a link
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
    body = _AUTOLINK.sub(lambda m: m[1][:-1] + "\\" + m[1][-1], body)  # a URL stays text
    body = _ORDERED_MARK.sub(r"\1\\\2", _BLOCK_MARK.sub(r"\\\1", body))
    # Keep the indentation visible; four real spaces would start a code block instead.
    return "&nbsp;" * indent + body


_MARKERS = re.compile(rf"^(.*?)((?: {MARKER.pattern})*)$")  # "a line [1]" -> ("a line", " [1]")
# A marker after escape_md, which escapes its brackets: \[3\]
_ESCAPED_MARKER = re.compile(re.escape(escape_md("[")) + r"(\d+)" + re.escape(escape_md("]")))


def note_url(path: str, start: int, end: int, digest: str = "") -> str:
    """The viewer's address for lines start..end of a note, scrolled to `start`; with the
    cited lines' `digest`, the viewer finds them again if the note has changed since."""
    found = f"&q={digest}" if digest else ""
    return f"{ROUTE}/{quote(path)}?start={start}&end={end}{found}#L{start}"


def citation_url(c: Citation) -> str:
    return note_url(c.path, c.start_line, c.end_line, c.digest)


# --- the API reply (`/ask`): answer, then each source with its quoted lines -----------------


def reply_markdown(answer: Answer) -> str:
    """The /ask reply: any notices, the answer with its [n] markers, then its sources.

    An LLM's answer lists the excerpts it cites first, then the others it was given.
    """
    notices = [f"**Note:** {escape_md(n)}" for n in answer.notices]
    if answer.citations:  # answered, or partial: the closest lines
        head, text = _head(answer)
        body = [*head, _answer_lines(text, anywhere=answer.by_llm), *_llm_flags(answer)]
        body += [_sources_label(answer), *map(_quoted_source, answer.citations)]
    else:
        body = [escape_md(answer.text)]
        if answer.candidates:
            body += ["The nearest sections of your notes:", _nearest(answer.candidates, False)]
    return "\n\n".join([*notices, *body])


def _head(answer: Answer) -> tuple[list[str], str]:
    """A partial answer's first line, which says what the notes lack, apart and in bold."""
    if answer.status != "partial" or "\n" not in answer.text:
        return [], answer.text
    first, rest = answer.text.split("\n", 1)
    return [f"**{escape_md(first)}**"], rest


def _sources_label(answer: Answer) -> str:
    return "**Sources**" if answer.answered else "**Closest lines**"


def _answer_lines(text: str, linked: list[Citation] | None = None, anywhere: bool = False) -> str:
    """Escape each answer line but keep its [n] markers, which are ours: the trailing ones of
    an extractive answer (a note's own "[2]" stays text), or `anywhere` in an LLM's answer,
    where every marker left has been checked against the excerpts given (`rag.answer.llm`)."""
    if anywhere:
        by_n = {c.n: c for c in linked or []}
        return "\n".join(
            _ESCAPED_MARKER.sub(
                lambda m: _marker_link(by_n[int(m[1])]) if int(m[1]) in by_n else marker(int(m[1])),
                escape_md(line),
            )
            for line in text.splitlines()
        )
    return _parts_md(text.splitlines(), linked)


def _parts_md(lines: list[str], linked: list[Citation] | None) -> str:
    """An extractive answer's parts: a one-line part as a line; a part of several lines (it
    ends at the line that carries its markers) as the note has it: a code block, a table or a
    nested list. A part still growing (no markers yet) stays plain lines."""
    out: list[str] = []
    part: list[str] = []
    for line in lines:
        part.append(line)
        words, markers = _MARKERS.match(line).group(1, 2)
        if not markers:
            continue
        if len(part) == 1:
            out.append(_answer_line(line, linked))
        else:
            out.append(f"\n{_block_md([*part[:-1], words], _linked(markers, linked))}\n")
        part = []
    out += [_answer_line(line, linked) for line in part]
    return "\n".join(out).strip("\n")


def _linked(markers: str, linked: list[Citation] | None) -> str:
    if not linked:
        return markers.strip()
    by_n = {c.n: c for c in linked}
    return MARKER.sub(lambda m: _marker_link(by_n.get(int(m[1]))), markers).strip()


def _block_md(lines: list[str], markers: str) -> str:
    """Lines of a note as markdown that shows them as they are meant: a fenced block as a code
    block with its language, table rows as a table, bullets as a nested list. Note text is
    escaped; code is put in a fence longer than any backtick run in it, so it stays code."""
    items = [LIST_ITEM.match(line) for line in lines]
    content = [line[m.end() :] if m else line.strip() for line, m in zip(lines, items, strict=True)]
    fence = next((i for i, c in enumerate(content) if c.startswith(("```", "~~~"))), None)
    if fence is not None:
        lead = _list_md(lines[:fence], items[:fence], content[:fence])
        return "\n".join(filter(None, [lead, _code_md(lines[fence:]), markers]))
    if all(c.startswith("|") for c in content):
        return f"{_table_md(content)}\n\n{markers}"
    return f"{_list_md(lines, items, content)} {markers}"


def _list_md(lines: list[str], items: list, content: list[str]) -> str:
    out = []
    for line, m, text in zip(lines, items, content, strict=True):
        depth = (len(m.group(1).expandtabs(4)) if m else len(line) - len(line.lstrip())) // 2
        out.append(("  " * depth + "- " if m else "") + escape_md(text))
    return "\n".join(out)


def _code_md(lines: list[str]) -> str:
    body = textwrap.dedent("\n".join(lines)).split("\n")
    opening = body[0].strip().lstrip("-*+ ").strip()
    info = opening.lstrip("`~").strip().split(" ")[0]
    code = [line for line in body[1:] if line.strip() not in ("```", "~~~")]
    longest = max((len(run) for run in re.findall(r"`+", "\n".join(code))), default=0)
    fence = "`" * max(3, longest + 1)
    language = re.sub(r"[^\w+#.-]", "", info)
    return "\n".join([f"{fence}{language}", *code, fence])


def _table_md(rows: list[str]) -> str:
    cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in rows]
    cells = [r for r in cells if not all(re.fullmatch(r":?-{2,}:?", c) for c in r if c)]
    width = max(len(r) for r in cells)
    lines = [
        "| " + " | ".join(escape_md(c) for c in r + [""] * (width - len(r))) + " |" for r in cells
    ]
    return "\n".join([lines[0], "|" + " --- |" * width, *lines[1:]])


def _llm_flags(answer: Answer) -> list[str]:
    if not answer.by_llm:
        return []
    if answer.uncited:
        return [
            "**Unchecked:** this answer cites none of the excerpts it was given. "
            "Compare it with the sources below before you rely on it."
        ]
    return ["*Written by your LLM from the excerpts below; each [n] names one it was given.*"]


class PartialAnswer:
    """An LLM's answer while it streams: escaped, its (already checked) [n] not yet links.

        partial = PartialAnswer(notices)
        partial.add("The limit [1")      # then partial.markdown(), as often as wanted

    Each line is escaped once, when it is complete; only the line still growing is redone,
    so a long answer costs its length, not its length squared."""

    def __init__(self, notices: tuple[str, ...]) -> None:
        self.head = [f"**Note:** {escape_md(n)}" for n in notices]
        self.lines: list[str] = []  # complete lines, escaped
        self.tail = ""  # the line still growing, as written

    def add(self, piece: str) -> None:
        *complete, self.tail = (self.tail + piece).split("\n")
        self.lines += (_answer_lines(line, anywhere=True) for line in complete)

    def markdown(self) -> str:
        body = "\n".join([*self.lines, _answer_lines(self.tail, anywhere=True)])
        return "\n\n".join([*self.head, body.strip("\n") or "…"])


def _answer_line(line: str, linked: list[Citation] | None) -> str:
    words, markers = _MARKERS.match(line).group(1, 2)
    if linked:
        by_n = {c.n: c for c in linked}
        markers = MARKER.sub(lambda m: _marker_link(by_n.get(int(m[1]))), markers)
    return escape_md(words) + markers


def _marker_link(c: Citation | None) -> str:
    # "[[1]]": the inner [1] is a reference link (defined at the end of the message), the
    # outer brackets stay text: it shows as "[1]" and copies as plain text, not as a URL.
    return f"[[{c.n}]]" if c else ""


def _quoted_source(c: Citation) -> str:
    head = f"**{marker(c.n)}** {heading_md(c.heading, c.path)} ({escape_md(c.location)})"
    cited = escape_md(textwrap.dedent(c.text)).splitlines() or [""]
    return head + "\n\n" + "\n".join(f"> {line}" for line in cited)


def _nearest(hits: list[Hit], linked: bool) -> str:
    return "\n".join(
        f"- {heading_md(h.chunk.heading, h.chunk.path)} "
        f"({_location_md(h.chunk.path, h.chunk.start_line, h.chunk.end_line, linked)})"
        for h in hits
    )


def heading_md(heading: tuple[str, ...], path: str) -> str:
    return UNIT_SEP.join(escape_md(part) for part in heading) or escape_md(path)


def _location_md(path: str, start: int, end: int, linked: bool) -> str:
    shown = escape_md(location(path, start, end))
    return f"[{shown}]({note_url(path, start, end)})" if linked else shown


# --- the chat message: answer with linked [n], then a short list of its sources -------------


def chat_markdown(answer: Answer) -> str:
    """The chat message: notices, the answer whose [n] open the note, and the sources list."""
    blocks = [f"**Note:** {escape_md(n)}" for n in answer.notices]
    if not answer.citations:
        blocks.append(escape_md(answer.text))
        if answer.candidates:
            blocks += ["The nearest sections of your notes:", _nearest(answer.candidates, True)]
        return "\n\n".join(blocks)
    head, text = _head(answer)
    blocks += [*head, _answer_lines(text, answer.citations, anywhere=answer.by_llm)]
    blocks += [*_llm_flags(answer), _sources_label(answer)]
    blocks.append("\n".join(map(_source_item, by_section(answer.citations))))
    blocks.append(_link_definitions(answer.citations))  # invisible; they make [n] links
    return "\n\n".join(blocks)


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
    """The [n] links' targets, each titled with its lines: hovering [n] previews them."""
    return "\n".join(f'[{c.n}]: {citation_url(c)} "{_preview(c)}"' for c in citations)


def _preview(c: Citation) -> str:
    """A citation as a link title: where, then its text on one line, cut at PREVIEW_CHARS."""
    text = " ".join(c.text.split())
    text = text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"
    return f"{c.location}: {text}".replace("\\", "\\\\").replace('"', '\\"')
