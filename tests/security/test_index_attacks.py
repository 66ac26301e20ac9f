"""Attacks on the notes folder and the index (security review rows #6-#21, #33, #40-#50):
each is what the review did, and each assertion failed on the code it reviewed.

Real parts: the packaged model, real FAISS, real files; the one fake is a write that fails
the way a full disk makes faiss fail (a tmpfs cannot be mounted on CI).
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from rag.answer.pipeline import ask
from rag.cli import main
from rag.errors import IndexUnwritable
from rag.index.build import index_lock, update_index
from rag.index.cutting import MAX_UNITS_PER_CHUNK, SHOWN_LINE_CHARS, chunk_note
from rag.index.dense import DenseIndex
from rag.index.store import current_generation, load_index, read_manifest
from rag.notes import MAX_NOTE_LINES, Note, load_notes
from rag.search.engine import Engine

NOTE = "# Queues\n\n## Limits\n\n- Messages up to 256KiB\n- Retention up to 14 days\n"


@pytest.fixture
def small(tmp_path, embedder):
    """A one-note folder and its built index."""
    notes, index = tmp_path / "notes", tmp_path / "index"
    notes.mkdir()
    (notes / "q.md").write_text(NOTE, encoding="utf-8")
    update_index(notes, index, embedder, 200)
    return notes, index


def at(notes: Path, index: Path) -> list[str]:
    return ["--notes", str(notes), "--index", str(index)]


def engine(index: Path, embedder) -> Engine:
    return Engine(load_index(index, embedder.name, embedder.dim, 200), embedder)


# --- #33: garbage in CURRENT ----------------------------------------------------------------


def test_garbage_in_current_is_named_and_a_plain_index_run_heals_it(small, embedder, capsys):
    notes, index = small
    (index / "CURRENT").write_bytes(b"\x8b\x1f\xff garbage")
    assert main(["search", "queues", *at(notes, index)]) == 2
    err = capsys.readouterr().err
    assert "CURRENT" in err and "rag index" in err and "codec" not in err.split("(")[0]
    assert main(["index", *at(notes, index)]) == 0  # no --full needed
    assert "Full rebuild" in capsys.readouterr().out
    assert main(["search", "message size", *at(notes, index)]) == 0
    assert "256KiB" in capsys.readouterr().out


# --- #50: a note saved while `rag index` waits for the lock -------------------------------


def test_a_note_saved_while_waiting_for_the_lock_is_indexed_as_saved(small, embedder):
    notes, index = small
    note = notes / "q.md"
    note.write_text(NOTE + "- VERSIONONE\n", encoding="utf-8")
    reports = []
    with index_lock(index, wait=1):
        waiting = threading.Thread(
            target=lambda: reports.append(update_index(notes, index, embedder, 200, lock_wait=60))
        )
        waiting.start()
        time.sleep(1.0)  # the indexer is waiting for the lock now
        note.write_text(NOTE + "- VERSIONTWO\n", encoding="utf-8")
    waiting.join(timeout=120)
    assert reports and reports[0].written
    text = "\n".join(c.text for c in engine(index, embedder).chunks)
    assert "VERSIONTWO" in text and "VERSIONONE" not in text
    again = update_index(notes, index, embedder, 200, dry_run=True)
    assert again.changed_files == []


# --- #41, #40, #19: a write that fails, a folder that cannot be written -------------------


def test_a_full_disk_leaves_the_live_index_and_nothing_else(small, embedder, monkeypatch):
    notes, index = small
    live = current_generation(index)
    before = sorted(p.name for p in index.iterdir())
    (notes / "q.md").write_text(NOTE + "- One more line to index\n", encoding="utf-8")
    calls = []

    def full_disk(self, path):
        calls.append(path)
        raise RuntimeError(
            "Error in faiss::FileIOWriter::operator() at faiss/impl/io.cpp:124: "
            "write error: No space left on device"
        )

    monkeypatch.setattr(DenseIndex, "save", full_disk)
    with pytest.raises(IndexUnwritable, match=r"No space left on device.*live index is unchanged"):
        update_index(notes, index, embedder, 200)
    assert calls and sorted(p.name for p in index.iterdir()) == before  # no gen-*.tmp left
    assert current_generation(index) == live
    assert "Retention" in "\n".join(c.text for c in engine(index, embedder).chunks)


def test_an_index_folder_that_cannot_be_written_gives_a_message(small, embedder, monkeypatch):
    notes, index = small

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(index / ".lock"))

    monkeypatch.setattr("filelock.FileLock.acquire", denied)
    with pytest.raises(IndexUnwritable, match=r"Permission denied.*searching an existing index"):
        update_index(notes, index, embedder, 200)


def test_an_index_that_is_a_file_gives_a_message(small, capsys):
    notes, _ = small
    a_file = notes.parent / "not-a-folder"
    a_file.write_text("x")
    for command in (["index"], ["search", "queues"]):
        assert main([*command, *at(notes, a_file)]) == 2
        err = capsys.readouterr().err
        assert "is a file" in err and "Traceback" not in err


# --- leftovers of a crash: cleanup keeps the live and the previous generation -------------


def test_leftovers_of_a_crash_go_and_the_previous_generation_stays(small, embedder):
    notes, index = small
    first = current_generation(index)
    (notes / "q.md").write_text(NOTE + "- Second version\n", encoding="utf-8")
    update_index(notes, index, embedder, 200)
    second = current_generation(index)
    # What kill -9 can leave: a half-written generation, and a whole one never switched to
    # whose name sorts after the real ones.
    (index / "gen-99990101T000000-1-000001.tmp").mkdir()
    shutil.copytree(first, index / "gen-99990101T000000-1-000002")
    (notes / "q.md").write_text(NOTE + "- Third version\n", encoding="utf-8")
    update_index(notes, index, embedder, 200)
    third = current_generation(index)
    assert read_manifest(third).previous == second.name
    assert sorted(p.name for p in index.glob("gen-*")) == sorted([second.name, third.name])


def test_a_failed_run_is_cleaned_up_by_the_next_even_with_nothing_to_do(small, embedder):
    notes, index = small
    (index / "gen-20260101T000000-1-000001.tmp").mkdir()
    report = update_index(notes, index, embedder, 200)
    assert not report.written and not list(index.glob("gen-*.tmp"))


# --- #6, #7: a pasted log; one enormous line ----------------------------------------------


def test_a_pasted_log_is_skipped_with_a_reason_in_bounded_time(tmp_path):
    (tmp_path / "log.md").write_text("".join(f"line {i} ok\n" for i in range(200_000)))
    (tmp_path / "a.md").write_text(NOTE)
    started = time.monotonic()
    notes, skipped = load_notes(tmp_path)
    assert time.monotonic() - started < 30  # seconds: was hours (no timing target, a hang guard)
    assert [n.path for n in notes] == ["a.md"]
    assert skipped[0].path == "log.md"
    assert f"{MAX_NOTE_LINES:,}" in skipped[0].reason and "split it" in skipped[0].reason


def test_a_long_block_without_cut_points_gets_a_bounded_number_of_units():
    paragraph = "# Log\n\n" + "".join(f"event {i} happened\n" for i in range(MAX_NOTE_LINES - 10))
    chunks = chunk_note(Note("log.md", paragraph, "x"), lambda ts: [len(t) for t in ts], 200)
    assert len(chunks) == 1
    units = chunks[0].units
    assert len(units) == MAX_UNITS_PER_CHUNK
    assert units[0].start_line == 3 and units[-1].end_line == chunks[0].end_line  # all covered
    assert all(a.end_line < b.start_line for a, b in zip(units, units[1:], strict=False))


def test_an_enormous_line_is_cut_in_the_answer(tmp_path, embedder):
    notes, index = tmp_path / "notes", tmp_path / "index"
    notes.mkdir()
    line = "The flamingo longline fact: " + "pink " * 200_000  # 1 MB on one line
    (notes / "big.md").write_text(f"# Birds\n\n{line}\n\n## Other\n\n- Swans are white\n")
    update_index(notes, index, embedder, 200)
    answer = ask(engine(index, embedder), "flamingo longline fact")
    assert answer.citations and answer.citations[0].start_line == 3
    assert len(answer.text) < 2 * SHOWN_LINE_CHARS and "line cut: 1,000,0" in answer.text
    shown = [c.text for c in answer.citations] + [c.excerpt for c in answer.citations]
    assert max(map(len, shown)) < 2 * SHOWN_LINE_CHARS


# --- #9, #14: files that give nothing are reported ----------------------------------------


def test_heading_only_files_and_symlink_loops_are_reported(tmp_path, embedder):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text(NOTE)
    (notes / "headings.md").write_text("# One\n\n## Two\n\n### Three\n")
    (notes / "loop1.md").symlink_to(notes / "loop2.md")
    (notes / "loop2.md").symlink_to(notes / "loop1.md")
    report = update_index(notes, tmp_path / "index", embedder, 200)
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons["headings.md"] == "headings only: no text to index"
    assert "loop" in reasons["loop1.md"] and "loop" in reasons["loop2.md"]
