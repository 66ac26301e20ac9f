"""The block structure of a note, read by markdown-it-py (CommonMark, plus tables and front
matter), whose tokens carry exact line maps.

    s = structure(["# SQS", "", "```sh", "# not a heading", "```"])
    s.headings     # {0: Heading(level=1, text='SQS', end=1)}
    s.fence_of[3]  # (2, 4): the fenced block line 3 is part of, fences included
    s.inside[3]    # True: a chunk may not start here (inside a fence, table or front matter)
    structure(["---", "title: A", "---", "Body"]).front_matter   # FrontMatterSpan(after=3, ...)

Line numbers here are 0-based indexes into the note's lines (`cutting.split_lines`).
Headings are the note's own section headings, ATX (`# Title`) or setext (`Title` over `===`
or `---`); a heading nested in a list item or a quote is not one. YAML front matter at the top
is never read as a heading (its closing `---` would otherwise underline the line above it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from markdown_it import MarkdownIt
from mdit_py_plugins.front_matter import front_matter_plugin


@dataclass(frozen=True)
class Heading:
    level: int  # 1-6
    text: str  # the heading's words, closing hashes and the setext underline left out
    end: int  # index of the first line after the heading (a setext heading spans 2 or more)


@dataclass(frozen=True)
class FrontMatterSpan:
    after: int  # index of the first line after the closing `---` (the front matter is 0..after-1)
    yaml: str  # the lines between the `---` lines


@dataclass
class Structure:
    headings: dict[int, Heading] = field(default_factory=dict)  # first line -> its heading
    front_matter: FrontMatterSpan | None = None
    fence_of: dict[int, tuple[int, int]] = field(default_factory=dict)  # line -> (first, last)
    inside: set[int] = field(default_factory=set)  # lines that continue a block (not its first)

    def in_fence(self, i: int) -> bool:
        return i in self.fence_of


@cache
def _parser() -> MarkdownIt:
    return MarkdownIt("commonmark").enable("table").use(front_matter_plugin)


def structure(lines: list[str]) -> Structure:
    """Headings, fenced blocks, and where a piece may not start, for these lines."""
    tokens = _parser().parse("\n".join(lines))
    s = Structure()
    for n, token in enumerate(tokens):
        if token.map is None:
            continue
        first, after = token.map
        if token.type == "heading_open" and token.level == 0:
            text = " ".join(tokens[n + 1].content.split())
            s.headings[first] = Heading(int(token.tag[1]), text, after)
        elif token.type == "fence":
            last = min(after, len(lines)) - 1  # an unclosed fence runs to the end
            s.fence_of.update({i: (first, last) for i in range(first, last + 1)})
            s.inside.update(range(first + 1, last + 1))
        elif token.type in ("table_open", "front_matter"):
            s.inside.update(range(first + 1, after))
            if token.type == "front_matter":
                yaml = "\n".join(lines[first + 1 : after - 1])  # the plugin's content can overlap
                s.front_matter = FrontMatterSpan(after, yaml)
    return s
