"""The /ask reply: the answer as markdown for scripts, each source with its quoted lines.

    reply_markdown(answer)   # "Max message size (256KB; 1KB-256KB) [1]\n\n**Sources**\n\n..."
    escape_md("<b>")         # '&lt;b&gt;': text from the notes shows literally in markdown

Everything from the notes or the user is escaped (`escape_md`): whoever renders the reply sees
a note as text, never as live HTML. The chat shows the same answer as HTML (`rag.web.render`).
"""

from __future__ import annotations

import re
import textwrap

from rag.answer.base import Answer, Citation, marker
from rag.index.cutting import LIST_ITEM, UNIT_SEP, location
from rag.search.engine import Hit
from rag.web.render import answer_parts, llm_flags, partial_head, sources_label

_INLINE = re.compile(r"([\\`*_\[\]|~])")  # emphasis, code, links/images, tables, strikethrough
_BLOCK_MARK = re.compile(r"^([#+=-])")  # a heading, list item or setext underline at line start
_ORDERED_MARK = re.compile(r"^(\d+)([.)])")
# What GFM turns into a link without brackets: "https://", "ftp://", "www.", "a@b.c"
_AUTOLINK = re.compile(r"(?i)\b((?:https?|ftp):|www\.|@)")


def escape_md(text: str) -> str:
    """Make text from the notes or the user display literally in markdown.

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


def reply_markdown(answer: Answer) -> str:
    """The /ask reply: any notices, the answer with its [n] markers, then its sources.

    An LLM's answer lists the excerpts it cites first, then the others it was given.
    """
    notices = [f"**Note:** {escape_md(n)}" for n in answer.notices]
    if answer.citations:  # answered, or partial: the closest lines
        first, text = partial_head(answer)
        head = [f"**{escape_md(first)}**"] if first else []
        body = [*head, _answer_md(text, anywhere=answer.by_llm), *llm_flags(answer)]
        body += [f"**{sources_label(answer)}**", *map(_quoted_source, answer.citations)]
    else:
        body = [escape_md(answer.text)]
        if answer.candidates:
            body += ["The nearest sections of your notes:", _nearest_md(answer.candidates)]
    return "\n\n".join([*notices, *body])


# A marker after escape_md, which escapes its brackets: \[3\]
_ESCAPED_MARKER = re.compile(re.escape(escape_md("[")) + r"(\d+)" + re.escape(escape_md("]")))


def _answer_md(text: str, anywhere: bool = False) -> str:
    """Escape each answer line but keep its [n] markers, which are ours: the trailing ones of
    an extractive answer's parts, or `anywhere` in an LLM's answer."""
    if anywhere:
        return "\n".join(
            _ESCAPED_MARKER.sub(lambda m: marker(int(m[1])), escape_md(line))
            for line in text.splitlines()
        )
    out = []
    for part, markers in answer_parts(text.splitlines()):
        if len(part) == 1:
            out.append(escape_md(part[0]) + markers)
        else:
            out.append(f"\n{_block_md(part, markers.strip())}\n")
    return "\n".join(out).strip("\n")


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


def _quoted_source(c: Citation) -> str:
    head = f"**{marker(c.n)}** {heading_md(c.heading, c.path)} ({escape_md(c.location)})"
    cited = escape_md(textwrap.dedent(c.text)).splitlines() or [""]
    return head + "\n\n" + "\n".join(f"> {line}" for line in cited)


def _nearest_md(hits: list[Hit]) -> str:
    return "\n".join(
        f"- {heading_md(h.chunk.heading, h.chunk.path)} "
        f"({escape_md(location(h.chunk.path, h.chunk.start_line, h.chunk.end_line))})"
        for h in hits
    )


def heading_md(heading: tuple[str, ...], path: str) -> str:
    return UNIT_SEP.join(escape_md(part) for part in heading) or escape_md(path)
