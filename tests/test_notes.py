"""Loading notes: what is read, what is skipped and why, and the errors for unusable folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rag.errors import NotesError
from rag.notes import Note, Skipped, load_notes, require_notes


def write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_loads_every_note_recursively_with_posix_relative_paths(tmp_path):
    write(tmp_path, "b.md", b"# B\n")
    write(tmp_path, "a/deep/er/c.md", b"# C\n")
    write(tmp_path, "a/a.md", b"# A\n")
    write(tmp_path, "a/readme.txt", b"plain text")
    write(tmp_path, "a/long.markdown", b"# Long\n")
    write(tmp_path, "a/notes.md.bak", b"# backup")
    write(tmp_path, "a/data.csv", b"a,b")
    write(tmp_path, "a/md", b"# no suffix")
    notes, skipped = load_notes(tmp_path)
    assert [n.path for n in notes] == [
        "a/a.md",
        "a/deep/er/c.md",
        "a/long.markdown",
        "a/readme.txt",
        "b.md",
    ]
    assert skipped == []
    assert notes[1] == Note("a/deep/er/c.md", "# C\n", hashlib.sha256(b"# C\n").hexdigest())


def test_hidden_folders_and_files_are_ignored(tmp_path):
    write(tmp_path, ".obsidian/workspace.md", b"# app state\n")
    write(tmp_path, "sub/.trash/old.md", b"# deleted\n")
    write(tmp_path, ".draft.md", b"# hidden\n")
    write(tmp_path, "kept.md", b"# kept\n")
    notes, skipped = load_notes(tmp_path)
    assert [n.path for n in notes] == ["kept.md"]
    assert skipped == []


def test_hidden_parent_of_the_notes_folder_is_fine(tmp_path):
    # Only parts below the notes folder count: ~/.notes/ itself is a valid folder.
    write(tmp_path, ".notes/a.md", b"# A\n")
    notes, _ = load_notes(tmp_path / ".notes")
    assert [n.path for n in notes] == ["a.md"]


def test_unusable_files_are_skipped_with_a_reason(tmp_path):
    write(tmp_path, "empty.md", b"")
    write(tmp_path, "blank.md", b" \n\t\n")
    write(tmp_path, "image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    write(tmp_path, "latin1.md", "# Café\n".encode("latin-1"))  # é is the single byte 0xE9
    write(tmp_path, "good.md", "# Café\n".encode())
    notes, skipped = load_notes(tmp_path)
    assert [n.path for n in notes] == ["good.md"]
    assert notes[0].text == "# Café\n"
    assert skipped == [
        Skipped("blank.md", "empty file"),
        Skipped("empty.md", "empty file"),
        Skipped("image.md", "binary file (contains NUL bytes)"),
        Skipped("latin1.md", "not UTF-8 text (bad byte at offset 5)"),
    ]


def test_bom_is_dropped_from_the_text_but_not_the_hash(tmp_path):
    raw = b"\xef\xbb\xbf# Title\r\nbody\r\n"
    write(tmp_path, "bom.md", raw)
    (note,), _ = load_notes(tmp_path)
    assert note.text == "# Title\r\nbody\r\n"
    assert note.sha256 == hashlib.sha256(raw).hexdigest()


def test_a_folder_named_like_a_note_is_not_a_note(tmp_path):
    (tmp_path / "folder.md").mkdir()
    write(tmp_path, "folder.md/inside.md", b"# inside\n")
    notes, skipped = load_notes(tmp_path)
    assert [n.path for n in notes] == ["folder.md/inside.md"]
    assert skipped == []


def test_missing_folder_error_names_it(tmp_path):
    missing = tmp_path / "no-such-notes"
    with pytest.raises(NotesError) as err:
        load_notes(missing)
    assert str(err.value) == (
        f"notes folder {missing} does not exist; create it or pass --notes DIR"
    )
    assert isinstance(err.value, ValueError)


def test_a_file_is_not_a_notes_folder(tmp_path):
    write(tmp_path, "a.md", b"# A\n")
    with pytest.raises(NotesError, match=r"is not a folder"):
        load_notes(tmp_path / "a.md")


def test_require_notes_on_an_empty_folder(tmp_path):
    with pytest.raises(NotesError) as err:
        require_notes(tmp_path)
    assert str(err.value) == (
        f"no usable markdown notes (*.md, *.markdown) or text notes (*.txt) in {tmp_path}"
    )


def test_require_notes_says_what_was_skipped(tmp_path):
    write(tmp_path, "empty.md", b"")
    write(tmp_path, "bin.md", b"\x00")
    with pytest.raises(NotesError) as err:
        require_notes(tmp_path)
    assert str(err.value) == (
        f"no usable markdown notes (*.md, *.markdown) or text notes (*.txt) in {tmp_path} "
        "(bin.md: binary file (contains NUL bytes); empty.md: empty file)"
    )


def test_require_notes_returns_what_load_notes_does(tmp_path):
    write(tmp_path, "a.md", b"# A\n")
    write(tmp_path, "b.md", b"")
    assert require_notes(tmp_path) == load_notes(tmp_path)


def test_a_link_out_of_the_notes_folder_is_skipped(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\ntext\n")
    (tmp_path / "secret.md").write_text("# Secret\n\nTOP SECRET\n")
    (notes / "link.md").symlink_to(tmp_path / "secret.md")
    found, skipped = load_notes(notes)
    assert [n.path for n in found] == ["a.md"]
    assert skipped == [Skipped("link.md", "links outside the notes folder")]


def test_ignore_rules_leave_notes_out_of_the_loader_the_watcher_and_the_viewer(tmp_path):
    from rag.errors import NoteRefused
    from rag.notes import note_name, resolve_note, watched

    write(
        tmp_path,
        ".ragignore",
        b"# drafts and private notes\ndrafts/\n*.private.md\n!keep.private.md\n",
    )
    write(tmp_path, ".obsidian/app.json", b'{"userIgnoreFilters": ["Archive/", "/tmp.*/"]}')
    for rel in (
        "drafts/a.md",
        "x/drafts/b.md",
        "me.private.md",
        "Archive/old.md",
        "x/Archive/c.md",
    ):
        write(tmp_path, rel, b"# left out or not\n")
    write(tmp_path, "keep.private.md", b"# K\n")
    write(tmp_path, "tmp1/d.md", b"# D\n")  # a /regex/ entry of Obsidian's is not followed
    notes, skipped = load_notes(tmp_path)
    assert [n.path for n in notes] == ["keep.private.md", "tmp1/d.md", "x/Archive/c.md"]
    assert skipped == []
    assert note_name(tmp_path, tmp_path / "drafts" / "a.md") is None  # the watcher
    assert note_name(tmp_path, tmp_path / "keep.private.md") == "keep.private.md"
    assert watched(tmp_path, tmp_path / ".ragignore")  # a new rule re-indexes
    assert watched(tmp_path, tmp_path / ".obsidian" / "app.json")
    assert not watched(tmp_path, tmp_path / ".obsidian" / "workspace.json")
    with pytest.raises(NoteRefused, match="ignore rules"):
        resolve_note(tmp_path, "drafts/a.md")  # the viewer


def test_broken_rule_files_count_as_empty(tmp_path):
    write(tmp_path, ".ragignore", b"\xff\xfe not utf-8")
    write(tmp_path, ".obsidian/app.json", b'["not", "an", "object"]')
    write(tmp_path, "a.md", b"# A\n")
    assert [n.path for n in load_notes(tmp_path)[0]] == ["a.md"]


def test_the_fingerprinter_rereads_only_changed_notes_and_agrees_with_the_loader(
    tmp_path, monkeypatch
):
    """`LiveIndex.stale` asks at every status tick: a note unchanged since it was hashed is
    not read again, and the answer is always the loader's."""
    import os

    import rag.notes
    from rag.notes import Fingerprinter, fingerprints, load_notes

    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    for name in ("a.md", "sub/b.md", "c.md"):
        (notes / name).write_text(f"# {name}\n\ntext of {name}\n")
    (notes / "empty.md").write_text("")
    old = 1_000_000_000  # long ago: past Fingerprinter.RECENT
    for path in notes.rglob("*.md"):
        os.utime(path, (old, old))
    reads: list[str] = []
    real_read = rag.notes._read

    def counted(path, rel):
        reads.append(rel)
        return real_read(path, rel)

    stale_check = Fingerprinter()

    def fingerprints_read() -> tuple[dict[str, str], list[str]]:
        """The fingerprinter's answer, and the notes it read for it."""
        reads.clear()
        with monkeypatch.context() as m:
            m.setattr(rag.notes, "_read", counted)
            found = stale_check(notes)
        assert found == fingerprints(load_notes(notes)[0])  # the loader's answer, always
        return found, sorted(reads)

    first, read = fingerprints_read()
    assert set(first) == {"a.md", "c.md", "sub/b.md"}  # not the empty one, as the loader
    assert read == ["a.md", "c.md", "empty.md", "sub/b.md"]
    assert fingerprints_read()[1] == []  # nothing changed: nothing read
    (notes / "a.md").write_text("# a.md\n\nchanged\n")
    (notes / "sub" / "b.md").unlink()
    (notes / "d.md").write_text("# d\n\nnew\n")
    second, read = fingerprints_read()
    assert second["a.md"] != first["a.md"] and "sub/b.md" not in second and "d.md" in second
    assert read == ["a.md", "d.md"]  # the others: a stat each
    assert fingerprints_read()[1] == ["a.md", "d.md"]  # written just now: stamp not trusted yet
