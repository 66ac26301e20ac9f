"""Stage 2b: the lines of a chunk that can each answer a question on their own.

    units = units_of(chunk)   # one per bullet or paragraph line; a code fence is one unit
    units[0].display          # "Configuration › Max message size (256KB; 1KB-256KB)"

Units are embedded too (a chunk's dense score mixes its own vector with its best unit's), and
the extractive answer is made of them. A short bullet that only introduces children ("- Types")
takes up to three children along, so it says something on its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from rag.index.cutting import HEADING, LIST_ITEM, Chunk, fence_mask, parent_bullets


@dataclass(frozen=True)
class Unit:
    start_line: int  # in the note, 1-based inclusive
    end_line: int
    text: str  # the raw lines
    body: str  # the lines without list markers, joined
    parents: tuple[str, ...]  # the bullets enclosing it, outermost first

    @property
    def display(self) -> str:
        return " › ".join([*self.parents, self.body])


def units_of(chunk: Chunk) -> list[Unit]:
    lines = chunk.text.split("\n")
    in_fence = fence_mask(lines)
    units: list[Unit] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip() or (HEADING.match(lines[i]) and not in_fence[i]):
            i += 1
            continue
        end = i
        if in_fence[i]:  # a fenced block is one unit
            while end + 1 < len(lines) and in_fence[end + 1]:
                end += 1
        elif _is_short_parent(lines, i):
            end = _children_end(lines, i, limit=3)
        raw = lines[i : end + 1]
        body = " ".join(_strip_marker(x) for x in raw if x.strip())
        parents = tuple(parent_bullets(lines, in_fence, 0, i))
        first = chunk.start_line
        units.append(Unit(first + i, first + end, "\n".join(raw), body, parents))
        i = end + 1 if in_fence[i] else i + 1
    return units


def unit_text(chunk: Chunk, unit: Unit) -> str:
    """What is embedded for a unit: the chunk's context, then the unit with its parents."""
    return f"{chunk.context} > {unit.display}"


def unit_hash(chunk: Chunk, unit: Unit) -> str:
    return hashlib.sha256(unit_text(chunk, unit).encode()).hexdigest()[:32]


def _is_short_parent(lines: list[str], i: int) -> bool:
    m = LIST_ITEM.match(lines[i])
    if not m or len(lines[i][m.end() :].split()) > 3 or i + 1 >= len(lines):
        return False
    child = LIST_ITEM.match(lines[i + 1])
    return bool(child) and len(child.group(1)) > len(m.group(1))


def _children_end(lines: list[str], i: int, limit: int) -> int:
    indent = len(LIST_ITEM.match(lines[i]).group(1))
    end = i
    while end + 1 < len(lines) and end - i < limit:
        m = LIST_ITEM.match(lines[end + 1])
        if not m or len(m.group(1)) <= indent:
            break
        end += 1
    return end


def _strip_marker(line: str) -> str:
    m = LIST_ITEM.match(line)
    return (line[m.end() :] if m else line).strip()
