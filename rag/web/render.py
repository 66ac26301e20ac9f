"""Answers as the chat shows them: markdown for the chat messages and the /ask reply.

    chat_markdown(answer)             # "Max message size (256KB; 1KB-256KB) [[1]]\n..."
                                      #   ..."\n[1]: /note/aws-notes.md?start=1693&end=1693#L1693"
    list(stream_markdown(answer))     # the same message, growing a few words at a time

Everything from the notes or the user is escaped on the way out: a note is shown as text,
never as live HTML. The sources panel beside the chat is `rag.web.panel`.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from urllib.parse import quote

from rag.answer.base import MARKER, Answer, Citation, marker
from rag.index.cutting import UNIT_SEP, location
from rag.search.engine import Hit

_INLINE = re.compile(r"([\\`*_\[\]|~])")  # emphasis, code, links/images, tables, strikethrough
_BLOCK_MARK = re.compile(r"^([#+=-])")  # a heading, list item or setext underline at line start
_ORDERED_MARK = re.compile(r"^(\d+)([.)])")
ROUTE = "/note"  # where the note viewer (rag.web.viewer) is served
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


_MARKERS = re.compile(rf"^(.*?)((?: {MARKER.pattern})*)$")  # "a line [1]" -> ("a line", " [1]")
# A marker after escape_md, which escapes its brackets: \[3\]
_ESCAPED_MARKER = re.compile(re.escape(escape_md("[")) + r"(\d+)" + re.escape(escape_md("]")))


def note_url(path: str, start: int, end: int) -> str:
    """The viewer's address for lines start..end of a note, scrolled to `start`."""
    return f"{ROUTE}/{quote(path)}?start={start}&end={end}#L{start}"


# --- the API reply (`/ask`): answer, then each source with its quoted lines -----------------


def reply_markdown(answer: Answer) -> str:
    """The /ask reply: any notices, the answer with its [n] markers, then its sources.

    An LLM's answer lists the excerpts it cites first, then the others it was given.
    """
    notices = [f"**Note:** {escape_md(n)}" for n in answer.notices]
    if answer.answered:
        body = [_answer_lines(answer.text, anywhere=answer.by_llm), *_llm_flags(answer)]
        body += ["**Sources**", *map(_quoted_source, answer.citations)]
    else:
        body = [escape_md(answer.text)]
        if answer.candidates:
            body += ["The nearest sections of your notes:", _nearest(answer.candidates, False)]
    return "\n\n".join([*notices, *body])


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
    return "\n".join(_answer_line(line, linked) for line in text.splitlines())


def _llm_flags(answer: Answer) -> list[str]:
    if not answer.by_llm:
        return []
    if answer.uncited:
        return [
            "**Unchecked:** this answer cites none of the excerpts it was given. "
            "Compare it with the sources below before you rely on it."
        ]
    return ["*Written by your LLM from the excerpts below; each [n] names one it was given.*"]


def llm_partial_markdown(notices: tuple[str, ...], text: str) -> str:
    """An LLM's answer while it streams: escaped, its (already checked) [n] not yet links."""
    blocks = [f"**Note:** {escape_md(n)}" for n in notices]
    return "\n\n".join([*blocks, _answer_lines(text, anywhere=True) or "…"])


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
    return "\n\n".join(_chat_blocks(answer, answer.text, final=True))


def _chat_blocks(answer: Answer, text: str, final: bool) -> list[str]:
    blocks = [f"**Note:** {escape_md(n)}" for n in answer.notices]
    if not answer.answered:
        blocks.append(escape_md(text))
        if final and answer.candidates:
            blocks += ["The nearest sections of your notes:", _nearest(answer.candidates, True)]
        return blocks
    blocks.append(_answer_lines(text, answer.citations, anywhere=answer.by_llm))
    if final:
        blocks += [*_llm_flags(answer), "**Sources**"]
        blocks.append("\n".join(map(_source_item, by_section(answer.citations))))
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
        words, markers = _MARKERS.match(line).group(1, 2)
        split = words.split(" ")
        for upto in range(words_per_step, len(split) + words_per_step, words_per_step):
            shown = [*lines[:i], " ".join(split[:upto]) + (markers if upto >= len(split) else "")]
            yield "\n\n".join(_chat_blocks(answer, "\n".join(shown), final=False))
    yield chat_markdown(answer)
