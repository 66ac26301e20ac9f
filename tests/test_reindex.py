"""Re-indexing after edits: incremental, rename-aware, crash-safe and safe to run twice at once."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rag.answer.pipeline import ask
from rag.errors import IndexBusy
from rag.index.build import index_lock, update_index
from rag.index.store import current_generation, load_index
from rag.search.engine import Engine

RAG = str(Path(sys.executable).parent / "rag")
EDITED = "- Latency < 10ms"


@pytest.fixture
def copy(aws_settings, tmp_path):
    """A private copy of the default notes and their built index."""
    shutil.copytree(aws_settings.notes_dir, tmp_path / "notes")
    shutil.copytree(aws_settings.index_dir, tmp_path / "index")
    return tmp_path / "notes", tmp_path / "index"


def update(notes, index, embedder, **kw):
    return update_index(notes, index, embedder, 200, **kw)


def engine(index, embedder) -> Engine:
    return Engine(load_index(index, embedder.name, embedder.dim, 200), embedder)


def line_at(note: Path, location: str) -> str:
    """The first line a `file:start-end` location names."""
    start = int(location.rsplit(":", 1)[1].split("-")[0])
    return note.read_text(encoding="utf-8").splitlines()[start - 1]


def texts(index, embedder) -> str:
    return "\n".join(c.text for c in engine(index, embedder).chunks)


def test_a_one_line_edit_embeds_only_the_touched_chunk(copy, embedder):
    notes, index = copy
    note = notes / "aws-notes.md"
    assert EDITED in note.read_text()
    note.write_text(note.read_text().replace(EDITED, "- Latency under 7 milliseconds typically"))
    report = update(notes, index, embedder)
    assert report.written and report.embedded == 1 and report.removed == 1
    assert report.unchanged == report.chunks - 1 and report.changed_files == ["aws-notes.md"]
    all_text = texts(index, embedder)
    assert "under 7 milliseconds" in all_text and EDITED not in all_text
    hit = engine(index, embedder).search("sqs latency milliseconds", k=1)[0]
    assert "under 7 milliseconds" in hit.chunk.text


def test_nothing_changed_writes_nothing(copy, embedder):
    notes, index = copy
    before = current_generation(index)
    report = update(notes, index, embedder)
    assert not report.written and report.embedded == 0 and current_generation(index) == before


def test_dry_run_reports_and_writes_nothing(copy, embedder):
    notes, index = copy
    (notes / "new.md").write_text("# Glacier\n\n- Deep Archive retrieval takes 12 hours\n")
    before = sorted(p.name for p in index.iterdir())
    report = update(notes, index, embedder, dry_run=True)
    assert report.dry_run and not report.written
    assert report.embedded == 1 and report.changed_files == ["new.md"]
    assert sorted(p.name for p in index.iterdir()) == before


def test_deleting_a_file_removes_its_chunks(copy, embedder):
    notes, index = copy
    (notes / "extra.md").write_text("# Zebra\n\n- the zebra protocol uses port 9999\n")
    assert update(notes, index, embedder).embedded == 1
    assert "zebra protocol" in texts(index, embedder)
    (notes / "extra.md").unlink()
    report = update(notes, index, embedder)
    assert report.removed == 1 and report.removed_files == ["extra.md"] and report.embedded == 0
    assert "zebra" not in texts(index, embedder)
    assert all(c.path == "aws-notes.md" for c in engine(index, embedder).chunks)


def test_a_rename_or_move_embeds_nothing(copy, embedder):
    notes, index = copy
    (notes / "aws").mkdir()
    (notes / "aws-notes.md").rename(notes / "aws" / "certification.md")
    report = update(notes, index, embedder)
    assert report.written and report.embedded == 0
    assert {c.path for c in engine(index, embedder).chunks} == {"aws/certification.md"}


def test_another_model_means_a_full_rebuild_with_a_reason(copy, embedder):
    notes, index = copy
    manifest_path = current_generation(index) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"] = "other-model@000000000000"
    manifest_path.write_text(json.dumps(manifest))
    (notes / "aws-notes.md").write_text("# Tiny\n\n- one line\n")  # keep the rebuild short
    report = update(notes, index, embedder)
    assert "other-model" in report.rebuild_reason and report.embedded == report.chunks == 1


def test_a_second_indexer_waits_then_gives_a_clear_message(copy, embedder):
    notes, index = copy
    with index_lock(index, wait=1), pytest.raises(IndexBusy, match="another `rag index`"):
        update(notes, index, embedder, lock_wait=0.3)


def test_two_index_runs_at_once_both_finish_and_the_index_is_whole(tmp_path, embedder):
    notes = tmp_path / "notes"
    notes.mkdir()
    for i in range(6):
        (notes / f"n{i}.md").write_text(f"# Note {i}\n\n- fact number {i}\n- another {i}\n")
    index = tmp_path / "index"
    runs = [
        subprocess.Popen(
            [RAG, "index", "--full", "--json", "--notes", str(notes), "--index", str(index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all(json.loads(out)["chunks"] == 6 for out, _ in outputs)
    assert len(engine(index, embedder).chunks) == 6
    assert not list(index.glob("*.tmp"))


def test_kill_9_while_embedding_loses_nothing(copy, embedder):
    notes, index = copy
    question = "default visibility timeout"
    before = [(h.chunk.id, h.score) for h in engine(index, embedder).search(question, k=10)]
    live = current_generation(index)
    for attempt in range(3):
        proc = subprocess.Popen(
            [RAG, "index", "--full", "--notes", str(notes), "--index", str(index)],
            stderr=subprocess.PIPE,
            text=True,
        )
        _wait_for(proc, "embedding")
        time.sleep(random.uniform(0.2, 2.0))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL, f"attempt {attempt}: finished before the kill"
        assert current_generation(index) == live
        after = [(h.chunk.id, h.score) for h in engine(index, embedder).search(question, k=10)]
        assert after == before
    report = update(notes, index, embedder)  # the next run completes
    assert report.embedded == 0 and current_generation(index) == live


def _wait_for(proc: subprocess.Popen, marker: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    seen = ""
    while marker not in seen:
        assert time.monotonic() < deadline, f"no {marker!r} in {seen[-500:]!r}"
        chunk = proc.stderr.read(1)
        assert chunk, f"process ended before {marker!r}: {seen[-500:]!r}"
        seen += chunk


def test_a_new_ignore_rule_removes_those_notes_chunks(copy, embedder):
    notes, index = copy
    (notes / "drafts").mkdir()
    (notes / "drafts" / "zebra.md").write_text("# Zebra\n\n- the zebra protocol uses port 9999\n")
    assert update(notes, index, embedder).embedded == 1
    (notes / ".ragignore").write_text("drafts/\n")
    report = update(notes, index, embedder)
    assert report.removed_files == ["drafts/zebra.md"] and report.embedded == 0
    assert "zebra" not in texts(index, embedder)


def test_an_index_from_an_older_tokenizer_is_cut_again_not_embedded_again(copy, embedder):
    """After an upgrade that changes `tokenize`, the update re-cuts and re-tokenizes the
    notes but keeps every vector."""
    import hashlib

    notes, index = copy
    gen = current_generation(index)
    bm25 = json.loads((gen / "bm25.json").read_text(encoding="utf-8"))
    bm25["tokenizer"] = 1  # as the version before CJK bigrams and accent folding wrote it
    (gen / "bm25.json").write_text(json.dumps(bm25, ensure_ascii=False), encoding="utf-8")
    manifest = json.loads((gen / "manifest.json").read_text(encoding="utf-8"))
    del manifest["chunker"]["tokenizer"]
    manifest["checksums"]["bm25.json"] = hashlib.sha256(
        (gen / "bm25.json").read_bytes()
    ).hexdigest()
    manifest["sizes"]["bm25.json"] = (gen / "bm25.json").stat().st_size
    (gen / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    report = update(notes, index, embedder)
    assert "chunker settings changed" in report.rebuild_reason and report.embedded == 0
    assert engine(index, embedder).search("max sqs message size", k=1, mode="bm25")


def test_a_first_pass_embeds_chunks_only_and_the_next_update_adds_the_lines(tmp_path, embedder):
    notes = tmp_path / "notes"
    shutil.copytree(Path(__file__).parent.parent / "notes", notes)
    index = tmp_path / "index"
    first = update(notes, index, embedder, lines=False)
    partial = load_index(index, embedder.name, embedder.dim, 200)
    assert first.written and partial.units.size == 0 and partial.manifest.units == 0
    pending = partial.lines_pending
    assert pending == sum(len(c.vector_units) for c in partial.chunks) > 1000
    assert partial.manifest.lines_pending == pending  # recorded: a large index is not parsed
    # It answers. The search is by section vectors alone; the lines of the sections it finds
    # are embedded then, so an answer picks the lines a whole index would (checked below).
    question = "maximum size of an SQS message"
    first_engine = Engine(partial, embedder)
    hits = first_engine.search(question, k=5)
    assert any("256" in h.chunk.text for h in hits)
    assert all((h.unit_scores is None) == (not h.chunk.vector_units) for h in hits)
    # A first pass again (a server restarted) leaves it; a full update adds only the lines.
    assert not update(notes, index, embedder, lines=False).written
    second = update(notes, index, embedder)
    whole = load_index(index, embedder.name, embedder.dim, 200)
    assert second.written and second.embedded == 0  # every chunk vector was kept
    assert whole.manifest.lines_pending == 0 and whole.units.size == pending
    assert np.array_equal(whole.dense.vectors(), partial.dense.vectors())
    whole_engine = Engine(whole, embedder)
    lines = {h.chunk.id: h.unit_scores for h in whole_engine.search(question, k=20)}
    for hit in hits:
        if hit.unit_scores is not None:
            assert np.allclose(hit.unit_scores, lines[hit.chunk.id], atol=1e-5)
    cited = [ask(e, question).citations[0].location for e in (first_engine, whole_engine)]
    assert cited[0] == cited[1] and "256" in line_at(notes / "aws-notes.md", cited[0])
    # The same as building it whole in one go, row for row.
    update(notes, tmp_path / "one-go", embedder)
    one_go = load_index(tmp_path / "one-go", embedder.name, embedder.dim, 200)
    assert np.allclose(whole.units.vectors(), one_go.units.vectors(), atol=1e-6)
    assert not update(notes, index, embedder).written  # whole and unchanged: nothing to do
