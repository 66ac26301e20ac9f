"""The on-disk index: plain files in generations, switched in atomically.

    index/CURRENT             the name of the live generation, e.g. "gen-20261127T160102-4242"
    index/gen-*/manifest.json format version, model, dimension, chunker settings, file hashes
    index/gen-*/chunks.jsonl  one chunk per line, in FAISS row order
    index/gen-*/dense.faiss   the vectors (faiss.write_index); units.faiss: the line vectors
    index/gen-*/bm25.*        the BM25 inverted index (.npy arrays), unit_counts.npy

A new generation is written beside the live one, fsynced, and made live by `os.replace` of
CURRENT: a reader sees the old generation or the new one, never half of either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag.index.cutting import CHUNKER_VERSION, Chunk
from rag.index.dense import DenseIndex
from rag.index.lexical import POSTINGS_FILES, Postings, tokenize
from rag.index.units import units_of

FORMAT = "rag-index"
FORMAT_VERSION = 1
POINTER = "CURRENT"
FILES = ("chunks.jsonl", "dense.faiss", "units.faiss")
# Derived from chunks.jsonl, saved so a large index loads without re-reading every text.
# A generation from before them still loads: the engine derives them from the chunks.
DERIVED = ("unit_counts.npy", *POSTINGS_FILES)


class IndexProblem(RuntimeError):
    """Base for index problems: `reason` says what is wrong, the message also what to do."""

    advice = "rebuild it with `rag index --full`"

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}; {self.advice}")


class IndexMissing(IndexProblem):
    advice = "build it with `rag index`"


class IndexIncompatible(IndexProblem):
    pass


class IndexCorrupt(IndexProblem):
    pass


@dataclass(frozen=True)
class Manifest:
    model: str
    dim: int
    chunker: dict  # {"version": int, "max_tokens": int}
    files: dict  # note path -> sha256 of its bytes
    checksums: dict  # file in the generation -> sha256, to catch truncation and bit rot
    chunks: int
    created: str
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    units: int = 0  # unit (line) vectors, in chunk order; see rag/units.py


@dataclass
class StoredIndex:
    manifest: Manifest
    chunks: list[Chunk]
    dense: DenseIndex  # one vector per chunk
    units: DenseIndex  # one vector per unit of each chunk with more than one unit
    generation: Path
    postings: Postings | None = None  # BM25 inverted index of the chunks (memory-mapped)
    unit_counts: np.ndarray | None = None  # unit vectors of each chunk, in row order


def unit_counts(chunks: list[Chunk]) -> np.ndarray:
    """Unit vectors per chunk: its units, or none when it has one (its own vector is that)."""
    counts = (len(u) for u in map(units_of, chunks))
    return np.fromiter((n if n > 1 else 0 for n in counts), dtype=np.int64, count=len(chunks))


def chunker_settings(max_tokens: int) -> dict:
    return {"version": CHUNKER_VERSION, "max_tokens": max_tokens}


def current_generation(index_dir: Path) -> Path | None:
    pointer = Path(index_dir) / POINTER
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IndexCorrupt(f"cannot read {pointer}: {e}") from e
    if not name.startswith("gen-") or "/" in name:
        raise IndexCorrupt(f"{pointer} names no generation ({name!r})")
    return Path(index_dir) / name


def read_manifest(index_dir: Path) -> Manifest:
    gen = current_generation(index_dir)
    if gen is None:
        raise IndexMissing(f"no index in {index_dir}")
    path = gen / "manifest.json"
    try:
        data = json.loads(path.read_text())
        manifest = Manifest(**data)
    except FileNotFoundError as e:
        raise IndexCorrupt(f"{path} is missing") from e
    except (ValueError, TypeError) as e:
        raise IndexCorrupt(f"{path} is not a valid manifest ({e})") from e
    if manifest.format != FORMAT or manifest.format_version != FORMAT_VERSION:
        raise IndexIncompatible(
            f"{path} is {manifest.format} v{manifest.format_version}, this rag reads {FORMAT} "
            f"v{FORMAT_VERSION}"
        )
    return manifest


def incompatibility(manifest: Manifest, model: str, dim: int, max_tokens: int | None) -> str | None:
    """Why an index cannot be used with this model and chunker (None: not checked), or None."""
    if manifest.model != model:
        return f"the index was built with model {manifest.model}, the settings name {model}"
    if manifest.dim != dim:
        return f"the index has {manifest.dim}-dimensional vectors, the model makes {dim}"
    if max_tokens is not None and manifest.chunker != chunker_settings(max_tokens):
        return f"the index was chunked with {manifest.chunker}, the settings say " + str(
            chunker_settings(max_tokens)
        )
    return None


def load_index(index_dir: Path, model: str, dim: int, max_tokens: int | None) -> StoredIndex:
    manifest = read_manifest(index_dir)
    reason = incompatibility(manifest, model, dim, max_tokens)
    if reason:
        raise IndexIncompatible(reason)
    gen = current_generation(index_dir)
    assert gen is not None  # read_manifest found it
    # Generations from before unit vectors have no units.faiss; their chunk vectors still count.
    names = [n for n in FILES if n in manifest.checksums or n != "units.faiss"]
    derived = [n for n in DERIVED if n in manifest.checksums]
    for name in names + derived:
        _verify(gen / name, manifest.checksums.get(name))
    chunks = _read_chunks(gen / "chunks.jsonl")
    dense = _read_faiss(gen / "dense.faiss")
    units = (
        _read_faiss(gen / "units.faiss") if "units.faiss" in names else DenseIndex.empty(dense.dim)
    )
    if (
        dense.size != len(chunks)
        or len(chunks) != manifest.chunks
        or units.size != manifest.units
        or dense.dim != manifest.dim
        or units.dim != manifest.dim
    ):
        raise IndexCorrupt(
            f"{gen} is inconsistent: {len(chunks)} chunks, {dense.size} + {units.size} vectors "
            f"of dim {dense.dim}; the manifest says {manifest.chunks} + {manifest.units} of "
            f"dim {manifest.dim}"
        )
    postings, counts = _read_derived(gen, derived, len(chunks))
    return StoredIndex(manifest, chunks, dense, units, gen, postings, counts)


def _read_derived(
    gen: Path, names: list[str], chunks: int
) -> tuple[Postings | None, np.ndarray | None]:
    """The saved BM25 index and unit counts, memory-mapped; None for what is not there or was
    made by another tokenizer (the engine then derives it from the chunks again)."""
    postings = counts = None
    try:
        if set(POSTINGS_FILES) <= set(names):
            postings = Postings.load(gen)
        if "unit_counts.npy" in names:
            counts = np.load(gen / "unit_counts.npy", mmap_mode="r", allow_pickle=False)
    except ValueError:  # another tokenizer version
        postings = None
    if (postings is not None and len(postings.doc_len) != chunks) or (
        counts is not None and len(counts) != chunks
    ):
        raise IndexCorrupt(f"{gen}: the BM25 index or unit counts do not match {chunks} chunks")
    return postings, counts


def write_generation(
    index_dir: Path, chunks: list[Chunk], dense: DenseIndex, units: DenseIndex, manifest: Manifest
) -> Path:
    """Write a complete new generation and make it the live one; returns its folder."""
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    gen = index_dir / f"gen-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6:06d}"
    tmp = gen.with_name(gen.name + ".tmp")
    tmp.mkdir()
    with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as f:
        for chunk in chunks:
            f.write(json.dumps(chunk_to_json(chunk), ensure_ascii=False) + "\n")
    dense.save(tmp / "dense.faiss")
    units.save(tmp / "units.faiss")
    Postings.from_docs([tokenize(c.indexed_text) for c in chunks]).save(tmp)
    np.save(tmp / "unit_counts.npy", unit_counts(chunks), allow_pickle=False)
    checksums = {name: _sha256(tmp / name) for name in (*FILES, *DERIVED)}
    manifest = Manifest(**{**asdict(manifest), "checksums": checksums})
    (tmp / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    for name in (*FILES, *DERIVED, "manifest.json"):
        _fsync(tmp / name)
    os.replace(tmp, gen)  # a finished generation never has a ".tmp" name
    _fsync(index_dir)
    pointer_tmp = index_dir / f"{POINTER}.tmp"
    pointer_tmp.write_text(gen.name + "\n")
    _fsync(pointer_tmp)
    os.replace(pointer_tmp, index_dir / POINTER)  # the atomic switch
    _fsync(index_dir)
    clean_old_generations(index_dir, keep=2)
    return gen


def clean_old_generations(index_dir: Path, keep: int = 2) -> None:
    """Drop all but the live generation and the one before it (a reader may still hold it)."""
    live = current_generation(index_dir)
    gens = sorted(p for p in Path(index_dir).glob("gen-*") if p.is_dir() and p != live)
    finished = [p for p in gens if not p.name.endswith(".tmp")]
    for stale in [p for p in gens if p.name.endswith(".tmp")] + finished[: -(keep - 1) or None]:
        shutil.rmtree(stale, ignore_errors=True)


def chunk_to_json(chunk: Chunk) -> dict:
    data = asdict(chunk)
    data["heading"] = list(chunk.heading)
    return data


def chunk_from_json(data: dict) -> Chunk:
    return Chunk(**{**data, "heading": tuple(data["heading"])})


def _read_chunks(path: Path) -> list[Chunk]:
    chunks = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                try:
                    chunks.append(chunk_from_json(json.loads(line)))
                except (ValueError, TypeError, KeyError) as e:
                    raise IndexCorrupt(f"{path} line {n} is not a valid chunk ({e})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise IndexCorrupt(f"cannot read {path} ({e})") from e
    return chunks


def _read_faiss(path: Path) -> DenseIndex:
    try:
        return DenseIndex.load(path)
    except RuntimeError as e:
        raise IndexCorrupt(f"{path} cannot be read ({e})") from e


def _verify(path: Path, expected: str | None) -> None:
    if not path.is_file():
        raise IndexCorrupt(f"{path} is missing")
    if expected and _sha256(path) != expected:
        raise IndexCorrupt(f"{path} is damaged (checksum mismatch)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
