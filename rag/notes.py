"""Stage 1: find and read the markdown notes.

notes, skipped = load_notes(Path("notes"))   # every *.md below the folder, recursively
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

MAX_NOTE_BYTES = 20 * 1024 * 1024  # a "note" bigger than this is almost surely not a note


class NotesError(ValueError):
    """The notes folder cannot be used at all (missing, not a folder, no notes)."""


@dataclass(frozen=True)
class Note:
    path: str  # relative to the notes folder, with forward slashes
    text: str
    sha256: str  # of the raw bytes


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def load_notes(notes_dir: Path) -> tuple[list[Note], list[Skipped]]:
    """Read every `*.md` below `notes_dir`; unreadable files are skipped with a reason."""
    notes_dir = Path(notes_dir)
    if not notes_dir.exists():
        raise NotesError(f"notes folder {notes_dir} does not exist; create it or pass --notes DIR")
    if not notes_dir.is_dir():
        raise NotesError(f"notes folder {notes_dir} is not a folder")
    notes: list[Note] = []
    skipped: list[Skipped] = []
    for path in sorted(notes_dir.rglob("*.md")):
        rel = path.relative_to(notes_dir).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # .obsidian/, .git/, .trash/ hold app state, not notes
        if not path.is_file():
            continue
        if not path.resolve().is_relative_to(notes_dir.resolve()):
            skipped.append(Skipped(rel, "links outside the notes folder"))
            continue
        note, reason = _read(path, rel)
        if note is None:
            skipped.append(Skipped(rel, reason))
        else:
            notes.append(note)
    return notes, skipped


def require_notes(notes_dir: Path) -> tuple[list[Note], list[Skipped]]:
    """`load_notes`, but an empty result is an error that says what was found."""
    notes, skipped = load_notes(notes_dir)
    if not notes:
        detail = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
        raise NotesError(
            f"no usable markdown notes (*.md) in {notes_dir}" + (f" ({detail})" if detail else "")
        )
    return notes, skipped


def _read(path: Path, rel: str) -> tuple[Note | None, str]:
    try:
        size = path.stat().st_size
        if size > MAX_NOTE_BYTES:
            return None, f"too large ({size // (1024 * 1024)} MiB > {MAX_NOTE_BYTES // 2**20} MiB)"
        raw = path.read_bytes()
    except OSError as e:
        return None, f"cannot read: {e.strerror or e}"
    if not raw.strip():
        return None, "empty file"
    if b"\x00" in raw:
        return None, "binary file (contains NUL bytes)"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return None, f"not UTF-8 text (bad byte at offset {e.start})"
    return Note(rel, text, hashlib.sha256(raw).hexdigest()), ""
