"""Stage 2: cut a note into chunks along its headings, each with its exact line span.

    chunks = chunk_note(note, count_tokens=embedder.count_tokens, max_tokens=200)

A section (a heading and the lines up to the next heading) is one chunk. A section longer
than `max_tokens` is split at list items or paragraphs, shallowest first, never inside a
fenced code block or a table. A piece that starts inside a nested list also carries the
parent bullets as context, so "default 30s" under "Visibility timeout" stays findable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.notes import Note

CHUNKER_VERSION = 4  # bump when the cutting rules change: stored indexes are then rebuilt

HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
LIST_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
_FENCE_OPEN = re.compile(r"^\s*(?:(?:[-*+]|\d{1,9}[.)])[ \t]+)?(`{3,}|~{3,})(.*)$")
_FENCE_CLOSE = re.compile(r"^\s*(`{3,}|~{3,})\s*$")


@dataclass(frozen=True)
class Chunk:
    id: str  # derived from path, heading path and text: stable across unrelated edits
    path: str  # note path relative to the notes folder
    heading: tuple[str, ...]  # heading texts from the top level down
    start_line: int  # 1-based, inclusive
    end_line: int  # 1-based, inclusive
    text: str  # the exact lines start_line..end_line of the note
    context: str  # what the chunk is about: heading path, plus parent bullets when split
    content_hash: str  # of `indexed_text`: equal hashes can share one embedding

    @property
    def indexed_text(self) -> str:
        """What is embedded and BM25-scored: the context line, then the text."""
        return f"{self.context}\n{self.text}"

    @property
    def location(self) -> str:
        return location(self.path, self.start_line, self.end_line)


def location(path: str, start: int, end: int) -> str:
    """`file:lines` as a citation shows it: "a.md:7" or "a.md:7-9"."""
    return f"{path}:{start}" if start == end else f"{path}:{start}-{end}"


def split_lines(text: str) -> list[str]:
    """Lines as an editor numbers them (no splitting on form feeds or U+2028)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


TokenCounter = Callable[[list[str]], list[int]]  # texts -> their lengths in model tokens


def chunk_note(note: Note, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
    lines = split_lines(note.text)
    in_fence = fence_mask(lines)
    sizes = [n + 1 for n in count_tokens(lines)]  # +1: the newline
    title = note.path.rsplit("/", 1)[-1].removesuffix(".md")
    chunks: list[Chunk] = []
    seen_ids: dict[str, int] = {}
    for heading, start, end in _sections(lines, in_fence):
        context = " > ".join(heading) or title
        budget = max(max_tokens - count_tokens([context])[0], 16)
        for a, b in _split(lines, in_fence, sizes, start, end, budget, is_section=True):
            parents = parent_bullets(lines, in_fence, start, a)
            piece_context = " > ".join([context, *parents])
            chunks.append(_make_chunk(note.path, heading, lines, a, b, piece_context, seen_ids))
    return chunks


def _make_chunk(path, heading, lines, a, b, context, seen_ids) -> Chunk:
    text = "\n".join(lines[a : b + 1])
    key = hashlib.sha256("\x1f".join([path, *heading, text]).encode()).hexdigest()[:16]
    seen_ids[key] = seen_ids.get(key, 0) + 1
    chunk_id = key if seen_ids[key] == 1 else f"{key}-{seen_ids[key]}"
    content_hash = hashlib.sha256(f"{context}\n{text}".encode()).hexdigest()[:32]
    return Chunk(chunk_id, path, tuple(heading), a + 1, b + 1, text, context, content_hash)


def fence_mask(lines: list[str]) -> list[bool]:
    """True for every line that is part of a fenced code block, fences included."""
    mask = [False] * len(lines)
    fence = ""  # the opening fence while inside a block
    for i, line in enumerate(lines):
        if fence:
            mask[i] = True
            m = _FENCE_CLOSE.match(line)
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = ""
            continue
        m = _FENCE_OPEN.match(line)
        # CommonMark: a backtick fence's info string may not contain a backtick
        if m and not (m.group(1)[0] == "`" and "`" in m.group(2)):
            fence = m.group(1)
            mask[i] = True
    return mask


def _sections(lines: list[str], in_fence: list[bool]):
    """Yield (heading path, first index, last index) of each section with a body."""
    stack: list[tuple[int, str]] = []  # (level, text) of the open headings
    start, heading = 0, ()
    for i, line in enumerate([*lines, "# end"]):
        m = None if i < len(lines) and in_fence[i] else HEADING.match(line)
        if not m:
            continue
        yield from _trimmed_section(lines, heading, start, i - 1)
        level, text = len(m.group(1)), (m.group(2) or "").strip()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, text))
        start, heading = i, tuple(t for _, t in stack if t)


def _trimmed_section(lines, heading, start, end):
    body_start = start + 1 if heading and HEADING.match(lines[start]) else start
    while end >= start and not lines[end].strip():
        end -= 1
    while start <= end and not lines[start].strip():
        start += 1
    if any(lines[j].strip() for j in range(body_start, end + 1)):
        yield heading, start, end


def _split(lines, in_fence, sizes, a, b, budget, is_section=False) -> list[tuple[int, int]]:
    """Cut lines a..b into pieces of at most `budget` tokens at the shallowest legal points."""
    if sum(sizes[a : b + 1]) <= budget:
        return [(a, b)]
    points = {}  # line index -> depth: where a piece may start
    for i in range(a + 1, b + 1):
        depth = _depth(lines, in_fence, i)
        if depth is not None:
            points[i] = depth
    if is_section:  # a heading always travels with the block under it
        first_body = next((i for i in range(a + 1, b + 1) if lines[i].strip()), None)
        points.pop(first_body, None)
    if not points:
        return [(a, b)]  # one indivisible block (a long code fence, table or paragraph)
    shallowest = min(points.values())
    cuts = [i for i, d in points.items() if d == shallowest]
    segments = [(s, e - 1) for s, e in zip([a, *cuts], [*cuts, b + 1], strict=True)]
    packed: list[list[int]] = []
    for s, e in segments:
        if packed and sum(sizes[packed[-1][0] : e + 1]) <= budget:
            packed[-1][1] = e
        else:
            packed.append([s, e])
    pieces = []
    for s, e in packed:
        s, e = _trim(lines, s, e)
        if s <= e:
            pieces.extend(_split(lines, in_fence, sizes, s, e, budget, is_section and s == a))
    return pieces


def _depth(lines, in_fence, i) -> int | None:
    """Indent of a list item or paragraph start at line i, or None if no piece may start there."""
    if in_fence[i] and not (i == 0 or not in_fence[i - 1]):
        return None  # inside a fence (its opening line is fine)
    m = LIST_ITEM.match(lines[i])
    if m:
        return len(m.group(1).expandtabs(4))
    if lines[i].strip() and i > 0 and not lines[i - 1].strip():
        return len(lines[i]) - len(lines[i].lstrip())  # first line of a paragraph or table
    return None


def _trim(lines, s, e):
    while s <= e and not lines[s].strip():
        s += 1
    while e >= s and not lines[e].strip():
        e -= 1
    return s, e


def parent_bullets(lines, in_fence, section_start, i) -> list[str]:
    """Texts of the list items that enclose line i, outermost first."""
    m = LIST_ITEM.match(lines[i])
    indent = len(
        (m.group(1) if m else lines[i][: len(lines[i]) - len(lines[i].lstrip())]).expandtabs(4)
    )
    parents: list[str] = []
    for j in range(i - 1, section_start - 1, -1):
        if indent == 0:
            break
        pm = LIST_ITEM.match(lines[j])
        if pm and not in_fence[j] and len(pm.group(1).expandtabs(4)) < indent:
            indent = len(pm.group(1).expandtabs(4))
            parents.append(lines[j][pm.end() :].strip())
    return parents[::-1]
