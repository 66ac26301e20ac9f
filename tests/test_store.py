"""The index's files on disk: loads that race a writer, damage found, formats refused.

Vectors here are random and 8-dimensional: what is under test is the files, not the model.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from rag.errors import IndexCorrupt, IndexIncompatible
from rag.index import chunkfile, store
from rag.index.cutting import chunk_note
from rag.index.dense import DenseIndex
from rag.index.store import (
    FILES,
    Manifest,
    chunker_settings,
    current_generation,
    load_index,
    unit_counts,
    verify_generation,
    write_generation,
)
from rag.jsonl import json_line
from rag.notes import Note

DIM = 8


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def write(index_dir, i: int):
    text = f"# A\n\n## S{i}\n\n- line one {i}\n- line two {i}\n\n## T\n\n- other {i}\n"
    chunks = chunk_note(Note("a.md", text, str(i)), words, 200)
    counts = unit_counts(chunks)
    rng = np.random.default_rng(i)
    manifest = Manifest(
        model="m",
        dim=DIM,
        chunker=chunker_settings(200),
        files={"a.md": str(i)},
        chunks=len(chunks),
        units=int(counts.sum()),
        created="now",
    )
    dense = DenseIndex.build(rng.normal(size=(len(chunks), DIM)))
    units = DenseIndex.build(rng.normal(size=(int(counts.sum()), DIM)))
    return write_generation(index_dir, chunks, dense, units, manifest)


def test_loads_while_a_writer_switches_generations_never_fail(tmp_path):
    """Each load reads one whole generation, even as the writer replaces and removes them."""
    write(tmp_path, 0)
    stop = threading.Event()
    written = []

    def writer() -> None:
        i = 1
        while not stop.is_set():
            write(tmp_path, i)
            written.append(i)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    loads, failures = 0, []
    deadline = time.monotonic() + 4
    try:
        while time.monotonic() < deadline:
            try:
                index = load_index(tmp_path, "m", DIM, 200)
            except Exception as e:  # any failure of a healthy index is the bug
                failures.append(f"{type(e).__name__}: {e}")
                continue
            loads += 1
            (i,) = index.manifest.files.values()  # chunks and manifest of one generation
            assert all(i in c.text for c in index.chunks if c.heading[-1] != "T")
    finally:
        stop.set()
        thread.join()
    assert len(written) > 20 and loads > 100
    assert failures == [], (
        f"{len(failures)} of {loads + len(failures)} loads failed: {failures[:3]}"
    )


def test_a_truncated_file_is_named_at_load(tmp_path):
    gen = write(tmp_path, 1)
    data = (gen / "units.faiss").read_bytes()
    (gen / "units.faiss").write_bytes(data[:-8])
    with pytest.raises(IndexCorrupt, match=r"units\.faiss is damaged.*rag index --full"):
        load_index(tmp_path, "m", DIM, 200)


def test_a_flipped_byte_is_refused_at_load_in_a_small_index(tmp_path, monkeypatch):
    gen = write(tmp_path, 1)
    assert verify_generation(gen) == []
    data = bytearray((gen / "dense.faiss").read_bytes())
    data[-1] ^= 0x01  # a vector off by a bit: same size, and it would load
    (gen / "dense.faiss").write_bytes(bytes(data))
    damaged = f"{gen / 'dense.faiss'} is damaged (checksum mismatch)"
    with pytest.raises(IndexCorrupt, match=re.escape(damaged)):
        load_index(tmp_path, "m", DIM, 200)
    monkeypatch.setattr(store, "VERIFY_AT_LOAD", 0)  # a big index: only --check reads it all
    load_index(tmp_path, "m", DIM, 200)
    assert verify_generation(gen) == [damaged]


def test_a_missing_generation_is_named(tmp_path):
    gen = write(tmp_path, 1)
    shutil.rmtree(gen)
    with pytest.raises(IndexCorrupt, match=rf"CURRENT names {gen.name}, which is missing"):
        load_index(tmp_path, "m", DIM, 200)


def test_every_file_is_in_the_manifest(tmp_path):
    gen = write(tmp_path, 1)
    manifest = json.loads((gen / "manifest.json").read_text())
    assert sorted(manifest["checksums"]) == sorted(manifest["sizes"]) == sorted(FILES)
    assert sorted(p.name for p in gen.iterdir()) == sorted([*FILES, "manifest.json"])


def test_an_index_of_the_first_format_gets_the_rebuild_message(tmp_path):
    gen = write(tmp_path, 1)
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["format_version"] = 1
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        IndexIncompatible, match=r"rag-index v1, this rag reads rag-index v2, v3 and v4"
    ):
        load_index(tmp_path, "m", DIM, 200)


def test_an_index_of_format_2_is_read_as_it_is(tmp_path):
    """v3 only added delta folders: a v2 generation is one without deltas."""
    gen = write(tmp_path, 1)
    manifest = json.loads((gen / "manifest.json").read_text())
    del manifest["deltas"]
    manifest["format_version"] = 2
    (gen / "manifest.json").write_text(json.dumps(manifest))
    index = load_index(tmp_path, "m", DIM, 200)
    assert len(index.parts) == 1 and len(index.chunks) == index.dense.size == 2


def test_an_index_of_format_3_is_read_with_its_rows_from_its_faiss_files(tmp_path):
    """v4 added the float rows beside each FAISS file: a v3 generation, which has none, is
    read as it is, each row taken from its FAISS index."""
    gen = write(tmp_path, 1)
    written = load_index(tmp_path, "m", DIM, 200)
    vectors = written.dense.vectors(), written.units.vectors()
    manifest = json.loads((gen / "manifest.json").read_text())
    for name in ("dense.npy", "units.npy"):
        (gen / name).unlink()
        del manifest["checksums"][name], manifest["sizes"][name]
    manifest["format_version"] = 3
    (gen / "manifest.json").write_text(json.dumps(manifest))
    index = load_index(tmp_path, "m", DIM, 200)
    assert np.array_equal(index.dense.vectors(), vectors[0])
    assert np.array_equal(index.units.take(np.array([1, 0])), vectors[1][[1, 0]])
    assert verify_generation(gen) == []


def test_a_rows_file_of_the_wrong_shape_is_named(tmp_path, monkeypatch):
    gen = write(tmp_path, 1)
    np.save(gen / "dense.npy", np.zeros((1, DIM), dtype=np.float32))
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["sizes"]["dense.npy"] = (gen / "dense.npy").stat().st_size
    manifest["checksums"] = {}
    (gen / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(store, "VERIFY_AT_LOAD", 0)  # not found by its checksum: by its shape
    with pytest.raises(IndexCorrupt, match=r"dense.faiss cannot be read .*dense.npy holds"):
        load_index(tmp_path, "m", DIM, 200)


@pytest.mark.parametrize("pointer", [b"\xff\xfe garbage", b"gen-x.tmp", b"../etc"])
def test_a_damaged_pointer_is_named(tmp_path, pointer):
    write(tmp_path, 1)
    (tmp_path / "CURRENT").write_bytes(pointer)
    with pytest.raises(IndexCorrupt, match=r"CURRENT.*rag index --full"):
        current_generation(tmp_path)


@pytest.mark.parametrize("name", ["../gen-x", "/etc", "delta-1/../..", "delta-x"])
def test_a_delta_named_as_a_path_is_refused(tmp_path, name):
    """A delta's name is a folder of the generation: never a path to read from elsewhere."""
    gen = write(tmp_path, 1)
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["deltas"] = [{"name": name, "files": ["a.md"], "chunks": 0, "units": 0}]
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexCorrupt, match="is not a valid manifest"):
        load_index(tmp_path, "m", DIM, 200)


def test_a_large_chunks_file_is_read_line_by_line_and_damage_is_named(tmp_path, monkeypatch):
    gen = write(tmp_path, 1)
    whole = load_index(tmp_path, "m", DIM, 200).chunks
    monkeypatch.setattr(chunkfile, "LAZY_BYTES", 0)
    monkeypatch.setattr(store, "VERIFY_AT_LOAD", 0)  # a large index: checksums by --check
    lazy = load_index(tmp_path, "m", DIM, 200).chunks
    assert isinstance(lazy, chunkfile.ChunkFile) and len(lazy) == len(whole) == 2
    assert list(lazy) == whole and lazy[-1] == lazy[1] == whole[1] and lazy[:1] == whole[:1]
    with pytest.raises(IndexError):
        lazy[2]
    assert chunkfile.chunk_paths(lazy) == ["a.md", "a.md"]
    odd = [replace(c, path=p) for c, p in zip(whole, ['q/"x"\\ é.md', "b\u2028.md"], strict=True)]
    odd[1] = replace(odd[1], id=odd[1].id + "-2")  # the second of two equal sections
    (tmp_path / "odd.jsonl").write_text("".join(json_line(chunkfile.chunk_to_json(c)) for c in odd))
    with monkeypatch.context() as m:  # read from the start of each line: no row parsed
        m.setattr(chunkfile, "_parse", None)
        assert chunkfile.ChunkFile(tmp_path / "odd.jsonl").paths == [c.path for c in odd]
    shutil.rmtree(gen)  # a writer removed the generation: a server reading it still can
    assert lazy[0] == whole[0]
    gen = write(tmp_path, 2)
    path = gen / "chunks.jsonl"
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(lines[0] + b"\n" + b"{garbled" + b" " * (len(lines[1]) - 8) + b"\n")
    damaged = load_index(tmp_path, "m", DIM, 200).chunks
    assert damaged[0].path == "a.md"  # the lines before it read as ever
    with pytest.raises(IndexCorrupt, match=r"chunks.jsonl line 2 is not a valid chunk"):
        damaged[1]
    path.write_bytes(path.read_bytes()[:-1])  # cut short: its last line unfinished
    with pytest.raises(IndexCorrupt, match=r"chunks.jsonl ends inside a line"):
        chunkfile.read_chunks(path)


def test_a_chunk_is_written_with_every_field_and_read_back_whole():
    from dataclasses import asdict, fields

    from rag.index.cutting import Chunk

    text = "---\ntags: [ops]\nowner: ann\n---\n# A\n\n## S\n\n- one #x\n- two\n  - child\n"
    (chunk,) = chunk_note(Note("a.md", text, "h"), words, 200)
    assert chunk.tags and chunk.properties and len(chunk.units) > 1
    data = json.loads(json.dumps(chunkfile.chunk_to_json(chunk)))
    assert list(data) == [f.name for f in fields(Chunk)]
    assert data == json.loads(json.dumps(asdict(chunk)))
    assert chunkfile.chunk_from_json(data) == chunk
