"""The app's live index: background re-index, answers during it, status, and the notes watch."""

from __future__ import annotations

import threading
import time

import pytest

from rag.answer.extractive import ask
from rag.index.build import update_index
from rag.search.live import LiveIndex
from rag.settings import Settings


@pytest.fixture
def live(tmp_path, embedder):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "queues.md").write_text("# Queues\n\n- SQS messages are at most 256KB\n")
    (notes / "compute.md").write_text("# Compute\n\n- Lambda runs for at most 900 seconds\n")
    settings = Settings.from_env(env={}, notes_dir=notes, index_dir=tmp_path / "index")
    update_index(notes, settings.index_dir, embedder, settings.max_chunk_tokens)
    return LiveIndex(settings, embedder)


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
    assert live.reindex() is None  # one re-index at a time
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
