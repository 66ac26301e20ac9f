"""Stage 1: what a note is, and reading the notes.

    notes, skipped = load_notes(Path("notes"))   # every note below the folder, recursively
    is_note("aws/sqs.md")                        # True; "a.txt" too; ".obsidian/x.md": False
    resolve_note(Path("notes"), "aws/sqs.md")    # the file, or NoteRefused

One rule decides what is a note, for the loader, the watcher and the viewer alike: a `*.md`,
`*.markdown` or `*.txt` file (a `.txt` note is plain text, not markdown) inside the notes
folder whose path below that folder has no hidden part (`.obsidian/`, `.git/` and `.trash/`
hold app state) and that no ignore rule names: the folder's `.ragignore` (gitignore syntax)
and Obsidian's "Excluded files" (`.obsidian/app.json`). A hidden folder above the notes
folder (`~/.notes`) is fine. A note over MAX_NOTE_BYTES or MAX_NOTE_LINES, empty, binary or
not UTF-8 is skipped with a reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from rag.errors import NoteRefused, NotesError

MAX_NOTE_BYTES = 20 * 1024 * 1024  # a "note" bigger than this is almost surely not a note
# A pasted log, not a note: each line may become a vector, so this bounds the time one file
# can take to index (the default notes are one file of 3,708 lines).
MAX_NOTE_LINES = 20_000


SUFFIXES = (".md", ".markdown", ".txt")  # markdown, and plain text (`is_plain_text`)
IGNORE_FILE = ".ragignore"  # gitignore syntax, in the notes folder
OBSIDIAN_SETTINGS = ".obsidian/app.json"  # its "userIgnoreFilters": Obsidian's Excluded files
RULE_FILES = (IGNORE_FILE, OBSIDIAN_SETTINGS)  # a change to one of these re-indexes


@dataclass(frozen=True)
class Note:
    path: str  # relative to the notes folder, with forward slashes
    text: str
    sha256: str  # of the raw bytes


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def is_note(rel: str) -> bool:
    """Whether a path relative to the notes folder (forward slashes) names a note."""
    parts = PurePosixPath(rel).parts
    return (
        rel.endswith(SUFFIXES)
        and bool(parts)
        and not rel.startswith("/")
        and "\\" not in rel
        and "\x00" not in rel
        and not any(p in ("", ".", "..") or p.startswith(".") for p in parts)
    )


def is_plain_text(rel: str) -> bool:
    """Whether a note is plain text (`.txt`): no headings, fences or front matter in it."""
    return rel.endswith(".txt")


def note_title(rel: str) -> str:
    """A note's name as a vault shows it: its file name without the suffix ("aws/sqs.md": "sqs")."""
    name = rel.rsplit("/", 1)[-1]
    return next((name.removesuffix(s) for s in SUFFIXES if name.endswith(s)), name)


def ignore_rules(notes_dir: Path) -> pathspec.PathSpec:
    """What the notes folder says to leave out: `.ragignore` (gitignore syntax) and the
    folders and files Obsidian's "Excluded files" setting names (its /regex/ entries are not
    followed). Unreadable rule files count as empty."""
    root = Path(notes_dir)
    lines: list[str] = []
    with contextlib.suppress(OSError, UnicodeDecodeError):
        lines += (root / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
    obsidian: object = {}
    with contextlib.suppress(OSError, UnicodeDecodeError, ValueError):
        obsidian = json.loads((root / OBSIDIAN_SETTINGS).read_text(encoding="utf-8"))
    filters = obsidian.get("userIgnoreFilters") if isinstance(obsidian, dict) else None
    for entry in filters if isinstance(filters, list) else []:
        if isinstance(entry, str) and entry.strip() and not entry.strip().startswith("/"):
            lines.append("/" + entry.strip())  # from the vault's root: a folder or a file
    return pathspec.GitIgnoreSpec.from_lines(lines)


def watched(notes_dir: Path, path: str | Path) -> bool:
    """Whether a change to this file matters to the index: a note, or an ignore rule."""
    return note_name(notes_dir, path) is not None or _relative(notes_dir, path) in RULE_FILES


def note_name(notes_dir: Path, path: str | Path) -> str | None:
    """The note a file path names (as `is_note` takes it, and no ignore rule), or None: for
    the watcher, which sees whole paths, of files that may be gone already."""
    rel = _relative(notes_dir, path)
    return rel if is_note(rel) and not ignore_rules(notes_dir).match_file(rel) else None


def _relative(notes_dir: Path, path: str | Path) -> str:
    """A file's path below the notes folder, with forward slashes (links resolved)."""
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(notes_dir))
    return PurePosixPath(*Path(rel).parts).as_posix()


def resolve_note(notes_dir: Path, rel: str) -> Path:
    """The file a note path names, or NoteRefused if it names no note in `notes_dir`.

    resolve_note(Path("notes"), "aws/sqs.md")         # Path('/abs/notes/aws/sqs.md')
    resolve_note(Path("notes"), "../etc/passwd.md")   # NoteRefused
    """
    if not rel or not is_note(rel):
        raise NoteRefused(f"not a note path: {rel!r}")
    if ignore_rules(notes_dir).match_file(rel):
        raise NoteRefused(f"{rel!r} is left out by the notes folder's ignore rules")
    root = Path(notes_dir).resolve()
    path = (root / rel).resolve()  # follows symlinks: one that leads out is caught below
    if not path.is_relative_to(root) or not path.is_file():
        raise NoteRefused(f"no note {rel!r} in the notes folder")
    return path


def load_notes(notes_dir: Path) -> tuple[list[Note], list[Skipped]]:
    """Read every note below `notes_dir`; unreadable files are skipped with a reason."""
    notes_dir = Path(notes_dir)
    if not notes_dir.exists():
        raise NotesError(f"notes folder {notes_dir} does not exist; create it or pass --notes DIR")
    if not notes_dir.is_dir():
        raise NotesError(f"notes folder {notes_dir} is not a folder")
    notes: list[Note] = []
    skipped: list[Skipped] = []
    ignored = ignore_rules(notes_dir)
    for path in sorted(p for suffix in SUFFIXES for p in notes_dir.rglob(f"*{suffix}")):
        rel = path.relative_to(notes_dir).as_posix()
        if not is_note(rel) or ignored.match_file(rel):
            continue
        if path.is_symlink() and not path.exists():
            skipped.append(Skipped(rel, "a symbolic link to nothing (missing, or a loop)"))
            continue
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
            f"no usable markdown notes (*.md, *.markdown) or text notes (*.txt) in {notes_dir}"
            + (f" ({detail})" if detail else "")
        )
    return notes, skipped


def fingerprints(notes: list[Note]) -> dict[str, str]:
    """Note path -> sha256 of its bytes: what an index records it was built from."""
    return {n.path: n.sha256 for n in notes}


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
    lines = text.count("\n") + 1
    if lines > MAX_NOTE_LINES:
        return None, f"too many lines ({lines:,} > {MAX_NOTE_LINES:,}); split it into smaller notes"
    return Note(rel, text, hashlib.sha256(raw).hexdigest()), ""


def read_note_text(notes_dir: Path, rel: str) -> str:
    """A note's text for showing it (bad bytes replaced), or NoteRefused."""
    path = resolve_note(notes_dir, rel)
    try:
        if path.stat().st_size > MAX_NOTE_BYTES:
            raise NoteRefused(f"{rel!r} is too large to show")
        return path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as e:
        raise NoteRefused(f"cannot read {rel!r}: {e.strerror or e}") from None
