"""The read-only note viewer: one note as numbered lines, the cited ones highlighted.

    GET /note/aws-notes.md?start=1691&end=1692#L1691   # the page opens scrolled to line 1691
    GET /note/aws-notes.md?start=1691&end=1692&q=3f1c...#L1691   # a citation: found again
    GET /note/projects/retry-policy.md?heading=Backoff   # a [[wikilink]]: 307 to .md#L7

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

A note's [[wikilinks]] are links to the notes of this folder (`NoteNames` lists them for
`rag.web.markup`, again only when a folder in it has changed): `?heading=Part#Sub` or
`?heading=^block` is sent on to that line, or the note is shown from the top, saying the
heading is not in it.
"""

from __future__ import annotations

import html
import os
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from rag.errors import NoteRefused
from rag.index.cutting import UNIT_SEP, relocate, split_lines
from rag.index.markdown import structure
from rag.index.obsidian import LinkTargets
from rag.notes import RULE_FILES, Folders, ignore_rules, is_note, read_note_text
from rag.web.feedback import mark_gold, newest_down_vote
from rag.web.markup import MISSING, ROUTE, inline_html, lines_html, link_notes
from rag.web.render import note_url

HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "SAMEORIGIN",  # the chat page shows it in its sheet; no other site
}


def note_page(
    rel: str,
    text: str,
    start: int | None,
    end: int | None,
    notice: str = "",
    vote: dict | None = None,
) -> str:
    """The viewer page: every line numbered, its markdown rendered; lines start..end marked;
    a notice (the note changed since the answer) above them; with a down-`vote`, a form that
    marks lines as the answer its question should have had."""
    lines = split_lines(text)
    first = start if start is not None else 0
    last = end if end is not None and end >= first else first
    shown = enumerate(lines_html(lines, rel), 1)
    rows = "\n".join(_row(n, line, first <= n <= last) for n, line in shown)
    span = f"lines {first}-{last}" if last > first else f"line {first}"
    title = html.escape(rel)
    cited = f' <span class="span">{span} cited</span>' if first else ""
    under = heading_path(lines, first) if first else []
    where = f'<p class="where">{UNIT_SEP.join(map(inline_html, under))}</p>' if under else ""
    changed = f'<p class="changed" role="status">{html.escape(notice)}</p>' if notice else ""
    form = gold_form(rel, start, end, vote, len(lines)) if vote else ""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f'<header><h1 class="path">{title}</h1>{cited} '
        f'<span class="ro">read-only</span>{where}{changed}{form}</header>'
        f'<main class="note">{rows}</main></body></html>'
    )


def gold_form(rel: str, start: int | None, end: int | None, vote: dict, total: int) -> str:
    """ "These lines answer my question", for the newest down-vote: its question, the lines
    shown (editable), posted back to this note. No script: a plain form."""
    first = min(max(start or 1, 1), max(total, 1))
    last = min(max(end or first, first), max(total, 1))
    asked = html.escape(str(vote.get("question", "")))
    number = f'type="number" min="1" max="{max(total, 1)}" required'
    return (
        f'<form class="gold" method="post" action="{ROUTE}/{html.escape(quote(rel))}">'
        f'<input type="hidden" name="vote" value="{html.escape(str(vote.get("id", "")))}">'
        f"<span>Down-voted: “{asked}”.</span> "
        f'<label>Lines <input name="start" {number} value="{first}"></label> '
        f'<label>to <input name="end" {number} value="{last}"></label> '
        '<button type="submit">These lines answer my question</button></form>'
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


class NoteNames:
    """The notes of the notes folders as wikilink targets, listed again only when one of
    their folders (or an ignore rule) has changed since: a file's rename changes its folder's
    time.

        names = NoteNames(Path("notes"))
        names().resolve("sqs")   # 'aws/sqs.md'
    """

    RECENT = 2.0  # seconds: a change this close to a listing may share its time; list again

    def __init__(self, notes: Folders | Path) -> None:
        self.folders = Folders.of(notes)
        self._last: tuple[tuple, LinkTargets] = ((), LinkTargets(()))  # (stamp, targets)

    def __call__(self) -> LinkTargets:
        stamp, targets = self._last
        if stamp and self._stamp(stamp[0]) == stamp:
            return targets
        started = time.time()
        folders, paths = self._listing()
        stamp, targets = self._stamp(folders), LinkTargets(paths, self.folders.mounted)
        settled = max(stamp[1:]) < started - self.RECENT  # else a change may not show in it
        self._last = (stamp if settled else (), targets)  # one assignment: threads share it
        return targets

    def _stamp(self, folders: tuple[Path, ...]) -> tuple:
        return (folders, *map(self._mtime, folders))

    @staticmethod
    def _mtime(path: Path) -> float:
        try:
            return os.stat(path).st_mtime
        except OSError:
            return -1.0

    def _listing(self) -> tuple[tuple[Path, ...], list[str]]:
        """The folders looked in (the rule files too, whose changes count) and the notes
        found, by their keys: `rag.notes`'s rule, without reading them."""
        folders: list[Path] = []
        paths: list[str] = []
        for folder in self.folders.items:
            top_dir = folder.path
            ignored, root = ignore_rules(top_dir), top_dir.resolve()
            folders += [top_dir, *(top_dir / f for f in RULE_FILES)]  # even if gone
            for top, dirs, files in os.walk(top_dir):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                folders.append(Path(top))
                below = Path(top).relative_to(top_dir).as_posix()
                for name in files:
                    rel = name if below == "." else f"{below}/{name}"
                    if is_note(rel) and not ignored.match_file(rel):
                        path = Path(top, name)
                        if not path.is_symlink() or path.resolve().is_relative_to(root):
                            paths.append(self.folders.key(folder, rel))
        return tuple(folders), paths


def heading_line(lines: list[str], subpath: str) -> int | None:
    """The 1-based line a link's `#Part#Sub` (Sub the first under Part) or `#^block` names,
    or None. Headings match whatever their case, punctuation and spacing, as in Obsidian."""
    if subpath.startswith("^"):
        block = re.compile(rf"(^|\s)\^{re.escape(subpath[1:].strip())}\s*$")
        return next((n for n, line in enumerate(lines, 1) if block.search(line)), None)
    wanted = [_plain(h) for h in subpath.split("#") if _plain(h)]
    found = None
    for i, heading in sorted(structure(lines).headings.items()):
        if wanted and _plain(heading.text) == wanted[0]:
            found, wanted = i + 1, wanted[1:]
    return found if found and not wanted else None


def heading_path(lines: list[str], line: int) -> list[str]:
    """The headings line `line` (1-based) is under, outermost first: where a citation is."""
    path: list[tuple[int, str]] = []
    for i, heading in sorted(structure(lines).headings.items()):
        if i >= line:
            break
        path = [(level, text) for level, text in path if level < heading.level]
        path.append((heading.level, heading.text))
    return [text for _, text in path]


def _plain(heading: str) -> str:
    return " ".join(re.sub(r"[^\w]+", " ", heading).split()).casefold()


def _row(n: int, line: str, hit: bool) -> str:
    """Line `n`, already HTML, with its number; marked if cited."""
    cls = "l hit" if hit else "l"
    number, text = f'<span class="n">{n}</span>', f'<span class="t">{line}</span>'
    return f'<div class="{cls}" id="L{n}">{number}{text}</div>'


_CSS = (
    """
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
.l:target .t { background: #ddf4ff; }
.changed { margin: 4px 0 0; color: #9a6700; font-weight: 600; }
.where { margin: 2px 0 0; font-size: 13px; }
.gold { margin: 6px 0 0; font-size: 13px; }
.gold input { width: 8ch; font: inherit; }
.gold button { font: inherit; cursor: pointer; }
"""
    + f".{MISSING} {{ color: #6e7781; text-decoration: underline dotted; cursor: help; }}\n"
    # The system's dark theme (the page allows no script, so the chat's own toggle cannot
    # reach it): every text at 4.5:1 or more on its background, as in the light one.
    + """@media (prefers-color-scheme: dark) {
body { color: #e6edf3; background: #0d1117; }
header { background: #161b22; border-bottom-color: #30363d; }
.span, .changed { color: #d29922; }
.ro, .n, .md-mark, .missing-note { color: #8d96a0; }
.n, .md-cell { border-color: #30363d; }
.hit { background: #3b2e00; box-shadow: inset 4px 0 #d29922; }
.hit .n { color: #c9d1d9; }
.t code { background: #343942; }
a { color: #4493f8; }
.l:target .t { background: #0c2d6b; }
}
"""
)


def add_viewer(
    app: FastAPI,
    notes: Folders | Path,
    signed_in: Callable[[Request], Awaitable[bool]],
    feedback: Path | None = None,
) -> None:
    """Serve the viewer at /note/{path} on `app`, to requests `signed_in` lets through; the
    wikilinks of notes shown anywhere from now on open the notes of `notes`. With a
    `feedback` file holding a down-vote, the viewer marks gold lines for it (POST)."""
    link_notes(NoteNames(notes))

    @app.post(ROUTE + "/{rel:path}", include_in_schema=False)
    async def mark_lines(request: Request, rel: str):
        """The gold form's post: lines of this note answer the down-voted question."""
        if not await signed_in(request):
            return PlainTextResponse("Sign in on the chat page first.", 401, headers=HEADERS)
        if not _same_origin(request):  # another site's page must not write the user's file
            return PlainTextResponse("Lines are marked from the viewer only.", 403, headers=HEADERS)
        form = await request.form()
        try:
            key, first, last = str(form["vote"]), int(form["start"]), int(form["end"])
        except (KeyError, ValueError):
            return PlainTextResponse("Give the first and the last line.", 400, headers=HEADERS)
        try:
            text = read_note_text(notes, rel)
        except NoteRefused:
            return PlainTextResponse("No such note in the notes folder.", 404, headers=HEADERS)
        total = len(split_lines(text))
        if not 1 <= first <= last <= total:
            why = f"Lines run from 1 to {total}, the first no later than the last."
            return PlainTextResponse(why, 400, headers=HEADERS)
        if feedback is None or not re.fullmatch(r"[0-9a-f]{1,64}", key):
            return PlainTextResponse("No such vote.", 400, headers=HEADERS)
        entry = await run_in_threadpool(mark_gold, feedback, key, rel, first, last)
        if entry is None:
            why = "That vote is no longer in the feedback file (taken back?): nothing marked."
            return PlainTextResponse(why, 409, headers=HEADERS)
        url = f"{ROUTE}/{quote(rel)}?start={first}&end={last}&marked=1#L{first}"
        return RedirectResponse(url, 303, headers=HEADERS)

    @app.get(ROUTE + "/{rel:path}", include_in_schema=False)
    async def view_note(
        request: Request,
        rel: str,
        start: int | None = None,
        end: int | None = None,
        q: str | None = None,  # the cited lines' digest
        was: str | None = None,  # where they were, after a redirect to where they are
        heading: str | None = None,  # a wikilink's "Part#Sub" or "^block"
        marked: int | None = None,  # start..end were just marked as gold lines
    ):
        if not await signed_in(request):
            return PlainTextResponse("Sign in on the chat page first.", 401, headers=HEADERS)
        try:
            text = read_note_text(notes, rel)
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
        elif heading and start is None:
            line = heading_line(split_lines(text), heading)
            if line is not None:  # to that line: the browser scrolls to it, CSS marks it
                return RedirectResponse(f"{ROUTE}/{quote(rel)}#L{line}", 307, headers=HEADERS)
            notice = f"There is no heading “{heading}” in this note: it is shown from the top."
        vote = await run_in_threadpool(newest_down_vote, feedback)
        if marked and vote and start is not None:
            span = f"{start}-{end}" if end and end > start else str(start)
            notice = (
                f"Lines {span} are marked as answering “{vote.get('question', '')}”; "
                "rag eval --feedback --cases writes it as an eval case."
            )
        page = note_page(rel, text, start, end, notice, vote)
        return HTMLResponse(page, headers=HEADERS)


def _same_origin(request: Request) -> bool:
    """A form posted by a page of this server. Browsers say where a request comes from in
    Sec-Fetch-Site; the Origin header can be "null" here (the viewer sends no referrer), so it
    is the test only where Sec-Fetch-Site is missing. A program (no browser) is not a
    cross-site page: it may post."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    return origin in (None, f"{request.url.scheme}://{request.headers.get('host', '')}")
