"""Which chunks a question may find: `--where` conditions and `--since`, as a row mask.

    where = Where.parse(["tag:infra", "folder:projects/*"], since="2026-01-01")
    allowed = where.mask(engine.chunks, folders)    # one bool per chunk row
    engine.within(allowed).search("retry backoff", k=5)   # both legs search these rows only
    filtered(engine, where, folders)   # the same, refusing a filter no note meets

`tag:X` holds for a note with the tag X or a tag nested under it (`X/sub`), in its front
matter or anywhere in its lines; `folder:GLOB` for a note whose path is below a folder the glob
names (`projects`, `projects/*`, `*/drafts`; `*` crosses folders; with several notes folders,
a folder's name is a top folder too: `folder:work` is all of it); any other `NAME:VALUE` for a
note whose front-matter property NAME is VALUE or lists it (`status:draft`); `--since DATE`
for a note whose file was modified on or after that day (local time). Every condition must
hold; names, tags and values match whatever their case.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.errors import BadInput, NoteRefused
from rag.index.chunkfile import rows_by_path
from rag.index.cutting import Chunk
from rag.notes import Folders

if TYPE_CHECKING:
    from rag.search.engine import Engine


@dataclass(frozen=True)
class Condition:
    name: str  # "tag", "folder", or a front-matter property, casefolded
    value: str


@dataclass(frozen=True)
class Where:
    conditions: tuple[Condition, ...] = ()
    since: dt.date | None = None

    @classmethod
    def parse(cls, where: list[str] | None, since: str | None = None) -> Where:
        """The conditions of `--where NAME:VALUE` flags and `--since YYYY-MM-DD`; BadInput
        says what is wrong with one."""
        conditions = []
        for raw in where or []:
            name, sep, value = raw.partition(":")
            if not sep or not name.strip() or not value.strip():
                raise BadInput(
                    f"--where takes NAME:VALUE (tag:infra, folder:projects/*, status:draft), "
                    f"not {raw!r}"
                )
            conditions.append(Condition(name.strip().casefold(), value.strip()))
        day = None
        if since:
            try:
                day = dt.date.fromisoformat(since.strip())
            except ValueError:
                raise BadInput(f"--since takes a date as YYYY-MM-DD, not {since!r}") from None
        return cls(tuple(conditions), day)

    def __bool__(self) -> bool:
        return bool(self.conditions) or self.since is not None

    def __str__(self) -> str:
        shown = [f"{c.name}:{c.value}" for c in self.conditions]
        return " ".join(shown + ([f"since {self.since}"] if self.since else []))

    def mask(self, chunks: Sequence[Chunk], notes: Folders | Path) -> np.ndarray:
        """One bool per chunk: whether its note meets every condition. A note's chunks are
        parsed only for a condition on their tags or properties (a large index's rows are
        read as asked: chunkfile)."""
        folders = Folders.of(notes)
        rows = rows_by_path(chunks)
        kept = {path for path, of in rows.items() if self._holds(path, of, chunks, folders)}
        allowed = np.zeros(len(chunks), dtype=bool)
        for path in kept:
            allowed[rows[path]] = True
        return allowed

    def _holds(self, path: str, rows: list[int], chunks: Sequence[Chunk], folders: Folders) -> bool:
        for c in self.conditions:
            if c.name == "tag":
                tag = c.value.lstrip("#").casefold()
                tags = {t.casefold() for r in rows for t in chunks[r].tags}
                if not any(t == tag or t.startswith(tag + "/") for t in tags):
                    return False
            elif c.name == "folder":
                glob = c.value.strip("/")
                places = {path, folders.mounted(path), _below(folders, path)}
                if not any(fnmatchcase(p, g) for p in places for g in (glob, glob + "/*")):
                    return False
            elif not _has_property(chunks[rows[0]].properties, c.name, c.value):
                return False
        return self.since is None or _modified(folders, path) >= self.since


def filtered(engine: Engine, where: Where, notes: Folders | Path) -> Engine:
    """The engine, searching only the notes `where` allows (all of them for no conditions);
    BadInput when no note meets them, so a scoped question is never silently unscoped."""
    if not where:
        return engine
    allowed = where.mask(engine.chunks, notes)
    if not allowed.any():
        raise BadInput(f"no note in {notes} matches {where}")
    return engine.within(allowed)


def _has_property(properties: dict, name: str, value: str) -> bool:
    found = [v for k, v in properties.items() if k.casefold() == name]
    values = [x for v in found for x in (v if isinstance(v, list) else [v])]
    return any(str(v).casefold() == value.casefold() for v in values if not isinstance(v, dict))


def _below(folders: Folders, key: str) -> str:
    """A note's path below its own notes folder."""
    try:
        return folders.split(key)[1]
    except NoteRefused:  # an index of other folders, until it is brought up to date
        return key


def _modified(folders: Folders, key: str) -> dt.date:
    """The day a note's file was last modified; a file gone since indexing: never."""
    try:
        return dt.date.fromtimestamp(os.stat(folders.path(key)).st_mtime)
    except (OSError, NoteRefused):
        return dt.date.min
