"""An edit to a large index is written as a delta over its base, and read back as one index
that answers exactly as a rewrite would (rag/index/join.py).

The default notes, cut into one note per `## ` section (each keeps the `# AWS Notes` title, so
every chunk's text and vector are the ones the shared index holds), stand in for a large index:
DELTA_MIN_CHUNKS is lowered so that 451 chunks count as large.
"""

from __future__ import annotations

import errno
import re
import shutil

import numpy as np
import pytest

from rag.errors import IndexUnwritable
from rag.index import build, chunkfile, store
from rag.index.build import update_index
from rag.index.join import JoinedChunks, join_postings
from rag.index.lexical import LexicalIndex, Postings
from rag.index.store import FILES, current_generation, load_index, verify_generation
from rag.search.engine import Engine
from rag.search.live import LiveIndex

QUESTIONS = [
    "What is the maximum message size in SQS?",
    "How long can a Lambda function run?",
    "What does a NAT gateway do?",
    "dynamodb partition key",
    "S3 storage classes",
    "How do I encrypt with KMS?",
    "cloudfront origin access",
    "Step Functions express workflow",  # the edited notes: their old chunks must not come up
    "Route 53 weighted routing records",
    "AWS Amplify hosting",
]
EDIT = ("## AWS Step Functions", "- Express workflows last at most five minutes, and cost per run")


def test_joined_postings_score_as_postings_of_the_live_documents_would():
    """Pure logic: documents of two parts, some dropped, renumbered, a term left in none."""
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)] + ["only-in-dropped"]
    base = [list(rng.choice(words[:40], size=rng.integers(1, 12))) for _ in range(30)]
    base[4] = ["only-in-dropped", "w1"]
    delta = [list(rng.choice(words[:40], size=rng.integers(1, 12))) for _ in range(6)]
    order = [("b", i) for i in range(30) if i not in (4, 7, 8)] + [("d", i) for i in range(6)]
    order = [order[i] for i in rng.permutation(len(order))]
    joined = [np.full(30, -1), np.full(6, -1)]
    for row, (part, i) in enumerate(order):
        joined[part == "d"][i] = row
    parts = [Postings.from_docs(base), Postings.from_docs(delta)]
    merged = join_postings(parts, joined, len(order))
    live = Postings.from_docs([(delta if p == "d" else base)[i] for p, i in order])
    assert set(merged.vocab) == set(live.vocab) and "only-in-dropped" not in merged.vocab
    a, b = LexicalIndex(merged), LexicalIndex(live)
    for query in (["w1", "w2"], ["w3"], ["w39", "w0", "w0"], ["only-in-dropped"]):
        np.testing.assert_allclose(a.scores(query), b.scores(query), rtol=1e-12)
        assert a.search(query, 5)[0].tolist() == b.search(query, 5)[0].tolist()


@pytest.fixture
def split(aws_settings, embedder, tmp_path, monkeypatch):
    """The default notes as one note per section, indexed whole (every vector re-used from
    the shared index), with deltas allowed from 0 chunks on."""
    text = (aws_settings.notes_dir / "aws-notes.md").read_text(encoding="utf-8")
    title, *sections = re.split(r"(?m)^(?=## )", text)
    notes = tmp_path / "notes"
    notes.mkdir()
    for i, section in enumerate(sections):
        (notes / f"{i:02d}.md").write_text(title + section, encoding="utf-8")
    shutil.copytree(aws_settings.index_dir, tmp_path / "index")
    report = update_index(notes, tmp_path / "index", embedder, 200)
    assert report.written and report.embedded == 0
    shutil.copytree(tmp_path / "index", tmp_path / "before-edits")
    monkeypatch.setattr(build, "DELTA_MIN_CHUNKS", 0)
    return notes, tmp_path / "index"


def note_of(notes, heading: str):
    return next(p for p in sorted(notes.iterdir()) if heading in p.read_text(encoding="utf-8"))


def add_line(notes, heading: str, line: str):
    note = note_of(notes, heading)
    text = note.read_text(encoding="utf-8")
    note.write_text(text.replace(heading + "\n", f"{heading}\n\n{line}\n", 1), encoding="utf-8")
    return note


def engine(index, embedder) -> Engine:
    return Engine(load_index(index, embedder.name, embedder.dim, 200), embedder)


def rewritten(notes, embedder, tmp_path, monkeypatch) -> Engine:
    """The index before the edits, brought up to date by a rewrite (no delta)."""
    whole = tmp_path / "whole"
    shutil.copytree(tmp_path / "before-edits", whole)
    with monkeypatch.context() as m:
        m.setattr(build, "DELTA_MIN_CHUNKS", 10**9)
        report = update_index(notes, whole, embedder, 200)
    assert report.written and not list(current_generation(whole).glob("delta-*"))
    return engine(whole, embedder)


def same_answers(a: Engine, b: Engine) -> None:
    assert [c.id for c in a.chunks] == [c.id for c in b.chunks]
    assert np.array_equal(a.index.unit_counts, b.index.unit_counts)
    np.testing.assert_allclose(a.index.dense.vectors(), b.index.dense.vectors(), atol=1e-6)
    np.testing.assert_allclose(a.index.units.vectors(), b.index.units.vectors(), atol=1e-6)
    for question in QUESTIONS:
        rows, _ = a.dense.search(a.embedder.embed([question])[0], 50)
        assert len(set(rows.tolist())) == len(rows) == 50 and rows.min() >= 0
        for mode in ("hybrid", "bm25", "dense"):
            x, y = a.search(question, k=8, mode=mode), b.search(question, k=8, mode=mode)
            assert [h.chunk.id for h in x] == [h.chunk.id for h in y], (question, mode)
            np.testing.assert_allclose([h.score for h in x], [h.score for h in y], atol=1e-6)


def test_an_edit_writes_a_delta_that_answers_as_a_rewrite_would(
    split, embedder, tmp_path, monkeypatch
):
    notes, index = split
    before = current_generation(index)
    add_line(notes, *EDIT)
    report = update_index(notes, index, embedder, 200)
    assert (
        report.written
        and report.embedded == 1
        and report.changed_files == [note_of(notes, EDIT[0]).name]
    )
    gen = current_generation(index)
    assert (gen / "delta-1" / "chunks.jsonl").is_file() and verify_generation(gen) == []
    for name in FILES:  # the base is linked, not copied
        assert (gen / name).stat().st_ino == (before / name).stat().st_ino
    delta = load_index(index, embedder.name, embedder.dim, 200)
    assert [d["files"] for d in delta.manifest.deltas] == [[note_of(notes, EDIT[0]).name]]
    hit = Engine(delta, embedder).search("how long does an express workflow last", k=1)[0]
    assert "five minutes" in hit.chunk.text and hit.chunk.path == note_of(notes, EDIT[0]).name
    same_answers(Engine(delta, embedder), rewritten(notes, embedder, tmp_path, monkeypatch))


def test_chunks_read_as_asked_answer_as_chunks_read_whole(split, embedder, monkeypatch):
    """A large index's chunks are not parsed at load (rag.index.chunkfile): its base's and
    its deltas' rows, read as asked, give the same answers."""
    notes, index = split
    add_line(notes, *EDIT)
    update_index(notes, index, embedder, 200)
    whole = engine(index, embedder)
    monkeypatch.setattr(chunkfile, "LAZY_BYTES", 0)
    lazy = engine(index, embedder)
    assert isinstance(lazy.index.base.chunks, chunkfile.ChunkFile)
    assert isinstance(lazy.chunks, JoinedChunks) and len(lazy.chunks) == len(whole.chunks)
    assert list(lazy.chunks) == list(whole.chunks) and lazy.chunks[-1] == whole.chunks[-1]
    assert chunkfile.chunk_paths(lazy.chunks) == [c.path for c in whole.chunks]
    same_answers(lazy, whole)


def test_deltas_stack_removed_and_new_notes_included(split, embedder, tmp_path, monkeypatch):
    notes, index = split
    add_line(notes, *EDIT)
    update_index(notes, index, embedder, 200)
    gone = note_of(notes, "## AWS Amplify")
    gone.unlink()
    (notes / "zz-new.md").write_text("# Pager\n\n- The on-call rota swaps every Tuesday\n")
    add_line(notes, "## Route 53 (DNS)", "- A weighted record splits traffic by the weights")
    report = update_index(notes, index, embedder, 200)
    assert report.written and report.removed_files == [gone.name]
    live = engine(index, embedder)
    route = note_of(notes, "## Route 53 (DNS)").name
    deltas = live.index.manifest.deltas
    assert [d["files"] for d in deltas] == [
        [note_of(notes, EDIT[0]).name],
        sorted([gone.name, "zz-new.md", route]),
    ]
    assert [p.name for p in live.index.parts] == ["", "delta-1", "delta-2"]
    assert not any(c.path == gone.name for c in live.chunks)
    assert live.search("on-call rota", k=1)[0].chunk.path == "zz-new.md"
    assert not [h for h in live.search("Amplify hosting", k=20) if h.chunk.path == gone.name]
    same_answers(live, rewritten(notes, embedder, tmp_path, monkeypatch))
    assert update_index(notes, index, embedder, 200).written is False  # nothing changed


def test_a_large_rewrite_gathers_its_vectors_in_files_into_the_same_index(
    split, embedder, tmp_path, monkeypatch
):
    """A rewrite of STREAM_ROWS vectors or more writes them a block at a time to files that
    the new generation links: the generation is the one a rewrite in memory writes."""
    notes, index = split
    add_line(notes, *EDIT)
    monkeypatch.setattr(build, "DELTA_MIN_CHUNKS", 10**9)
    in_memory = tmp_path / "in-memory"
    shutil.copytree(index, in_memory)
    assert update_index(notes, in_memory, embedder, 200).embedded == 1
    monkeypatch.setattr(build, "STREAM_ROWS", 0)
    monkeypatch.setattr(build, "ROW_BLOCK", 100)  # the default notes' 2,973 units: 30 blocks
    assert update_index(notes, index, embedder, 200).embedded == 1
    a, b = current_generation(in_memory), current_generation(index)
    for name in FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert [p.name for p in index.iterdir() if p.name.startswith("gen-vectors-")] == []


def test_a_disk_error_while_vectors_stream_leaves_the_live_index(split, embedder, monkeypatch):
    """A full disk while a large rewrite writes its vector files: the message says so, the
    live index answers as before, and no scratch folder is left."""
    notes, index = split
    live = current_generation(index)
    add_line(notes, *EDIT)
    monkeypatch.setattr(build, "DELTA_MIN_CHUNKS", 10**9)
    monkeypatch.setattr(build, "STREAM_ROWS", 0)

    def full_disk(self, block):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(build.RowWriter, "write", full_disk)
    with pytest.raises(IndexUnwritable, match=r"vectors were read or written \(No space left"):
        update_index(notes, index, embedder, 200)
    assert current_generation(index) == live
    assert [p.name for p in index.iterdir() if p.name.startswith("gen-vectors-")] == []


def test_a_delta_that_would_outgrow_its_base_is_a_rewrite(split, embedder, monkeypatch):
    notes, index = split
    monkeypatch.setattr(build, "DELTA_SHARE", 1000)  # any delta is too big
    add_line(notes, *EDIT)
    assert update_index(notes, index, embedder, 200).written
    gen = current_generation(index)
    assert not list(gen.glob("delta-*"))
    assert load_index(index, embedder.name, embedder.dim, 200).manifest.deltas == []


def test_the_last_delta_allowed_takes_in_the_others(split, embedder, tmp_path, monkeypatch):
    notes, index = split
    monkeypatch.setattr(build, "MAX_DELTAS", 2)
    edits = [EDIT, ("## KMS", "- Key rotation happens once a year"), ("## Misc", "- Misc line")]
    for heading, line in edits:
        add_line(notes, heading, line)
        assert update_index(notes, index, embedder, 200).written
    live = engine(index, embedder)
    names = sorted(note_of(notes, h).name for h, _ in edits)
    assert [(d["name"], d["files"]) for d in live.index.manifest.deltas] == [("delta-3", names)]
    assert sorted(p.name for p in current_generation(index).iterdir()) == sorted(
        [*FILES, "manifest.json", "delta-3"]
    )
    same_answers(live, rewritten(notes, embedder, tmp_path, monkeypatch))


def test_a_server_reads_only_the_delta_after_an_edit(split, embedder, aws_settings):
    notes, index = split
    settings = aws_settings.__class__.from_env(env={}, notes_dir=notes, index_dir=index)
    live = LiveIndex(settings, engine(index, embedder))
    old = live.engine.index
    add_line(notes, *EDIT)
    assert live.reindex().report.written
    new = live.engine.index
    assert new.base is old.base and len(new.parts) == 2  # the base as it was read
    assert "five minutes" in live.engine.search("express workflow duration", k=1)[0].chunk.text
    add_line(notes, "## KMS", "- Key rotation happens once a year")
    assert live.reindex().report.written
    assert live.engine.index.parts[:2] == new.parts  # only delta-2 was read


@pytest.mark.parametrize("at_load", [True, False], ids=["small", "large"])
def test_damage_in_a_delta_is_found_and_rebuilt_past(split, embedder, monkeypatch, at_load):
    """A small index is read against its checksums at every load; a large one only where an
    update copies vectors from: here the damaged delta holds the note edited again."""
    notes, index = split
    if not at_load:
        monkeypatch.setattr(store, "VERIFY_AT_LOAD", 0)
    add_line(notes, *EDIT)
    update_index(notes, index, embedder, 200)
    gen = current_generation(index)
    damaged = gen / "delta-1" / "units.faiss"
    with open(damaged, "r+b") as f:
        f.seek(-9, 2)
        f.write(b"\xff")
    assert verify_generation(gen) == [f"{damaged} is damaged (checksum mismatch)"]
    add_line(notes, EDIT[0], "- Standard workflows last up to a year")
    report = update_index(notes, index, embedder, 200)
    assert report.written and "damaged" in report.rebuild_reason
    assert verify_generation(current_generation(index)) == []
    assert not list(current_generation(index).glob("delta-*"))
