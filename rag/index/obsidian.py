"""What a vault adds to markdown, read for the index: YAML front matter, #tags, [[wikilinks]].

    fm = front_matter("title: Queues\\naliases: [MQ]\\ntags: [infra]\\nowner: ops")
    fm.title, fm.aliases, fm.tags    # 'Queues', ('MQ',), ('infra',)
    fm.properties                    # {'title': 'Queues', 'aliases': ['MQ'], 'owner': 'ops'}
    body_tags("Fix #infra/queues, not #1984 or `#include`")   # ('infra/queues',)
    visible_text("see [[Queues#Limits|the limits]], [[Queues]]")   # 'see the limits, Queues'
    link = wikilink("Queues#Limits|the limits")   # link.note, link.subpath, link.alias:
                                                  # 'Queues', 'Limits', 'the limits'
    LinkTargets(["infra/Queues.md"]).resolve("queues")   # 'infra/Queues.md'

Front matter is parsed by python-frontmatter's YAML handler (PyYAML's safe loader): `title`,
`aliases` and `tags` are what the note is called and filed under; every other key is kept as a
JSON value. A tag is Obsidian's: `#` after a space or a line start, then letters, digits, `_`,
`-` and `/` (nested tags), at least one of them a letter. A wikilink or an embed is indexed as
the words a reader sees: the alias, else the note and heading names; nothing is fetched.

A link names its note as Obsidian reads it: by file name without the extension, or by the end
of its path ("projects/queues"), in any case; when several notes answer to a name, the one in
the fewest folders wins. The index keeps only the words; `rag.web.markup` resolves the names
when it shows a note, so renaming a note changes the links to it and nothing else.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import frontmatter
import yaml

from rag.notes import SUFFIXES

# A tag needs a letter (#1984 is not one) and a space or the line start before it (a#b, a URL's
# /#anchor and a link's (#anchor) are not tags).
_TAG = re.compile(r"(?<!\S)#([\w/-]*[^\W\d_][\w/-]*)")
_CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
_LINK = re.compile(r"(!?)\[\[([^\[\]\n]+?)\]\]")
_SIZE = re.compile(r"\d+(?:x\d+)?")  # ![[image.png|300]]: a size, not an alias
MAX_PROPERTY_VALUES = 1000  # scalars kept from one note's front matter (YAML aliases can nest)


class BadFrontMatter(ValueError):
    """Front matter that is not a YAML mapping: the note's lines are then indexed as text."""


@dataclass(frozen=True)
class FrontMatter:
    title: str = ""
    aliases: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()  # without '#', as written, each once
    properties: dict = field(default_factory=dict, hash=False)  # every key but tags, as JSON

    @property
    def names(self) -> bool:
        """Whether it names the note: a title, an alias or a tag."""
        return bool(self.title or self.aliases or self.tags)


def front_matter(yaml_text: str, first_line: int = 1) -> FrontMatter:
    """The fields of a note's front matter (the YAML between its `---` lines, the first of
    them line `first_line` of the note), or BadFrontMatter saying what is wrong where."""
    try:
        data = frontmatter.YAMLHandler().load(yaml_text)
    except yaml.YAMLError as e:
        problem = _problem(e, first_line)
        raise BadFrontMatter(f"front matter is not valid YAML ({problem})") from None
    except RecursionError:
        raise BadFrontMatter("front matter is nested too deeply") from None
    if data is None:
        return FrontMatter()
    if not isinstance(data, dict):
        raise BadFrontMatter(f"front matter is a YAML {type(data).__name__}, not key: value lines")
    budget = [MAX_PROPERTY_VALUES]
    properties = {str(k): _jsonable(v, budget) for k, v in data.items()}
    tags = [*_items(properties.pop("tags", None)), *_items(properties.pop("tag", None))]
    aliases = _items(properties.get("aliases", properties.get("alias")), split=False)
    title = properties.get("title")
    return FrontMatter(
        title=" ".join(str(title).split()) if isinstance(title, str | int | float) else "",
        aliases=_unique(aliases),
        tags=_unique(t.lstrip("#") for t in tags),
        properties=properties,
    )


def body_tags(text: str) -> tuple[str, ...]:
    """The #tags of some lines of markdown, in order, each once; code spans hold none."""
    found = (m.group(1).rstrip("/") for m in _TAG.finditer(_CODE_SPAN.sub(" ", text)))
    return _unique(found)


def visible_text(text: str) -> str:
    """`text` with each wikilink or embed as the words a reader sees; code spans kept."""
    if "[[" not in text:
        return text
    out, at = [], 0
    for span in _CODE_SPAN.finditer(text):
        out += [_LINK.sub(_shown, text[at : span.start()]), span.group()]
        at = span.end()
    return "".join([*out, _LINK.sub(_shown, text[at:])])


def _shown(m: re.Match) -> str:
    """[[note]] -> note; [[note#heading]] -> note > heading; [[note|alias]] -> alias."""
    return wikilink(m.group(2), bool(m.group(1))).words(" > ")


@dataclass(frozen=True)
class WikiLink:
    note: str  # as written, "" for a heading of the same note ([[#Part]])
    subpath: str  # what follows the first '#': "Part", "Part#Sub", "^block" or ""
    alias: str  # the words shown instead, "" for none (an embed's size is none)
    embed: bool  # ![[...]]
    inner: str = ""  # all between the brackets

    def words(self, sep: str = " > ") -> str:
        """What a reader sees: the alias, else the note and its headings (not a ^block)."""
        if self.alias:
            return self.alias
        headings = (h.strip() for h in self.subpath.split("#"))
        parts = [self.note.removesuffix(".md"), *(h for h in headings if h and h[0] != "^")]
        return sep.join(p for p in parts if p) or self.inner


def wikilink(inner: str, embed: bool = False) -> WikiLink:
    """What is between a wikilink's brackets, read: `note#sub|alias` (a `\\|` in a table is |)."""
    target, _, alias = inner.replace("\\|", "|").partition("|")
    alias = " ".join(alias.split())
    if embed and _SIZE.fullmatch(alias):
        alias = ""
    note, _, subpath = target.partition("#")
    return WikiLink(note.strip(), subpath.strip(), alias, embed, inner)


class LinkTargets:
    """The notes a [[link]] may open, by every name a link may call each of them.

    targets = LinkTargets(["a/Queues.md", "Queues.md", "b/x.txt"])
    targets.resolve("queues"), targets.resolve("a/queues"), targets.resolve("x.txt")
    # ('Queues.md', 'a/Queues.md', 'b/x.txt')
    """

    def __init__(
        self, paths: Iterable[str], mounted: Callable[[str], str] = lambda key: key
    ) -> None:
        """`mounted`: a note's key as a path, its folder's name first when an index has
        several folders (`rag.notes.Folders.mounted`: "work:a/b.md" as "work/a/b.md")."""
        self._path: dict[str, str] = {}  # a name, folded -> the note it opens
        for path in sorted(paths, key=lambda p: (p.count("/"), p)):  # fewest folders first
            suffix = next((s for s in SUFFIXES if path.endswith(s)), "")
            parts = mounted(path).split("/")
            ends = ["/".join(parts[i:]) for i in range(len(parts))]  # "a/b/c.md", "c.md"
            for tail in [path, *ends]:  # and the key itself: "work:a/b.md"
                for name in (tail, tail.removesuffix(suffix)):
                    self._path.setdefault(_fold(name), path)

    def resolve(self, note: str) -> str | None:
        """The path of the note a link's name opens, or None."""
        return self._path.get(_fold(note)) if note else None


def _fold(name: str) -> str:
    return unicodedata.normalize("NFC", name.strip()).casefold()


def _items(value: object, split: bool = True) -> list[str]:
    """A list property's items as text: a YAML list, or one string (tags: split at commas
    and spaces, as Obsidian reads `tags: a, b`)."""
    if value is None:
        return []
    if isinstance(value, list):
        return [s for v in value if (s := " ".join(str(v).split())) and not isinstance(v, dict)]
    if split and isinstance(value, str):
        return [s for s in re.split(r"[,\s]+", value) if s]
    return [" ".join(str(value).split())] if not isinstance(value, dict) else []


def _unique(items) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i for i in items if i))


def _jsonable(value: object, budget: list[int]) -> object:
    """A YAML value as JSON can hold it: dates as ISO text, anything else unknown as text;
    at most MAX_PROPERTY_VALUES values in all (YAML aliases can make a small file huge)."""
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v, budget) for k, v in value.items() if budget[0] > 0}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v, budget) for v in value if budget[0] > 0]
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _problem(e: Exception, first_line: int) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e).split("\n")[0]
    return f"{problem}, line {first_line + mark.line}" if mark is not None else problem
