"""The read-only note viewer: one note as numbered lines, the cited ones highlighted.

    GET /note/aws-notes.md?start=1691&end=1692#L1691   # the page opens scrolled to line 1691
    GET /note/aws-notes.md?start=1691&end=1692&q=3f1c...#L1691   # a citation: found again

A citation's link carries the digest of the lines it quotes (`q`). If the note changed since
the answer and those lines moved, the viewer redirects to where they are now and says so ("the
quoted lines are now 1696-1697"); if they are gone, it says that, and marks nothing.

Only notes are served (`rag.notes.resolve_note`, the rule the indexer and the watcher use):
`..`, absolute paths, hidden folders and symlinks that lead out of the folder are refused with
404, the same answer as a missing note, so the viewer cannot be used to probe the disk. Each
line keeps its row and number (so #L123 and the marks work) and has its markdown rendered by
`rag.web.markup` (inline code, links, a code block's lines as code, a table's rows as cells):
inert HTML whatever the note holds; and the page is sent with a Content-Security-Policy that
allows no script.
"""

from __future__ import annotations

import html
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse

from rag.errors import NoteRefused
from rag.index.cutting import relocate, split_lines
from rag.notes import read_note_text
from rag.web.markup import ROUTE, lines_html
from rag.web.render import note_url

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def note_page(rel: str, text: str, start: int | None, end: int | None, notice: str = "") -> str:
    """The viewer page: every line numbered, its markdown rendered; lines start..end marked;
    a notice (the note changed since the answer) above them."""
    lines = split_lines(text)
    first = start if start is not None else 0
    last = end if end is not None and end >= first else first
    shown = enumerate(lines_html(lines), 1)
    rows = "\n".join(_row(n, line, first <= n <= last) for n, line in shown)
    span = f"lines {first}-{last}" if last > first else f"line {first}"
    title = html.escape(rel)
    cited = f' <span class="span">{span} cited</span>' if first else ""
    changed = f'<p class="changed" role="status">{html.escape(notice)}</p>' if notice else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f'<header><h1 class="path">{title}</h1>{cited} '
        f'<span class="ro">read-only</span>{changed}</header>'
        f'<main class="note">{rows}</main></body></html>'
    )


def moved(was: str, now: tuple[int, int] | None) -> str:
    """What the viewer says when a citation's lines (`was`: "1691" or "1691-1692") are not
    where the answer quoted them: where they are `now`, or that they are gone."""
    lines = "line is" if "-" not in was else "lines are"
    if now is None:
        return (
            f"This note changed since the answer: the quoted {lines} no longer in it "
            f"({was}). Ask again for an answer from the note as it is now."
        )
    where = str(now[0]) if now[0] == now[1] else f"{now[0]}-{now[1]}"
    return f"This note changed since the answer; the quoted {lines} now {where} (was {was})."


def _row(n: int, line: str, hit: bool) -> str:
    """Line `n`, already HTML, with its number; marked if cited."""
    cls = "l hit" if hit else "l"
    number, text = f'<span class="n">{n}</span>', f'<span class="t">{line}</span>'
    return f'<div class="{cls}" id="L{n}">{number}{text}</div>'


_CSS = """
body { margin: 0; font: 14px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  color: #1f2328; background: #fff; }
header { position: sticky; top: 0; padding: 8px 16px; background: #f6f8fa;
  border-bottom: 1px solid #d0d7de; font-family: system-ui, sans-serif; }
.path { display: inline; margin: 0; font-size: 14px; font-weight: 600; }
.span { margin-left: 8px; color: #7d5400; }
.ro { float: right; color: #656d76; font-size: 12px; }
.note { padding: 8px 0 40vh; }
.l { display: grid; grid-template-columns: 7ch 1fr; scroll-margin-top: 30vh; }
.n { padding-right: 8px; text-align: right; color: #57606a; user-select: none;
  border-right: 1px solid #d0d7de; }
.t { white-space: pre-wrap; overflow-wrap: anywhere; padding: 0 16px 0 12px; }
.hit { background: #fff8c5; box-shadow: inset 4px 0 #d4a72c; }
.t code { background: #eff1f3; }
.md-mark { color: #57606a; }
.md-cell { display: inline-block; min-width: 12ch; padding: 0 8px; border-left: 1px solid #d0d7de; }
a { color: #0550ae; }
.changed { margin: 4px 0 0; color: #9a6700; font-weight: 600; }
"""


def add_viewer(
    app: FastAPI, notes_dir: Path, signed_in: Callable[[Request], Awaitable[bool]]
) -> None:
    """Serve the viewer at /note/{path} on `app`, to requests `signed_in` lets through."""

    @app.get(ROUTE + "/{rel:path}", include_in_schema=False)
    async def view_note(
        request: Request,
        rel: str,
        start: int | None = None,
        end: int | None = None,
        q: str | None = None,  # the cited lines' digest
        was: str | None = None,  # where they were, after a redirect to where they are
    ):
        if not await signed_in(request):
            return PlainTextResponse("Sign in on the chat page first.", 401, headers=HEADERS)
        try:
            text = read_note_text(notes_dir, rel)
        except NoteRefused:
            return PlainTextResponse("No such note in the notes folder.", 404, headers=HEADERS)
        notice = ""
        if q and start is not None:
            last = end if end is not None and end >= start else start
            quoted = str(start) if last == start else f"{start}-{last}"
            now = relocate(split_lines(text), start, last, q)
            if now is None:
                notice, start, end = moved(quoted, None), None, None
            elif now[0] != start:  # moved: go to where they are now, the scroll included
                url = note_url(rel, *now, q).replace("#", f"&was={quoted}#")
                return RedirectResponse(url, 307, headers=HEADERS)
            elif was is not None and re.fullmatch(r"\d+(-\d+)?", was):
                notice = moved(was, now)
        return HTMLResponse(note_page(rel, text, start, end, notice), headers=HEADERS)
