"""A generation's chunks.jsonl: one chunk a line, in row order, read whole or line by line.

    chunks = read_chunks(path)        # a list; or, for a large file, a ChunkFile:
    chunks[row]                       # that line read and parsed, nothing else
    len(chunks), iter(chunks)
    chunk_paths(chunks)               # each row's note path, without parsing the rows
    rows_by_path(chunks)              # note path -> its rows, in order, likewise

Up to LAZY_BYTES a file is parsed at load. A larger one is not: 1M chunks are 1.4 GB as
objects, more than a whole 1M-chunk index may take in memory (docs/benchmarks.md), and a
question needs a few of them. A ChunkFile keeps where each line starts (8 bytes a chunk) and an
open descriptor, so a generation removed by a writer while a server answers from it stays
readable. Its lines are not parsed at load: damage in one is reported when that chunk is read
(IndexCorrupt), or by `rag index --check`, which reads every file against its checksum.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from rag.errors import IndexCorrupt
from rag.index.cutting import Chunk, shared_units

LAZY_BYTES = 64 << 20  # about 30,000 chunks of prose notes; their objects take about 45 MB
_BLOCK = 16 << 20  # bytes read at a time while finding where the lines start
# The start of a line as chunk_to_json and json_line write it: its id (hex, and -2 for the
# second of equal sections), then its path.
_PATH = re.compile(rb'\{"id": "[0-9a-f-]*", "path": ("(?:[^"\\\n]|\\.)*")')


def chunk_to_json(chunk: Chunk) -> dict:
    """Every field of the chunk (`dataclasses.asdict` by hand: it is five times faster)."""
    return {
        "id": chunk.id,
        "path": chunk.path,
        "heading": list(chunk.heading),
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "text": chunk.text,
        "context": chunk.context,
        "content_hash": chunk.content_hash,
        "units": [[u.start_line, u.end_line, list(u.parents)] for u in chunk.units],
        "tags": list(chunk.tags),
        "properties": chunk.properties,
    }


def chunk_paths(chunks: Sequence[Chunk]) -> list[str]:
    """The note path of each row: from the file's text for a ChunkFile (no row is parsed)."""
    paths = getattr(chunks, "paths", None)
    return list(paths) if paths is not None else [c.path for c in chunks]


def rows_by_path(chunks: Sequence[Chunk]) -> dict[str, list[int]]:
    """Each note's rows, in row order, from `chunk_paths` (no row is parsed)."""
    rows: dict[str, list[int]] = {}
    for row, path in enumerate(chunk_paths(chunks)):
        rows.setdefault(path, []).append(row)
    return rows


def chunk_from_json(data: dict) -> Chunk:
    units = shared_units(data["units"])
    tags = tuple(data.get("tags", ()))  # absent before CUT_VERSION 7: that index is re-cut
    return Chunk(**{**data, "heading": tuple(data["heading"]), "units": units, "tags": tags})


def read_chunks(path: Path) -> Sequence[Chunk]:
    """The chunks of a file: a list, or a ChunkFile when the file is larger than LAZY_BYTES."""
    if path.stat().st_size > LAZY_BYTES:
        return ChunkFile(path)
    chunks: list[Chunk] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            chunks.append(_parse(line, path, len(chunks)))
    return chunks


class ChunkFile(Sequence[Chunk]):
    """The chunks of one chunks.jsonl, each parsed when it is asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDONLY)
        try:
            self._starts = _line_starts(fd, path)
        except BaseException:
            os.close(fd)
            raise
        self._fd: int | None = fd

    def __len__(self) -> int:
        return len(self._starts) - 1

    def __getitem__(self, row):  # int -> Chunk; slice -> list[Chunk]
        if isinstance(row, slice):
            return [self[r] for r in range(*row.indices(len(self)))]
        n = len(self)
        row = int(row) + n if int(row) < 0 else int(row)
        if not 0 <= row < n:
            raise IndexError(f"chunk row {row} of {n}")
        start, stop = int(self._starts[row]), int(self._starts[row + 1])
        return _parse(os.pread(self._fd, stop - start, start), self.path, row)

    @cached_property
    def paths(self) -> list[str]:
        """Each row's note path, matched at the start of its line (one string a note)."""
        paths: list[str] = []
        seen: dict[bytes, str] = {}
        step = max(1, len(self) // 64)
        for a in range(0, len(self), step):
            starts = self._starts[a : a + step + 1]
            offset = int(starts[0])
            text = os.pread(self._fd, int(starts[-1]) - offset, offset)  # whole lines only
            for start in (starts[:-1] - offset).tolist():
                match = _PATH.match(text, start)
                if match is None:  # not written as chunk_to_json writes: parse them
                    return [chunk.path for chunk in self]
                raw = match[1]
                path = seen.get(raw)
                if path is None:
                    path = seen[raw] = json.loads(raw)
                paths.append(path)
        return paths

    def __iter__(self) -> Iterator[Chunk]:
        with open(self._fd, "rb", closefd=False) as f:
            f.seek(0)
            for row, line in enumerate(f):
                yield _parse(line, self.path, row)

    def __del__(self) -> None:
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)


def _line_starts(fd: int, path: Path) -> np.ndarray:
    """Where each line starts, and one past the end: read block by block, not mapped (pages
    of a mapped file would count against the process's memory)."""
    starts = [np.zeros(1, dtype=np.int64)]
    offset = 0
    while block := os.pread(fd, _BLOCK, offset):
        ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == ord("\n"))
        starts.append(ends.astype(np.int64) + offset + 1)
        offset += len(block)
    out = np.concatenate(starts)
    if out[-1] != offset:  # an unfinished last line: the file was cut short
        raise IndexCorrupt(f"{path} ends inside a line")
    return out


def _parse(line: bytes | str, path: Path, row: int) -> Chunk:
    try:
        return chunk_from_json(json.loads(line))
    except (ValueError, TypeError, KeyError) as e:  # UnicodeDecodeError is a ValueError
        raise IndexCorrupt(f"{path} line {row + 1} is not a valid chunk ({e})") from e
