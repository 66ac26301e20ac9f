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

An index may cover several notes folders (`Folders`), each with a name of its own. With one
folder a note is named by its path below it ("aws/sqs.md"); with several, by the folder's name
and that path ("work:aws/sqs.md"), which is what citations show. Every function here that takes
`notes` takes a folder (a Path) or `Folders`.

    folders = Folders.parse(["~/work-notes", "home=~/vault"])   # names "work-notes", "home"
    notes, skipped = load_notes(folders)                         # "work-notes:a.md", "home:b.md"
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pathspec

from rag.errors import BadInput, NoteRefused, NotesError

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


@dataclass(frozen=True)
class Folder:
    name: str  # what citations call it when an index covers several folders
    path: Path


@dataclass(frozen=True)
class Folders:
    """The notes folders one index covers, in the order given, each with a unique name."""

    items: tuple[Folder, ...]

    @classmethod
    def parse(cls, specs: Iterable[str | Path]) -> Folders:
        """Folders from `DIR` or `NAME=DIR` specs. A folder's name defaults to its own name
        (a second one of the same name gets "-2"); BadInput for two folders that hold one
        another, or one name given twice."""
        items: list[Folder] = []
        for spec in specs:
            name, path = _name_and_path(str(spec))
            if not name:
                base = folder_name(path.expanduser().resolve())
                name, n = base, 2
                while any(f.name == name for f in items):
                    name, n = f"{base}-{n}", n + 1
            elif any(f.name == name for f in items):
                raise BadInput(f"two notes folders are named {name!r}; give each its own name")
            for other in items:
                a, b = path.expanduser().resolve(), other.path.expanduser().resolve()
                if a.is_relative_to(b) or b.is_relative_to(a):
                    raise BadInput(
                        f"the notes folders {other.path} and {path} hold one another; "
                        "give only the outer one, or leave the inner one out with a .ragignore"
                    )
            items.append(Folder(name, path))
        if not items:
            raise BadInput("no notes folder given")
        return cls(tuple(items))

    @classmethod
    def of(cls, notes: Folders | Path | str) -> Folders:
        """`notes` as Folders: a single folder (its path taken as given) becomes one."""
        return notes if isinstance(notes, Folders) else cls((Folder("", Path(notes)),))

    @property
    def several(self) -> bool:
        return len(self.items) > 1

    def key(self, folder: Folder, rel: str) -> str:
        """What the index calls note `rel` of `folder`: "rel", or "name:rel" with several."""
        return f"{folder.name}:{rel}" if self.several else rel

    def split(self, key: str) -> tuple[Folder, str]:
        """The folder a note's key names and its path there; NoteRefused for no folder."""
        if not self.several:
            return self.items[0], key
        name, sep, rel = key.partition(":")
        found = next((f for f in self.items if f.name == name), None) if sep else None
        if found is None:
            raise NoteRefused(f"not a note of these notes folders: {key!r}")
        return found, rel

    def mounted(self, key: str) -> str:
        """A note's key as a path with its folder's name as the top folder ("work/a/b.md"),
        for folder globs and link names; the key itself with one folder."""
        return key.replace(":", "/", 1) if self.several else key

    def path(self, key: str) -> Path:
        """Where a note's file is (not checked: see `resolve_note`); NoteRefused for a key
        that names no folder."""
        folder, rel = self.split(key)
        return folder.path / rel

    def find(self, path: str | Path) -> tuple[Folder, str] | None:
        """The folder a file path is in and its path below it (links resolved), or None."""
        real = os.path.realpath(path)
        for folder in self.items:
            root = os.path.realpath(folder.path)
            if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
                return folder, _relative(folder.path, path)
        return None

    def __str__(self) -> str:
        if not self.several:
            return str(self.items[0].path)
        return ", ".join(f"{f.name}={f.path}" for f in self.items)


_NAME = re.compile(r"[\w.-]+")  # a folder's name: it appears in citations and URLs
_NAME_SPOILER = re.compile(r"[^\w.-]+")


def folder_name(path: Path) -> str:
    """A name made from a folder's own: what `_NAME` allows, runs of anything else as "-"."""
    return _NAME_SPOILER.sub("-", path.name).strip("-.") or "notes"


def _name_and_path(spec: str) -> tuple[str, Path]:
    """("name", path) of a `NAME=DIR` spec, ("", path) of a plain `DIR`: also a spec whose
    part before "=" is no name (letters, digits, ".", "-", "_"), or an existing folder."""
    name, sep, rest = spec.partition("=")
    if sep and _NAME.fullmatch(name) and rest and not Path(spec).expanduser().is_dir():
        return name, Path(rest)
    return "", Path(spec)


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
    top, sep, rest = name.partition(":")  # "work:sqs.md", of the notes folder named work
    name = rest if sep and _NAME.fullmatch(top) and rest else name
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


def watched(notes: Folders | Path, path: str | Path) -> bool:
    """Whether a change to this file matters to the index: an ignore rule, or a note (as
    `note_name` takes it; the path is resolved once)."""
    found = Folders.of(notes).find(path)
    if found is None:
        return False
    return found[1] in RULE_FILES or _indexed(*found)


def note_name(notes: Folders | Path, path: str | Path) -> str | None:
    """The note a file path names (as `is_note` takes it, and no ignore rule), or None: for
    the watcher, which sees whole paths, of files that may be gone already."""
    folders = Folders.of(notes)
    found = folders.find(path)
    return folders.key(*found) if found is not None and _indexed(*found) else None


def _indexed(folder: Folder, rel: str) -> bool:
    """Whether a file of a folder is a note the index holds: its kind, and no ignore rule."""
    return is_note(rel) and not ignore_rules(folder.path).match_file(rel)


def _relative(notes_dir: Path, path: str | Path) -> str:
    """A file's path below the notes folder, with forward slashes (links resolved)."""
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(notes_dir))
    return PurePosixPath(*Path(rel).parts).as_posix()


def resolve_note(notes: Folders | Path, key: str) -> Path:
    """The file a note's key names, or NoteRefused if it names no note of `notes`.

    resolve_note(Path("notes"), "aws/sqs.md")         # Path('/abs/notes/aws/sqs.md')
    resolve_note(Path("notes"), "../etc/passwd.md")   # NoteRefused
    """
    folder, rel = Folders.of(notes).split(key)
    notes_dir = folder.path
    if not rel or not is_note(rel):
        raise NoteRefused(f"not a note path: {rel!r}")
    if ignore_rules(notes_dir).match_file(rel):
        raise NoteRefused(f"{rel!r} is left out by the notes folder's ignore rules")
    root = Path(notes_dir).resolve()
    path = (root / rel).resolve()  # follows symlinks: one that leads out is caught below
    if not path.is_relative_to(root) or not path.is_file():
        raise NoteRefused(f"no note {rel!r} in the notes folder")
    return path


def load_notes(notes: Folders | Path) -> tuple[list[Note], list[Skipped]]:
    """Read every note below each notes folder; unreadable files are skipped with a reason.
    A note's path is its key (`Folders.key`)."""
    folders = Folders.of(notes)
    found: list[Note] = []
    skipped: list[Skipped] = []
    for folder in folders.items:
        some, left = _load_folder(folder.path)
        found += [Note(folders.key(folder, n.path), n.text, n.sha256) for n in some]
        skipped += [Skipped(folders.key(folder, s.path), s.reason) for s in left]
    return found, skipped


def _load_folder(notes_dir: Path, read=None) -> tuple[list[Note], list[Skipped]]:
    read = read or _read
    notes_dir = Path(notes_dir)
    if not notes_dir.exists():
        raise NotesError(f"notes folder {notes_dir} does not exist; create it or pass --notes DIR")
    if not notes_dir.is_dir():
        raise NotesError(f"notes folder {notes_dir} is not a folder")
    notes: list[Note] = []
    skipped: list[Skipped] = []
    ignored, root = ignore_rules(notes_dir), notes_dir.resolve()
    for path in sorted(p for suffix in SUFFIXES for p in notes_dir.rglob(f"*{suffix}")):
        rel = path.relative_to(notes_dir).as_posix()
        if not is_note(rel) or ignored.match_file(rel):
            continue
        if path.is_symlink() and not path.exists():
            skipped.append(Skipped(rel, "a symbolic link to nothing (missing, or a loop)"))
            continue
        if not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            skipped.append(Skipped(rel, "links outside the notes folder"))
            continue
        note, reason = read(path, rel)
        if note is None:
            skipped.append(Skipped(rel, reason))
        else:
            notes.append(note)
    return notes, skipped


def require_notes(notes_dir: Folders | Path) -> tuple[list[Note], list[Skipped]]:
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


class Fingerprinter:
    """`fingerprints(load_notes(notes)[0])`, for asking again and again (is the index
    stale?): a file is read and hashed only when its size, modification time or inode
    changed since it last was, so a check costs a listing and a stat per note, not a read.

        stale = Fingerprinter()(folders) != manifest.files

    A file written in the same clock tick as its last hash could keep size and time; one
    modified less than RECENT seconds before it was hashed is read again next time."""

    RECENT = 2.0

    def __init__(self) -> None:
        self._known: dict[Path, tuple[tuple[int, int, int], Note | None, str]] = {}
        self._seen: dict[Path, tuple[tuple[int, int, int], Note | None, str]] = {}
        self._lock = threading.Lock()  # one check at a time: pages ask from many threads

    def __call__(self, notes: Folders | Path) -> dict[str, str]:
        folders = Folders.of(notes)
        found: dict[str, str] = {}
        with self._lock:
            self._seen = {}
            for folder in folders.items:
                read, _ = _load_folder(folder.path, self._read)
                found |= {folders.key(folder, n.path): n.sha256 for n in read}
            self._known = self._seen  # a deleted note is forgotten
        return found

    def _read(self, path: Path, rel: str) -> tuple[Note | None, str]:
        try:
            st = path.stat()
        except OSError:
            return _read(path, rel)
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        known = self._known.get(path)
        if known is not None and known[0] == stamp:
            self._seen[path] = known
            return known[1], known[2]
        note, reason = _read(path, rel)
        if time.time() - st.st_mtime > self.RECENT:  # else the next change may keep the stamp
            self._seen[path] = (stamp, note and Note(rel, "", note.sha256), reason)
        return note, reason


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


def read_note_text(notes: Folders | Path, rel: str) -> str:
    """A note's text for showing it (bad bytes replaced), or NoteRefused."""
    path = resolve_note(notes, rel)
    try:
        if path.stat().st_size > MAX_NOTE_BYTES:
            raise NoteRefused(f"{rel!r} is too large to show")
        return path.read_bytes().decode("utf-8-sig", errors="replace")
    except OSError as e:
        raise NoteRefused(f"cannot read {rel!r}: {e.strerror or e}") from None
