"""The app's live index: background re-index, answers during it, status, and the notes watch."""

from __future__ import annotations

import calendar
import re
import shutil
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from rag.answer.pipeline import ask
from rag.errors import IndexProblem
from rag.index.build import update_index
from rag.index.store import current_generation, load_index
from rag.search.engine import Engine
from rag.search.live import LiveIndex, serving
from rag.settings import Settings


@pytest.fixture
def live(tmp_path, embedder):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "queues.md").write_text("# Queues\n\n- SQS messages are at most 256KB\n")
    (notes / "compute.md").write_text("# Compute\n\n- Lambda runs for at most 900 seconds\n")
    settings = Settings.from_env(env={}, notes_dir=notes, index_dir=tmp_path / "index")
    update_index(notes, settings.index_dir, embedder, settings.max_chunk_tokens)
    index = load_index(settings.index_dir, embedder.name, embedder.dim, settings.max_chunk_tokens)
    return LiveIndex(settings, Engine(index, embedder))


def test_status_says_what_is_indexed_and_whether_it_is_stale(live):
    status = live.status()
    assert (status.files, status.chunks, status.indexing, status.stale) == (2, 2, False, False)
    assert status.indexed_at.endswith("Z")
    (live.settings.notes_dir / "queues.md").write_text("# Queues\n\n- changed\n")
    assert live.status().stale


def test_questions_are_answered_from_the_old_generation_during_a_reindex(live, monkeypatch):
    import rag.search.live

    started, release = threading.Event(), threading.Event()
    real_update = rag.search.live.update_index

    def slow_update(*args, **kwargs):
        started.set()
        release.wait(30)  # hold the re-index open while questions come in
        return real_update(*args, **kwargs)

    monkeypatch.setattr(rag.search.live, "update_index", slow_update)
    (live.settings.notes_dir / "queues.md").write_text("# Queues\n\n- SQS retention is 4 days\n")
    thread = live.reindex_in_background()
    assert started.wait(10) and live.indexing
    answer = ask(live.engine, "max sqs message size")
    assert answer.answered and "256KB" in answer.text  # the old generation, still whole
    assert live.reindex().state == "busy"  # one re-index at a time
    release.set()
    thread.join(60)
    assert not live.indexing and live.status().last_report.embedded == 1
    assert "4 days" in ask(live.engine, "sqs retention").text


def test_the_watch_reindexes_after_an_edit(live):
    stop = live.watch(debounce_ms=200)
    try:
        time.sleep(0.5)  # let the watcher start
        (live.settings.notes_dir / "compute.md").write_text(
            "# Compute\n\n- Fargate tasks get up to 16 vCPU\n"
        )
        deadline = time.monotonic() + 60
        while "Fargate" not in "".join(c.text for c in live.engine.chunks):
            assert time.monotonic() < deadline, "the watch never re-indexed"
            time.sleep(0.2)
    finally:
        stop.set()
    assert not live.status().stale


def _live(notes: Path, index: Path, embedder) -> LiveIndex:
    settings = Settings.from_env(env={}, notes_dir=notes, index_dir=index)
    update_index(notes, index, embedder, settings.max_chunk_tokens)
    stored = load_index(index, embedder.name, embedder.dim, settings.max_chunk_tokens)
    return LiveIndex(settings, Engine(stored, embedder))


def _wait_until(condition, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_failing_reindex_backs_off_and_says_why(tmp_path, embedder, monkeypatch, caplog):
    import rag.search.live

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\n- one fact\n")
    live = _live(notes, tmp_path / "index", embedder)
    calls = []
    real_update = rag.search.live.update_index

    def counted(*args, **kwargs):
        calls.append(time.monotonic())
        return real_update(*args, **kwargs)

    monkeypatch.setattr(rag.search.live, "update_index", counted)
    stop = live.watch(debounce_ms=100)
    try:
        time.sleep(0.5)  # let the watcher start
        (notes / "a.md").write_text("")  # the only note is empty: every re-index fails
        _wait_until(lambda: calls)
        time.sleep(4)
        # Tried at once, then after 1 s and 2 s more (3 s in all): not every 0.2 s.
        assert 2 <= len(calls) <= 4, [round(t - calls[0], 1) for t in calls]
        assert "no usable markdown notes" in live.status().error
        assert "re-indexing" in caplog.text and "no usable markdown notes" in caplog.text
        (notes / "a.md").write_text("# A\n\n- the fixed fact\n")  # a save: tried again at once
        _wait_until(lambda: "fixed" in live.engine.chunks[0].text, seconds=30)
        assert live.status().error == ""
    finally:
        stop.set()


def test_notes_below_a_hidden_folder_are_watched(tmp_path, embedder):
    notes = tmp_path / ".hidden" / "notes"  # ~/.notes: the loader takes it, so must the watcher
    notes.mkdir(parents=True)
    (notes / "a.md").write_text("# A\n\n- one fact\n")
    (notes / ".obsidian").mkdir()
    live = _live(notes, tmp_path / "index", embedder)
    stop = live.watch(debounce_ms=100)
    try:
        time.sleep(0.5)  # let the watcher start
        (notes / ".obsidian" / "state.md").write_text("# app state, not a note\n")
        (notes / "a.md").write_text("# A\n\n- zebra fact\n")
        _wait_until(lambda: "zebra" in live.engine.chunks[0].text, seconds=30)
    finally:
        stop.set()
    assert not live.status().stale
    assert [c.path for c in live.engine.chunks] == ["a.md"]


def test_time_ago_reads_like_a_person_says_it():
    from rag.search.live import time_ago

    now = calendar.timegm((2026, 12, 1, 12, 0, 0, 0, 0, 0))
    said = [time_ago(stamp, now) for stamp in ("2026-12-01T11:59:30Z", "2026-12-01T11:57:00Z")]
    said += [time_ago(s, now) for s in ("2026-12-01T09:00:00Z", "2026-11-30T12:00:00Z")]
    said += [time_ago(s, now) for s in ("2026-11-28T11:00:00Z", "not a time")]
    assert said == ["just now", "3 min ago", "3 h ago", "1 day ago", "3 days ago", "not a time"]


def test_a_server_on_a_first_pass_embeds_the_lines_in_the_background(tmp_path, embedder):
    notes = tmp_path / "notes"
    notes.mkdir()
    lines = "\n".join(f"- Queue setting {i}: value {i * 7}" for i in range(40))
    (notes / "queues.md").write_text(f"# Queues\n\n## Settings\n\n{lines}\n")
    settings = Settings.from_env(env={}, notes_dir=notes, index_dir=tmp_path / "index")
    update_index(notes, settings.index_dir, embedder, settings.max_chunk_tokens, lines=False)
    index = load_index(settings.index_dir, embedder.name, embedder.dim, settings.max_chunk_tokens)
    live = LiveIndex(settings, Engine(index, embedder))
    assert live.status().lines_pending >= 40
    assert "answers improve once every line is embedded" in live.describe()
    seen: list[str] = []
    real_step = live._step

    def step(done: int, total: int) -> None:  # what the page's status line shows meanwhile
        real_step(done, total)
        seen.append(live.describe())

    live._step = step
    stop = live.keep_fresh()
    try:
        deadline = time.monotonic() + 60
        while live.status().lines_pending and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
    assert live.status().lines_pending == 0 and live.engine.index.units.size >= 40
    assert any(re.search(r"indexing: [\d,]+/[\d,]+ texts embedded", s) for s in seen), seen
    assert "answers improve" not in live.describe()


def test_a_server_without_an_index_starts_at_once_and_builds_it_in_the_background(
    tmp_path, embedder
):
    notes = tmp_path / "notes"
    notes.mkdir()
    lines = "\n".join(f"- Queue setting {i}: value {i * 7}" for i in range(40))
    (notes / "queues.md").write_text(f"# Queues\n\n## Settings\n\n{lines}\n")
    settings = Settings.from_env(env={}, notes_dir=notes, index_dir=tmp_path / "index")
    live = serving(settings)  # returns before the model is even loaded
    assert live.current is None and live.status().indexing and live.version == 0
    assert live.describe().startswith("Index: building the first index of your notes (")
    engine = live.engine  # waits for the first pass
    assert live.ready and live.version >= 1 and len(engine.chunks) >= 1
    answer = ask(engine, "what is the value of queue setting 3")
    assert answer.status == "answered"
    deadline = time.monotonic() + 60  # then the line vectors, by keep_fresh
    while live.status().lines_pending or live.indexing:
        assert time.monotonic() < deadline, live.describe()
        time.sleep(0.1)
    assert live.engine.index.units.size >= 40 and live.version >= 2
    again = serving(settings)  # a restart: the index is there, opened at once
    assert again.ready and again.current is not None and not again.status().indexing


def test_a_first_build_for_a_page_waits_until_the_page_serves(tmp_path):
    """The page's start and the build share one interpreter: the build begins once the page
    says it serves (`page_up`), or when the server stops (then it builds nothing)."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# Queues\n\n- The default visibility timeout is 30 seconds.\n")
    settings = Settings.from_env(env={}, notes_dir=notes, index_dir=tmp_path / "index")
    live = serving(settings, page=True)
    assert not live.wait_ready(3) and live.indexing and live.status().progress is None
    assert current_generation(settings.index_dir) is None  # nothing read or written yet
    live.page_up()
    assert live.wait_ready(120) and live.engine.chunks[0].path == "a.md"
    assert current_generation(settings.index_dir) is not None
    live.stop()

    stopped = LiveIndex.first_build(replace(settings, index_dir=tmp_path / "other"), None, True)
    assert stopped.stop(timeout=10) and stopped.wait_ready(10)
    assert "stopped before" in stopped.status().error
    assert current_generation(tmp_path / "other") is None


def test_a_first_build_stops_at_its_next_step_and_leaves_no_index(tmp_path, aws_settings):
    """What a server does on its way out (`shut_down`): the build ends cleanly, not inside
    torch while the interpreter shuts down."""
    shutil.copytree(aws_settings.notes_dir, tmp_path / "notes")
    settings = Settings.from_env(env={}, notes_dir=tmp_path / "notes", index_dir=tmp_path / "index")
    live = LiveIndex.first_build(settings)
    deadline = time.monotonic() + 120
    while live.status().progress is None:  # the model is loaded, embedding has begun
        assert time.monotonic() < deadline, live.describe()
        time.sleep(0.05)
    assert live.stop(timeout=120)
    assert not live.indexing and live.current is None
    assert "stopped before the first index was built" in live.status().error
    assert current_generation(settings.index_dir) is None  # nothing half-built is live
    assert live.reindex().state == "failed"  # and no other build starts
    with pytest.raises(IndexProblem, match="stopped before"):
        live.engine  # noqa: B018


def test_a_first_index_that_fails_is_said_and_questions_get_the_reason(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\ntext\n")
    (tmp_path / "file").write_text("not a folder")
    index_dir = tmp_path / "file" / "index"  # cannot be made: its parent is a file
    settings = Settings.from_env(env={}, notes_dir=notes, index_dir=index_dir)
    live = LiveIndex.first_build(settings)
    assert live.wait_ready(60)
    with pytest.raises(IndexProblem, match="the first index could not be built"):
        _ = live.engine
    assert live.describe().startswith("Index: none yet; the first index could not be built: ")
