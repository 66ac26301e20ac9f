"""Stage 2: cut a note into chunks along its headings, each with its exact line span, and
each chunk into units: the lines that can answer a question on their own.

    chunks = chunk_note(note, count_tokens=embedder.count_tokens, max_tokens=200)
    chunks[0].units[1]                      # Unit(start_line=4, end_line=4, parents=('Limits',))
    chunks[0].unit_display(chunks[0].units[1])   # "Limits › Max message size 256KB"

A section (a heading and the lines up to the next heading) is one chunk. A section longer
than `max_tokens` is split at list items or paragraphs, shallowest first, never inside a
fenced code block, a table or front matter. A piece that starts inside a nested list also
carries the parent bullets as context, so "default 30s" under "Visibility timeout" stays
findable. The structure (headings, fences, tables) comes from `rag.index.markdown`.

A unit is a bullet or paragraph line with the bullets enclosing it, or a whole fenced block; a
short bullet that only introduces children ("- Types") takes up to three children along, so it
says something on its own. Units are embedded too (a chunk's dense score mixes its own vector
with its best unit's), and the extractive answer is made of them. They are cut here and stored
with the chunk, under the same CUT_VERSION, so a stored unit vector always has its unit.

A note's YAML front matter is not a chunk's text: its title, aliases and tags lead the context
of every chunk of the note, and its other properties ride along as `properties`; malformed
front matter is indexed as text, as it was written. The #tags of a chunk's lines join the
note's in `tags`. Wikilinks are indexed as the words a reader sees (`rag.index.obsidian`), while
`text` stays the exact lines. A `.txt` note has no markdown: each paragraph is a section.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import NamedTuple

from rag.index.markdown import Structure, structure
from rag.index.obsidian import BadFrontMatter, FrontMatter, body_tags, front_matter, visible_text
from rag.notes import Note, is_plain_text, note_title

log = logging.getLogger(__name__)
# 7: front matter, tags and properties; wikilinks indexed as their words; .txt paragraphs.
CUT_VERSION = 7  # bump when chunks or units change: stored indexes are then cut again
CONTEXT_SEP = " > "  # between heading path parts (and parent bullets) in the indexed text
UNIT_SEP = " › "  # between a unit's parent bullets and its own words
LIST_ITEM = re.compile(r"^(\s*)(?:[-*+]|\d{1,9}[.)])(?:[ \t]+|$)")
SHORT_PARENT_WORDS = 3  # a bullet of at most this many words with children introduces them
CHILDREN_TAKEN = 3
# A block with no legal cut point (a long paragraph, fence or table) stays one chunk; past
# this many units its lines are grouped, so one pasted block cannot mean 10,000s of vectors.
MAX_UNITS_PER_CHUNK = 256
SHOWN_LINE_CHARS = 1000  # of one line, in an answer, a source card or a search hit


class Unit(NamedTuple):
    start_line: int  # in the note, 1-based inclusive
    end_line: int
    parents: tuple[str, ...]  # the bullets enclosing it, outermost first


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
    units: tuple[Unit, ...] = ()  # its lines that answer on their own, in order
    tags: tuple[str, ...] = ()  # the note's front-matter tags, then its lines' #tags; no '#'
    properties: dict = field(default_factory=dict, hash=False)  # the front matter but tags

    @property
    def indexed_text(self) -> str:
        """What is embedded and BM25-scored: the context line, then the text (wikilinks as
        the words a reader sees)."""
        return f"{self.context}\n{visible_text(self.text)}"

    @property
    def location(self) -> str:
        return location(self.path, self.start_line, self.end_line)

    @property
    def vector_units(self) -> tuple[Unit, ...]:
        """The units with a vector of their own: none when there is one, as the chunk's own
        vector is then that unit's."""
        return self.units if len(self.units) > 1 else ()

    @cached_property
    def lines(self) -> list[str]:
        """The chunk's lines, split once."""
        return self.text.split("\n")

    def unit_lines(self, u: Unit) -> str:
        """The unit's lines as they are in the note."""
        return "\n".join(
            self.lines[u.start_line - self.start_line : u.end_line - self.start_line + 1]
        )

    def unit_body(self, u: Unit) -> str:
        """The unit's words: its lines without list markers, joined."""
        return " ".join(strip_marker(x) for x in self.unit_lines(u).split("\n") if x.strip())

    def unit_display(self, u: Unit) -> str:
        return UNIT_SEP.join([*u.parents, self.unit_body(u)])

    def unit_indexed_text(self, u: Unit) -> str:
        """What is embedded for a unit: the chunk's context, then the unit with its parents."""
        return f"{self.context}{CONTEXT_SEP}{visible_text(self.unit_display(u))}"

    def unit_hash(self, u: Unit) -> str:
        return text_hash(self.unit_indexed_text(u))


def text_hash(indexed: str) -> str:
    """The hash of an indexed text (a chunk's content_hash, a unit's unit_hash): equal hashes
    share one vector."""
    return hashlib.sha256(indexed.encode()).hexdigest()[:32]


def shown_line(line: str) -> str:
    """A line as answers and cards show it: a very long one cut, saying so."""
    if len(line) <= SHOWN_LINE_CHARS:
        return line
    return f"{line[:SHOWN_LINE_CHARS]} … [line cut: {len(line):,} characters]"


def location(path: str, start: int, end: int) -> str:
    """`file:lines` as a citation shows it: "a.md:7" or "a.md:7-9"."""
    return f"{path}:{start}" if start == end else f"{path}:{start}-{end}"


def heading_text(heading: tuple[str, ...], path: str) -> str:
    """A heading path as people read it ("AWS › SQS › Limits"), or the note's path."""
    return UNIT_SEP.join(heading) or path


def split_lines(text: str) -> list[str]:
    """Lines as an editor numbers them (no splitting on form feeds or U+2028)."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


MAX_RELOCATED_LINES = 200  # longest cited span searched for after an edit


def span_digest(lines: Sequence[str]) -> str:
    """A short fingerprint of some lines, to find them again after the note is edited."""
    return hashlib.sha256("\n".join(lines).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def relocate(lines: Sequence[str], start: int, end: int, digest: str) -> tuple[int, int] | None:
    """Where lines start..end (1-based) with this `digest` are now in `lines`: there if
    still there, else the nearest span of the same length that has it, else None."""
    length = end - start + 1
    if length < 1 or start < 1:
        return None
    if span_digest(lines[start - 1 : end]) == digest:
        return start, end
    if length > MAX_RELOCATED_LINES:  # a search costs lines x length: bounded
        return None
    spans = (
        i for i in range(len(lines) - length + 1) if span_digest(lines[i : i + length]) == digest
    )
    nearest = min(spans, key=lambda i: abs(i + 1 - start), default=None)
    return None if nearest is None else (nearest + 1, nearest + length)


TokenCounter = Callable[[list[str]], list[int]]  # texts -> their lengths in model tokens


def chunk_note(note: Note, count_tokens: TokenCounter, max_tokens: int) -> list[Chunk]:
    lines = split_lines(note.text)
    plain = is_plain_text(note.path)
    s = Structure() if plain else structure(lines)
    fm, body = _front_matter(note.path, lines, s)
    sizes = [n + 1 for n in count_tokens(lines)]  # +1: the newline
    name = note_title(note.path)
    sections = _paragraphs(lines) if plain else _sections(lines, s, body)
    chunks: list[Chunk] = []
    seen_ids: dict[str, int] = {}
    for heading, start, end in sections:
        heading = heading or ((fm.title,) if fm.title else ())
        context = _context(heading, name, fm)
        budget = max(max_tokens - count_tokens([context])[0], 16)
        cut = _Cutter(lines, s, sizes, budget)
        for a, b in cut.split(start, end, is_section=not plain):
            piece_context = CONTEXT_SEP.join([context, *parent_bullets(lines, s, start, a)])
            text = "\n".join(lines[a : b + 1])
            key = hashlib.sha256("\x1f".join([note.path, *heading, text]).encode()).hexdigest()
            seen_ids[key[:16]] = seen_ids.get(key[:16], 0) + 1
            n = seen_ids[key[:16]]
            chunk_id = key[:16] if n == 1 else f"{key[:16]}-{n}"
            indexed = f"{piece_context}\n{visible_text(text)}"  # as Chunk.indexed_text
            content_hash = text_hash(indexed)
            units = shared_units(_grouped(list(_units(lines, s, a, b))))
            span = (a + 1, b + 1, text)
            own = body_tags("\n".join(lines[i] for i in range(a, b + 1) if not s.in_fence(i)))
            tags = tuple(dict.fromkeys([*fm.tags, *own]))
            chunk = Chunk(chunk_id, note.path, heading, *span, piece_context, content_hash, units)
            chunks.append(replace(chunk, tags=tags, properties=fm.properties))
    return chunks


def _front_matter(path: str, lines: list[str], s: Structure) -> tuple[FrontMatter, int]:
    """The note's front matter and the index of its first body line. Front matter that is
    not a YAML mapping, or a note that is only front matter, is indexed as text."""
    span = s.front_matter
    if span is None or not any(x.strip() for x in lines[span.after :]):
        return FrontMatter(), 0
    try:
        return front_matter(span.yaml, first_line=2), span.after
    except BadFrontMatter as e:
        log.warning("%s: %s; its lines are indexed as text", path, e)
        return FrontMatter(), 0


def _context(heading: tuple[str, ...], name: str, fm: FrontMatter) -> str:
    """The heading path (or the note's name), led by the names the front matter gives the
    note: "Title (alias, alias) #tag #tag > Heading > Subheading"."""
    if not fm.names:
        return CONTEXT_SEP.join(heading) or name
    title = fm.title or name
    rest = heading[1:] if heading and heading[0].casefold() == title.casefold() else heading
    aliases = [f"({', '.join(fm.aliases)})"] if fm.aliases else []
    label = " ".join([title, *aliases, *(f"#{t}" for t in fm.tags)])
    return CONTEXT_SEP.join([label, *rest])


def _paragraphs(lines: list[str]) -> Iterator[tuple[tuple[str, ...], int, int]]:
    """Each run of non-blank lines of a plain-text note, as a section with no heading."""
    start = None
    for i, line in enumerate([*lines, ""]):
        if line.strip() and start is None:
            start = i
        elif not line.strip() and start is not None:
            yield (), start, i - 1
            start = None


def _sections(
    lines: list[str], s: Structure, first: int = 0
) -> Iterator[tuple[tuple[str, ...], int, int]]:
    """(heading path, first index, last index) of each section with a body, from line `first`."""
    stack: list[tuple[int, str]] = []  # (level, text) of the open headings
    start, body, heading = first, first, ()
    for i in [*sorted(s.headings), len(lines)]:
        yield from _trimmed_section(lines, heading, start, body, i - 1)
        if i == len(lines):
            break
        h = s.headings[i]
        while stack and stack[-1][0] >= h.level:
            stack.pop()
        stack.append((h.level, h.text))
        start, body, heading = i, h.end, tuple(t for _, t in stack if t)


def _trimmed_section(lines, heading, start, body_start, end):
    while end >= start and not lines[end].strip():
        end -= 1
    while start <= end and not lines[start].strip():
        start += 1
    if any(lines[j].strip() for j in range(body_start, end + 1)):
        yield heading, start, end


@dataclass
class _Cutter:
    lines: list[str]
    s: Structure
    sizes: list[int]  # tokens per line
    budget: int

    def split(self, a: int, b: int, is_section: bool = False) -> list[tuple[int, int]]:
        """Cut lines a..b into pieces of at most `budget` tokens at the shallowest legal
        points; a block with no legal point (a long fence, table or paragraph) stays whole."""
        if sum(self.sizes[a : b + 1]) <= self.budget:
            return [(a, b)]
        points = {i: d for i in range(a + 1, b + 1) if (d := self._depth(i)) is not None}
        if is_section:  # a heading always travels with the block under it
            first_body = next((i for i in range(a + 1, b + 1) if self.lines[i].strip()), None)
            points.pop(first_body, None)
        if not points:
            return [(a, b)]
        shallowest = min(points.values())
        cuts = [i for i, d in points.items() if d == shallowest]
        packed: list[list[int]] = []
        for first, after in zip([a, *cuts], [*cuts, b + 1], strict=True):
            if packed and sum(self.sizes[packed[-1][0] : after]) <= self.budget:
                packed[-1][1] = after - 1
            else:
                packed.append([first, after - 1])
        pieces = []
        for first, last in packed:
            first, last = _trim(self.lines, first, last)
            if first <= last:
                pieces.extend(self.split(first, last, is_section and first == a))
        return pieces

    def _depth(self, i: int) -> int | None:
        """Indent of a list item or paragraph start at line i; None if no piece may start
        there (inside a fence, table or front matter, or mid-paragraph)."""
        if i in self.s.inside:
            return None
        line = self.lines[i]
        if m := LIST_ITEM.match(line):
            return len(m.group(1).expandtabs(4))
        if line.strip() and i > 0 and not self.lines[i - 1].strip():
            return len(line) - len(line.lstrip())  # first line of a paragraph or table
        return None


def _trim(lines: list[str], s: int, e: int) -> tuple[int, int]:
    while s <= e and not lines[s].strip():
        s += 1
    while e >= s and not lines[e].strip():
        e -= 1
    return s, e


def parent_bullets(lines: list[str], s: Structure, first: int, i: int) -> list[str]:
    """Texts of the list items that enclose line i (looking back to line `first`), outermost
    first."""
    m = LIST_ITEM.match(lines[i])
    indent = len((m.group(1) if m else lines[i][: _indent(lines[i])]).expandtabs(4))
    parents: list[str] = []
    for j in range(i - 1, first - 1, -1):
        if indent == 0:
            break
        pm = LIST_ITEM.match(lines[j])
        if pm and not s.in_fence(j) and len(pm.group(1).expandtabs(4)) < indent:
            indent = len(pm.group(1).expandtabs(4))
            parents.append(lines[j][pm.end() :].strip())
    return parents[::-1]


def _units(lines: list[str], s: Structure, a: int, b: int) -> Iterator[Unit]:
    """The units of the chunk on lines a..b."""
    i = a
    while i <= b:
        if i in s.headings:
            i = s.headings[i].end
            continue
        if not lines[i].strip():
            i += 1
            continue
        end = i
        if s.in_fence(i):  # a fenced block is one unit
            end = min(s.fence_of[i][1], b)
        elif _is_short_parent(lines, i, b):
            end = _children_end(lines, i, b)
        yield Unit(i + 1, end + 1, tuple(parent_bullets(lines, s, a, i)))
        i = end + 1 if s.in_fence(i) else i + 1


def shared_units(units: Iterable[tuple[int, int, Sequence[str]]]) -> tuple[Unit, ...]:
    """A chunk's units, equal parent bullets one tuple and a one-line unit's start and end
    one int: siblings share their parents, and most units are one line. Held for every chunk
    of an index, that is about a fifth of a chunk's memory (and it costs a tenth more time
    to parse than plain tuples)."""
    seen: dict[tuple[str, ...], tuple[str, ...]] = {}
    out = []
    for start, end, parents in units:
        shared = tuple(parents)
        shared = seen.setdefault(shared, shared)
        out.append(Unit(start, start if end == start else end, shared))
    return tuple(out)


def _grouped(units: list[Unit]) -> tuple[Unit, ...]:
    """At most MAX_UNITS_PER_CHUNK units: runs of neighbours merged into one, evenly."""
    n = len(units)
    if n <= MAX_UNITS_PER_CHUNK:
        return tuple(units)
    edges = [n * i // MAX_UNITS_PER_CHUNK for i in range(MAX_UNITS_PER_CHUNK + 1)]
    runs = [units[a:b] for a, b in zip(edges, edges[1:], strict=False)]
    return tuple(Unit(run[0].start_line, run[-1].end_line, run[0].parents) for run in runs)


def _is_short_parent(lines: list[str], i: int, last: int) -> bool:
    m = LIST_ITEM.match(lines[i])
    if not m or len(lines[i][m.end() :].split()) > SHORT_PARENT_WORDS or i + 1 > last:
        return False
    child = LIST_ITEM.match(lines[i + 1])
    return bool(child) and len(child.group(1)) > len(m.group(1))


def _children_end(lines: list[str], i: int, last: int) -> int:
    indent = len(LIST_ITEM.match(lines[i]).group(1))
    end = i
    while end + 1 <= last and end - i < CHILDREN_TAKEN:
        m = LIST_ITEM.match(lines[end + 1])
        if not m or len(m.group(1)) <= indent:
            break
        end += 1
    return end


def strip_marker(line: str) -> str:
    """A line's words without its list marker."""
    m = LIST_ITEM.match(line)
    return (line[m.end() :] if m else line).strip()


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())
