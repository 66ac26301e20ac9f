"""The on-disk index: plain files in generations, switched in atomically (docs/index-format.md).

    index/CURRENT             the name of the live generation, e.g. "gen-20261127T160102-4242-..."
    index/gen-*/manifest.json format version, model, dimension, cutter settings, file hashes
    index/gen-*/chunks.jsonl  one chunk (with its units) per line, in FAISS row order
    index/gen-*/dense.faiss   the chunk vectors (faiss.write_index); units.faiss: the unit vectors
    index/gen-*/dense.npy     their float32 rows (units.npy: the units'), for exact scores
    index/gen-*/bm25.*        the BM25 inverted index (.npy arrays); unit_counts.npy
    index/gen-*/delta-N/      the same files for the notes one edit changed (none or more)

A generation with deltas links the files of the one before (its base and earlier deltas) and
writes only its new delta: an edit costs what the edited notes cost (`rag.index.join` reads
them as one index; `rag.index.build` decides when to rewrite the whole).

A new generation is written beside the live one, fsynced, and made live by `os.replace` of
CURRENT: a reader sees the old generation or the new one, never half of either. A reader
resolves CURRENT once per load; should the writer remove that generation while it reads (it
keeps the live one and the one before), the reader starts again from the new CURRENT.

Loading checks the versions, file sizes and counts, and for an index up to VERIFY_AT_LOAD
bytes every file's sha256; it memory-maps the vectors and the BM25 arrays.
`verify_generation` reads every byte of any size, for `rag index --check` and before a
writer re-uses vectors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rag.errors import BadInput, IndexCorrupt, IndexIncompatible, IndexMissing, IndexUnwritable
from rag.index.chunkfile import chunk_to_json, read_chunks
from rag.index.cutting import CUT_VERSION, Chunk
from rag.index.dense import DenseIndex
from rag.index.join import Joined, JoinedDense, Segment
from rag.index.lexical import (
    POSTINGS_FILES,
    TOKENIZER_VERSION,
    Postings,
    StalePostings,
)
from rag.jsonl import json_line

FORMAT = "rag-index"
# 2: units stored with their chunks; 3: delta folders may follow; 4: float rows beside each
# FAISS file, whose approximate indexes hold codes (rag.index.dense)
FORMAT_VERSION = 4
READS = (2, 3, 4)  # a v2 generation is a v3 one without a delta; a v3 one keeps its rows
_DELTA_NAME = re.compile(r"delta-[0-9]{1,9}")
POINTER = "CURRENT"
FILES_V3 = ("chunks.jsonl", "dense.faiss", "units.faiss", "unit_counts.npy", *POSTINGS_FILES)
FILES = (*FILES_V3, "dense.npy", "units.npy")
LOAD_ATTEMPTS = 5  # generations a load may find replaced under it before it gives up
# An index up to this size is read against its checksums on every load (64 MiB: about 0.1 s;
# the default notes' index is about 6 MB); a larger one only by `rag index --check` and before
# `rag index` re-uses its vectors, so a 1M-chunk index still opens in seconds.
VERIFY_AT_LOAD = 64 << 20


@dataclass(frozen=True)
class Manifest:
    model: str
    dim: int
    chunker: dict  # {"version": CUT_VERSION, "max_tokens": int}
    files: dict  # note path -> sha256 of its bytes
    chunks: int
    units: int  # unit vectors, in chunk order
    created: str
    encoder: str = "float32"  # how note text was embedded (Embedder.documents_encoder)
    # The delta folders, oldest first: [{"name": "delta-1", "files": [path, ...] (the notes it
    # holds the chunks of, or removes), "chunks": n, "units": n}, ...]. `chunks` and `units`
    # above count the generation's own folder (the base), edited notes' old chunks included.
    deltas: list = field(default_factory=list)
    # faiss's imbalance factor of each approximate index's groups when they were trained
    # ({"units.faiss": 1.3}): a rewrite keeps the groups until they drift from it (dense.py)
    balance: dict = field(default_factory=dict)
    # Unit vectors a first pass left out of the base (None: not recorded, before format 4)
    lines_pending: int | None = None
    # Filled in by write_generation, per file in the generation:
    checksums: dict = field(default_factory=dict)  # sha256, for `verify_generation`
    sizes: dict = field(default_factory=dict)  # bytes, checked at every load
    previous: str = ""  # the generation this one replaced (kept until the next switch)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION


@dataclass
class StoredIndex:
    manifest: Manifest
    chunks: Sequence[Chunk]  # a list, or a ChunkFile for a large one (rag.index.chunkfile)
    dense: DenseIndex | JoinedDense  # one vector per chunk
    units: DenseIndex | JoinedDense  # one vector per unit of each chunk with more than one unit
    postings: Postings  # BM25 inverted index of the chunks (memory-mapped)
    unit_counts: np.ndarray  # unit vectors of each chunk, in row order
    generation: Path
    parts: list[Segment]  # the generation's own folder (the base), then its deltas, as read;
    # with deltas, the fields above join them (rag.index.join)

    @property
    def base(self) -> Segment:
        return self.parts[0]

    @property
    def lines_pending(self) -> int:
        """Unit (line) vectors a first pass left out: 0 for a whole index (deltas are only
        written over a whole one, and hold all of theirs). The manifest says (format 4);
        an older one's chunks are counted."""
        if self.manifest.lines_pending is not None:
            return self.manifest.lines_pending
        return sum(p.lines_pending for p in self.parts)


def unit_counts(chunks: list[Chunk]) -> np.ndarray:
    """Unit vectors per chunk, in row order."""
    return np.fromiter((len(c.vector_units) for c in chunks), dtype=np.int64, count=len(chunks))


def chunker_settings(max_tokens: int) -> dict:
    """How the notes were cut and tokenized: a change re-cuts them (vectors kept)."""
    return {"version": CUT_VERSION, "max_tokens": max_tokens, "tokenizer": TOKENIZER_VERSION}


def current_generation(index_dir: Path) -> Path | None:
    """The live generation's folder, as CURRENT names it now; None if there is no index."""
    pointer = Path(index_dir) / POINTER
    if Path(index_dir).exists() and not Path(index_dir).is_dir():
        raise BadInput(f"the index folder {index_dir} is a file; pass --index DIR naming a folder")
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise IndexCorrupt(f"cannot read {pointer} ({e})") from e
    if not name.startswith("gen-") or "/" in name or name.endswith(".tmp"):
        raise IndexCorrupt(f"{pointer} names no generation ({name[:80]!r})")
    return Path(index_dir) / name


def generation_files(manifest: Manifest) -> tuple[str, ...]:
    """Every file of a generation but its manifest: its own, then each delta's."""
    files = segment_files(manifest)
    return files + tuple(f"{d['name']}/{name}" for d in manifest.deltas for name in files)


def segment_files(manifest: Manifest) -> tuple[str, ...]:
    """The files of each folder of a generation of this manifest's format."""
    return FILES if manifest.format_version >= 4 else FILES_V3


def read_manifest(gen: Path) -> Manifest:
    path = gen / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise IndexCorrupt(f"{path} is missing") from e
    except (OSError, ValueError) as e:
        raise IndexCorrupt(f"{path} is not a valid manifest ({e})") from e
    made = (data.get("format"), data.get("format_version")) if isinstance(data, dict) else None
    if made is None or made[0] != FORMAT or made[1] not in READS:
        shown = f"{made[0]} v{made[1]}" if made else "not a manifest"
        *older, last = [f"v{v}" for v in READS]
        readable = f"{', '.join(older)} and {last}" if older else last
        raise IndexIncompatible(f"{path} is {shown}, this rag reads {FORMAT} {readable}")
    try:
        manifest = Manifest(**data)
    except TypeError as e:
        raise IndexCorrupt(f"{path} is not a valid manifest ({e})") from e
    pending = manifest.lines_pending
    if pending is not None and (type(pending) is not int or pending < 0):
        raise IndexCorrupt(f"{path} is not a valid manifest (lines_pending {str(pending)[:20]})")
    for d in manifest.deltas:  # a name is a folder to read: never a path elsewhere
        if not (
            isinstance(d, dict)
            and isinstance(d.get("name"), str)
            and _DELTA_NAME.fullmatch(d["name"])
            and isinstance(d.get("files"), list)
            and isinstance(d.get("chunks"), int)
            and isinstance(d.get("units"), int)
        ):
            raise IndexCorrupt(f"{path} is not a valid manifest (a delta is {str(d)[:80]})")
    return manifest


def incompatibility(manifest: Manifest, model: str, dim: int, max_tokens: int | None) -> str | None:
    """Why an index cannot be used with this model and cutter (None: not checked), or None."""
    if manifest.model != model:
        return f"the index was built with model {manifest.model}, the settings name {model}"
    if manifest.dim != dim:
        return f"the index has {manifest.dim}-dimensional vectors, the model makes {dim}"
    if max_tokens is not None and manifest.chunker != chunker_settings(max_tokens):
        return f"the index was chunked with {manifest.chunker}, the settings say " + str(
            chunker_settings(max_tokens)
        )
    return None


def load_index(
    index_dir: Path,
    model: str,
    dim: int,
    max_tokens: int | None,
    reuse: StoredIndex | None = None,
) -> StoredIndex:
    """The live generation, checked against this model and cutter (`max_tokens` None: any).
    `reuse`: an index loaded before, whose base folder is taken as it was read when the live
    generation links the same files (an edit then reads its delta only)."""
    for _ in range(LOAD_ATTEMPTS):
        gen = current_generation(index_dir)
        if gen is None:
            raise IndexMissing(f"no index in {index_dir}")
        try:
            return _load_generation(gen, model, dim, max_tokens, reuse)
        except (IndexCorrupt, OSError) as e:
            if current_generation(index_dir) == gen:  # not replaced under us: really broken
                if not gen.is_dir():
                    raise IndexCorrupt(
                        f"{index_dir / POINTER} names {gen.name}, which is missing"
                    ) from e
                if isinstance(e, IndexCorrupt):
                    raise
                raise IndexCorrupt(f"cannot read {gen} ({e})") from e
            # The writer replaced and removed this generation while we read it: read the new one.
    raise IndexCorrupt(f"{index_dir} changed {LOAD_ATTEMPTS} times while it was being read")


def _load_generation(
    gen: Path, model: str, dim: int, max_tokens: int | None, reuse: StoredIndex | None
) -> StoredIndex:
    manifest = read_manifest(gen)
    reason = incompatibility(manifest, model, dim, max_tokens)
    if reason:
        raise IndexIncompatible(reason)
    names = generation_files(manifest)
    for name in names:
        _check_size(gen / name, manifest.sizes.get(name))
    if verified_at_load(manifest):  # damage must not change answers silently
        for name in names:
            if _sha256(gen / name) != manifest.checksums.get(name):
                raise IndexCorrupt(f"{gen / name} is damaged (checksum mismatch)")
    known = {p.name: p for p in reuse.parts} if reuse is not None else {}
    parts = []
    for d in [{"name": "", "chunks": manifest.chunks, "units": manifest.units}, *manifest.deltas]:
        name = d["name"]
        mine = [f"{name}/{f}" if name else f for f in segment_files(manifest)]
        same = name in known and all(
            reuse.manifest.checksums.get(f) == manifest.checksums.get(f) for f in mine
        )
        rows = manifest.format_version >= 4
        parts.append(known[name] if same else _read_segment(gen, d, dim, rows))
    parts[0].dense.trained_balance = manifest.balance.get("dense.faiss")
    parts[0].units.trained_balance = manifest.balance.get("units.faiss")
    if len(parts) == 1:
        return StoredIndex(manifest, *_fields(parts[0]), gen, parts)
    owner = {f: k for k, d in enumerate(manifest.deltas, 1) for f in d["files"]}
    view = Joined.of(parts, manifest.files, owner)
    return StoredIndex(manifest, *_fields(view), gen, parts)


def _fields(s: Segment | Joined) -> tuple:
    return s.chunks, s.dense, s.units, s.postings, s.unit_counts


def _read_segment(gen: Path, counted: dict, dim: int, rows: bool = True) -> Segment:
    """One folder's chunks, vectors (FAISS memory-mapped, rows read as asked) and postings,
    checked against its counts: the generation's own (`counted["name"]` "") or a delta's.
    `rows`: whether the folder has float rows beside its FAISS files (format 4)."""
    folder = gen / counted["name"] if counted["name"] else gen
    chunks_expected, units_expected = counted["chunks"], counted["units"]
    chunks = read_chunks(folder / "chunks.jsonl")
    dense = _read_faiss(folder / "dense.faiss", rows)
    units = _read_faiss(folder / "units.faiss", rows)
    try:
        try:
            postings = Postings.load(folder)
        except StalePostings:  # an older tokenizer's (an update re-cuts the notes anyway)
            postings = Postings.of_texts(c.indexed_text for c in chunks)
        counts = np.load(folder / "unit_counts.npy", mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise IndexCorrupt(f"{folder}: the BM25 index or unit counts cannot be read ({e})") from e
    found = (len(chunks), dense.size, units.size, dense.dim, units.dim)
    expected = (chunks_expected, chunks_expected, units_expected, dim, dim)
    if (
        found != expected
        or len(postings.doc_len) != len(chunks)
        or len(counts) != len(chunks)
        or int(counts.sum()) != units.size
    ):
        raise IndexCorrupt(
            f"{folder} is inconsistent: {len(chunks)} chunks, {dense.size} + {units.size} "
            f"vectors of dim {dense.dim}; the manifest says {chunks_expected} + "
            f"{units_expected} of dim {dim}"
        )
    return Segment(chunks, dense, units, postings, counts, counted["name"])


def verified_at_load(manifest: Manifest) -> bool:
    """Whether loading this generation reads every file against its sha256 (a small index)."""
    return sum(manifest.sizes.values()) <= VERIFY_AT_LOAD


def verify_generation(gen: Path, names: tuple[str, ...] | None = None) -> list[str]:
    """Every file of a generation (or those `names` gives) read against the sha256 the manifest
    holds: the problems, one line each (none: the generation is whole)."""
    try:
        manifest = read_manifest(gen)
    except (IndexCorrupt, IndexIncompatible) as e:
        return [e.reason]
    problems = []
    for name in names or generation_files(manifest):
        path = gen / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif _sha256(path) != manifest.checksums.get(name):
            problems.append(f"{path} is damaged (checksum mismatch)")
    return problems


def write_generation(
    index_dir: Path,
    chunks: list[Chunk],
    dense: DenseIndex,
    units: DenseIndex,
    manifest: Manifest,
    counts: np.ndarray | None = None,
    base: StoredIndex | None = None,
    postings: Postings | None = None,
) -> Path:
    """Write a complete new generation and make it the live one; returns its folder. `counts`:
    unit vectors per chunk, when a first pass left them out (`rag.index.build`). With `base`
    (the live generation), what is given is a delta, the last of `manifest.deltas`: the new
    generation links `base`'s own files and those of the deltas before it, and writes it.
    `postings`: the chunks' BM25 postings, when known (else they are tokenized here).

    A failure (disk full, read-only folder) leaves the live generation as it was and nothing
    of the new one behind: IndexUnwritable says why."""
    index_dir = Path(index_dir)
    try:
        previous = current_generation(index_dir)
    except IndexCorrupt:  # a garbled CURRENT: this write replaces it
        previous = None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    gen = index_dir / f"gen-{stamp}-{os.getpid()}-{time.monotonic_ns() % 10**6:06d}"
    tmp = gen.with_name(gen.name + ".tmp")
    pointer_tmp = index_dir / f"{POINTER}.tmp"
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        expected = unit_counts(chunks)
        counts = expected if counts is None else counts
        if base is None:
            extra = _write_segment(tmp, chunks, dense, units, counts, postings)
            pending = int(expected.sum() - counts.sum())
        else:
            *kept, new = [d["name"] for d in manifest.deltas]
            extra = _link(base, tmp, [*FILES, *(f"{d}/{f}" for d in kept for f in FILES)])
            delta = _write_segment(tmp / new, chunks, dense, units, counts)
            for key in extra:
                extra[key].update({f"{new}/{name}": v for name, v in delta[key].items()})
            pending = base.lines_pending  # 0: deltas are written over a whole index only
        _write_manifest(tmp, manifest, {**extra, "lines_pending": pending}, previous)
        os.replace(tmp, gen)  # a finished generation never has a ".tmp" name
        _fsync(index_dir)
        pointer_tmp.write_text(gen.name + "\n", encoding="utf-8")
        _fsync(pointer_tmp)
        os.replace(pointer_tmp, index_dir / POINTER)  # the atomic switch
    except (OSError, RuntimeError) as e:  # faiss reports a failed write as RuntimeError
        for left in (tmp, gen):
            shutil.rmtree(left, ignore_errors=True)
        with contextlib.suppress(OSError):
            pointer_tmp.unlink()
        raise IndexUnwritable(
            f"cannot write a new index generation in {index_dir} ({_why(e)}); "
            "the live index is unchanged"
        ) from e
    _fsync(index_dir)
    clean_old_generations(index_dir)
    return gen


def _write_segment(
    folder: Path,
    chunks: list[Chunk],
    dense: DenseIndex,
    units: DenseIndex,
    counts: np.ndarray,
    postings: Postings | None = None,
) -> dict[str, dict]:
    """A folder's files, fsynced; their checksums and sizes."""
    folder.mkdir(exist_ok=True)
    with open(folder / "chunks.jsonl", "w", encoding="utf-8") as f:
        for chunk in chunks:
            f.write(json_line(chunk_to_json(chunk)))
    dense.save(folder / "dense.faiss")
    units.save(folder / "units.faiss")
    if postings is None:
        postings = Postings.of_texts(c.indexed_text for c in chunks)
    postings.save(folder)
    np.save(folder / "unit_counts.npy", counts, allow_pickle=False)
    for name in FILES:
        _fsync(folder / name)
    return {
        "checksums": {name: _sha256(folder / name) for name in FILES},
        "sizes": {name: (folder / name).stat().st_size for name in FILES},
    }


def _link(base: StoredIndex, folder: Path, names: list[str]) -> dict[str, dict]:
    """These files of the base generation in `folder`, hard-linked (copied where the file
    system cannot link); their checksums and sizes, as its manifest has them."""
    for name in names:
        (folder / name).parent.mkdir(exist_ok=True)
        try:
            os.link(base.generation / name, folder / name)
        except OSError:
            shutil.copyfile(base.generation / name, folder / name)
            _fsync(folder / name)
    known = base.manifest
    return {
        "checksums": {name: known.checksums[name] for name in names},
        "sizes": {name: known.sizes[name] for name in names},
    }


def _write_manifest(
    folder: Path, manifest: Manifest, extra: dict[str, object], previous: Path | None
) -> None:
    previous_name = previous.name if previous else ""
    manifest = Manifest(**{**asdict(manifest), **extra, "previous": previous_name})
    (folder / "manifest.json").write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    _fsync(folder / "manifest.json")
    for delta in manifest.deltas:
        _fsync(folder / delta["name"])


def _why(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return " ".join(str(e).split())[-160:]  # faiss: a long message, the cause at its end


def clean_old_generations(index_dir: Path) -> None:
    """Drop every generation but the live one and the one it replaced (a reader may still be
    opening that): unfinished `.tmp` folders and generations a crash left unswitched too.

    Called by the one writer holding the lock, before and after it writes."""
    try:
        live = current_generation(index_dir)
    except IndexCorrupt:
        live = None
    keep = {live}
    if live is not None:
        try:
            previous = read_manifest(live).previous
        except (IndexCorrupt, IndexIncompatible):
            return  # nothing is known to be stale: keep every generation
        keep.add(Path(index_dir) / previous if previous else None)
    for stale in Path(index_dir).glob("gen-*"):
        if stale.is_dir() and stale not in keep:
            # A folder another cleaner took already is fine.
            shutil.rmtree(stale, ignore_errors=True)


def _read_faiss(path: Path, rows: bool) -> DenseIndex:
    try:
        return DenseIndex.load(path, rows)
    except (RuntimeError, ValueError) as e:  # numpy: a rows file that is not a float array
        raise IndexCorrupt(f"{path} cannot be read ({e})") from e


def _check_size(path: Path, expected: int | None) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IndexCorrupt(f"{path} is missing") from None
    if size != expected:
        raise IndexCorrupt(f"{path} is damaged ({size} bytes, the manifest says {expected})")


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
