"""Build or update the index: cut what changed, embed only new text, switch atomically.

    report = update_index(Path("notes"), Path("index"), embedder, max_tokens=200)
    report.embedded   # chunks whose text was new to the index

Vectors depend only on the model, its encoder (`Embedder.documents_encoder`, kept in the
manifest: another one embeds everything again) and the text, so every chunk or unit whose
text has a vector in the live generation keeps it (a renamed note embeds nothing). Those
vectors are re-used only from a generation whose files match their checksums, so damage is
never copied forward.
One process updates an index at a time (`index/.lock`, released by the kernel even after
kill -9).

A first pass (`lines=False`) embeds only the chunks, a third of the model's work on the default
notes: a server answers from it (each chunk found by its own vector; the lines of the hits are
embedded when asked, `Engine._embed_pending_units`) while the line vectors are embedded; the
next update, even after a crash, adds them and keeps the chunk vectors.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from rag.errors import IndexBusy, IndexProblem, IndexUnwritable
from rag.index.chunkfile import chunk_paths
from rag.index.cutting import Chunk, chunk_note, text_hash
from rag.index.dense import ROW_BLOCK, DenseIndex, RowFile, RowWriter
from rag.index.embedding import Embedder
from rag.index.join import join_postings
from rag.index.lexical import Postings
from rag.index.store import (
    FORMAT_VERSION,
    Manifest,
    StoredIndex,
    chunker_settings,
    clean_old_generations,
    current_generation,
    generation_files,
    load_index,
    unit_counts,
    verified_at_load,
    verify_generation,
    write_generation,
)
from rag.notes import Folders, Note, Skipped, fingerprints, require_notes

log = logging.getLogger(__name__)
EMBED_BATCH = 256  # texts per progress step
# An index of this many chunks or more takes an edit as a delta (store.py): the notes edited
# since its base was written, cut, embedded and written on their own. A smaller one is
# rewritten whole, which costs about as little (0.5 s for the default notes' 451 chunks);
# a rewrite of 10,000 synthetic chunks takes 17-20 s, most of it training the line index.
DELTA_MIN_CHUNKS = 1_000
# Each edit adds a delta; a search looks into each one and a load joins them all, so their
# number and size are bounded. The MAX_DELTAS-th edit writes one delta of every note the
# deltas hold (they are read and written again, the base is not); once the deltas would hold
# more than 1/DELTA_SHARE of the base's chunks, the update rewrites the whole index (a new
# base, no deltas): the occasional cost of a full write, for edits that stay O(edit).
MAX_DELTAS = 8
DELTA_SHARE = 8
Progress = Callable[[int, int], None]  # (done, total) texts embedded so far
# A rewrite of this many vectors or more gathers them into .npy files block by block, and
# builds its indexes from those (read as asked), instead of holding them all: the unit
# vectors of 1M chunks are 11.7 GB. The files are linked into the new generation.
STREAM_ROWS = 200_000


@dataclass
class IndexReport:
    files: int = 0
    chunks: int = 0
    embedded: int = 0
    removed: int = 0
    unchanged: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    seconds: float = 0.0
    changed_files: list[str] = field(default_factory=list)  # new or edited notes
    removed_files: list[str] = field(default_factory=list)
    rebuild_reason: str = ""  # why every note was cut again (and maybe embedded), if it was
    written: bool = False  # whether a new generation went live
    dry_run: bool = False

    def to_json(self) -> dict:
        data = asdict(self)
        data["skipped"] = [{"path": s.path, "reason": s.reason} for s in self.skipped]
        data["seconds"] = round(self.seconds, 3)
        return data


def update_index(
    notes: Folders | Path,
    index_dir: Path,
    embedder: Embedder,
    max_tokens: int,
    *,
    full: bool = False,
    dry_run: bool = False,
    progress: Progress | None = None,
    lock_wait: float = 60.0,
    lines: bool = True,
    live: StoredIndex | None = None,
) -> IndexReport:
    """`live`: the index a server answers from, if it is the live generation (not read again)."""
    started = time.perf_counter()
    with nullcontext() if dry_run else index_lock(index_dir, lock_wait):
        # Read under the lock: a note saved while this run waited for it is indexed as saved.
        notes, skipped = require_notes(notes)
        if not dry_run:
            clean_old_generations(index_dir)  # what a crashed or failed run left
        old, reason = _previous(index_dir, embedder, max_tokens, full, live)
        if old is not None and not reason and lines and not old.lines_pending:
            args = (notes, skipped, old, index_dir, embedder, max_tokens, dry_run, progress)
            report = _update_delta(*args)
            if report is not None:
                report.seconds = time.perf_counter() - started
                return report
        # A large index is read against its checksums before its vectors are copied into a
        # rewrite (a small one was, by load_index), so damage is never copied forward.
        if not dry_run and old is not None and not verified_at_load(old.manifest):
            problems = verify_generation(old.generation)
            if problems:
                old, reason = None, f"the live index is damaged ({problems[0]})"
        if old is not None and not isinstance(old.chunks, list):
            # A large index's rows are read as asked: parsed once here for the passes below
            # (the new chunks of unchanged notes are these same objects).
            old = replace(old, chunks=list(old.chunks))
        old_files = old.manifest.files if old and not reason else {}
        old_chunks = old.chunks if old else []
        chunks, changed_files = _chunks(notes, old_chunks, old_files, embedder, max_tokens)
        vectors = VectorPlan(old, chunks, lines)
        report = _report(notes, skipped, old, chunks, vectors, changed_files, reason, dry_run)
        same = old is not None and [c.id for c in chunks] == [c.id for c in old.chunks]
        whole = old is not None and (not lines or old.lines_pending == 0)
        if dry_run or (same and whole and old_files == fingerprints(notes)):
            report.seconds = time.perf_counter() - started
            return report
        with _scratch(index_dir) as folder:
            chunk_vectors, unit_vectors = vectors.build(embedder, progress, folder)
            dense = _dense_index(chunk_vectors, old and old.dense, vectors.sources[0])
            units = _dense_index(unit_vectors, old and old.units, vectors.sources[1])
            manifest = _manifest(
                embedder,
                max_tokens,
                notes,
                chunks=len(chunks),
                units=len(unit_vectors),
                balance=_balances(dense, units),
            )
            postings = _postings(chunks, old if not reason else None)
            gen = write_generation(
                index_dir, chunks, dense, units, manifest, vectors.counts, postings=postings
            )
        report.written = True
        report.seconds = time.perf_counter() - started
        log.debug("wrote %s: %d chunks, %d embedded", gen.name, report.chunks, report.embedded)
        return report


def _update_delta(
    notes: list[Note],
    skipped: list[Skipped],
    old: StoredIndex,
    index_dir: Path,
    embedder: Embedder,
    max_tokens: int,
    dry_run: bool,
    progress: Progress | None,
) -> IndexReport | None:
    """Write the notes changed since `old` as a new delta over it; None when the index is too
    small for deltas or they would outgrow their base (the caller rewrites the whole)."""
    base_size = len(old.base.chunks)
    if base_size < DELTA_MIN_CHUNKS or old.manifest.format_version < FORMAT_VERSION:
        return None  # an older format's files are not linked into this one's
    deltas = old.manifest.deltas
    old_files, paths = old.manifest.files, {n.path for n in notes}
    changed = [n.path for n in notes if old_files.get(n.path) != n.sha256]
    removed = sorted(p for p in old_files if p not in paths)
    owner = {f: d["name"] for d in deltas for f in d["files"]}
    kept = deltas if len(deltas) < MAX_DELTAS else []  # else this delta takes all of theirs
    touched = set(changed).union(removed, owner if not kept else ())
    covered = {p for p in touched if p in paths or p in old.base.spans or p in owner}
    # The covered notes' old vectors are copied from the parts that hold them: a delta's
    # files are read against their checksums first (the base's are linked as they are, and
    # read whole before the next rewrite).
    read = {owner[p] for p in covered if p in owner}
    names = tuple(f for f in generation_files(old.manifest) if f.split("/")[0] in read)
    check = names and not dry_run and not verified_at_load(old.manifest)
    if check and verify_generation(old.generation, names):
        return None  # the rewrite finds the damage, says so, and builds anew
    mine = [n for n in notes if n.path in covered]
    old_paths = chunk_paths(old.chunks)  # a large index's rows are not parsed for this
    old_rows = np.flatnonzero([p in covered for p in old_paths])
    old_chunks = [old.chunks[r] for r in old_rows]
    chunks, _ = _chunks(mine, old_chunks, old_files, embedder, max_tokens)
    if (sum(d["chunks"] for d in kept) + len(chunks)) * DELTA_SHARE > base_size:
        return None
    vectors = VectorPlan(old, chunks, reuse=old_rows)
    old_ids, new_ids = {c.id for c in old_chunks}, {c.id for c in chunks}
    cut = {p for p in old_paths if p not in covered} | {c.path for c in chunks}
    empty = [Skipped(p, "headings only: no text to index") for p in sorted(paths - cut)]
    report = IndexReport(
        files=len(notes),
        chunks=len(old.chunks) - len(old_chunks) + len(chunks),
        embedded=vectors.new_chunks,
        removed=len(old_ids - new_ids),
        unchanged=len(old.chunks) - len(old_chunks) + len(old_ids & new_ids),
        skipped=sorted([*skipped, *empty], key=lambda s: s.path),
        changed_files=changed,
        removed_files=removed,
        dry_run=dry_run,
    )
    if dry_run or not (changed or removed):
        return report
    chunk_vectors, unit_vectors = vectors.build(embedder, progress)
    number = max((int(d["name"].split("-")[1]) for d in deltas), default=0) + 1
    delta = {
        "name": f"delta-{number}",
        "files": sorted(covered),
        "chunks": len(chunks),
        "units": len(unit_vectors),
    }
    manifest = _manifest(
        embedder,
        max_tokens,
        notes,
        chunks=base_size,
        units=old.base.units.size,
        balance=old.manifest.balance,
        deltas=[*kept, delta],
    )
    dense, units = DenseIndex.build(chunk_vectors), DenseIndex.build(unit_vectors)
    write_generation(index_dir, chunks, dense, units, manifest, vectors.counts, base=old)
    report.written = True
    return report


def _postings(chunks: list[Chunk], old: StoredIndex | None) -> Postings:
    """The chunks' BM25 postings: a chunk whose text the old index holds takes its postings
    from there (tokenizing 100k chunks takes 10-25 s); only the others are tokenized."""
    if old is None:
        return Postings.of_texts(c.indexed_text for c in chunks)
    rows: dict[str, int] = {}
    for row, chunk in enumerate(old.chunks):
        rows.setdefault(chunk.content_hash, row)
    kept = np.full(len(old.chunks), -1, dtype=np.int64)  # old document -> new row
    fresh: list[int] = []
    for i, chunk in enumerate(chunks):
        row = rows.pop(chunk.content_hash, None)  # an old document lands in one row only
        if row is None:
            fresh.append(i)
        else:
            kept[row] = i
    tokens = Postings.of_texts(chunks[i].indexed_text for i in fresh)
    new = np.array(fresh, dtype=np.int64)
    return join_postings([old.postings, tokens], [kept, new], len(chunks))


def _manifest(embedder: Embedder, max_tokens: int, notes: list[Note], **counts) -> Manifest:
    """The manifest of a generation of these notes, by this embedder and cutter; `counts`:
    its chunks, units, deltas and groups' balance."""
    return Manifest(
        model=embedder.name,
        dim=embedder.dim,
        encoder=embedder.documents_encoder,
        chunker=chunker_settings(max_tokens),
        files=fingerprints(notes),
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **counts,
    )


def _balances(dense: DenseIndex, units: DenseIndex) -> dict[str, float]:
    """What training left each approximate index's groups at (store.Manifest.balance)."""
    found = {"dense.faiss": dense.trained_balance, "units.faiss": units.trained_balance}
    return {name: b for name, b in found.items() if b is not None}


def _report(notes, skipped, old, chunks, vectors, changed, reason, dry_run) -> IndexReport:
    old_ids = {c.id for c in old.chunks} if old else set()
    new_ids = {c.id for c in chunks}
    paths = {n.path for n in notes}
    cut = {c.path for c in chunks}
    empty = [Skipped(p, "headings only: no text to index") for p in sorted(paths - cut)]
    return IndexReport(
        files=len(notes),
        chunks=len(chunks),
        embedded=vectors.new_chunks,
        removed=len(old_ids - new_ids),
        unchanged=len(new_ids & old_ids),
        skipped=sorted([*skipped, *empty], key=lambda s: s.path),
        changed_files=changed,
        removed_files=sorted(p for p in (old.manifest.files if old else {}) if p not in paths),
        rebuild_reason=reason,
        dry_run=dry_run,
    )


def _chunks(
    notes: list[Note], old_chunks: list[Chunk], old_files: dict, embedder: Embedder, tokens: int
) -> tuple[list[Chunk], list[str]]:
    """Every chunk of the notes: kept from the old index for unchanged files, else cut anew."""
    old_by_path: dict[str, list[Chunk]] = {}
    for chunk in old_chunks:
        old_by_path.setdefault(chunk.path, []).append(chunk)
    chunks: list[Chunk] = []
    changed = []
    for note in notes:
        if old_files.get(note.path) == note.sha256 and note.path in old_by_path:
            chunks.extend(old_by_path[note.path])
        else:
            changed.append(note.path)
            chunks.extend(chunk_note(note, embedder.count_tokens, tokens))
    return chunks, changed


class VectorPlan:
    """Which vectors of a new generation are re-used and which are embedded; without `lines`,
    chunk vectors only (a first pass). `reuse`: the old chunk rows whose vectors (their own
    and their units') may be re-used; None: all of them.

    A new chunk that is the very object of an old row (an unchanged note's, in a rewrite)
    takes that row's vectors as they are. Any other vector is found by the hash of its text
    among the old chunks' and the units of old chunks not so kept, or embedded."""

    def __init__(
        self,
        old: StoredIndex | None,
        chunks: list[Chunk],
        lines: bool = True,
        reuse: np.ndarray | None = None,
    ) -> None:
        self.old = old
        self.counts = unit_counts(chunks) if lines else np.zeros(len(chunks), dtype=np.int64)
        # each vector's source, in row order (chunks, then units): 0 or 1, a row of the old
        # chunk or unit index; -1, the text at that place in `texts`, embedded
        sizes = (len(chunks), int(self.counts.sum()))
        self._source = [np.full(n, -1, dtype=np.int8) for n in sizes]
        self._row = [np.full(n, -1, dtype=np.int64) for n in sizes]
        self.texts: list[str] = []  # to embed, each once
        self.sources: list[np.ndarray] = []  # by `build`: each row's old row, or -1 (new)
        known: dict[str, tuple[int, int]] = {}  # hash -> (0: chunk, 1: unit; old row)
        fresh: dict[str, int] = {}  # hash -> place in `texts`
        same: dict[int, int] = {}  # id of an old chunk object -> its row
        first = np.zeros(1, dtype=np.int64)
        if old:
            first = np.concatenate([[0], np.cumsum(old.unit_counts)])
            rows = range(len(old.chunks)) if reuse is None else reuse.tolist()
            kept = {id(c) for c in chunks}
            for r in rows:
                chunk = old.chunks[r]
                known.setdefault(chunk.content_hash, (0, r))
                if id(chunk) in kept:
                    same[id(chunk)] = r
            for r in rows:
                chunk = old.chunks[r]
                if id(chunk) not in same and first[r + 1] > first[r]:
                    for i, unit in enumerate(chunk.vector_units):
                        known.setdefault(chunk.unit_hash(unit), (1, int(first[r]) + i))

        def place(kind: int, row: int, hash: str, text: str) -> None:
            found = known.get(hash)
            if found is None:
                if hash not in fresh:
                    fresh[hash] = len(self.texts)
                    self.texts.append(text)
                found = (-1, fresh[hash])
            self._source[kind][row], self._row[kind][row] = found

        unit_row = 0
        for i, chunk in enumerate(chunks):
            r = same.get(id(chunk))
            if r is not None:
                self._source[0][i], self._row[0][i] = 0, r
            else:
                place(0, i, chunk.content_hash, chunk.indexed_text)
            n = int(self.counts[i])
            if n and r is not None and first[r + 1] - first[r] == n:  # its unit vectors too
                self._source[1][unit_row : unit_row + n] = 1
                self._row[1][unit_row : unit_row + n] = np.arange(first[r], first[r] + n)
            elif n:
                for j, unit in enumerate(chunk.vector_units):
                    text = chunk.unit_indexed_text(unit)
                    place(1, unit_row + j, text_hash(text), text)
            unit_row += n
        new = self._row[0][self._source[0] < 0]
        self.new_chunks = len(np.unique(new))  # chunk texts embedded

    def build(
        self, embedder: Embedder, progress: Progress | None, folder: Path | None = None
    ) -> tuple[np.ndarray | RowFile, ...]:
        """The chunk vectors and the unit vectors, in row order. `folder`: where vectors go
        when there are STREAM_ROWS or more, a block at a time (read back as a RowFile)."""
        many = folder is not None and len(self.texts) >= STREAM_ROWS
        fresh = _embed(embedder, self.texts, progress, folder / "new.npy" if many else None)
        out = []
        for kind, (source, row) in enumerate(zip(self._source, self._row, strict=True)):
            n = len(source)
            many = folder is not None and n >= STREAM_ROWS
            file = folder / f"{('chunks', 'units')[kind]}.npy" if many else None
            with RowWriter(n, embedder.dim, file) as rows:
                for a in range(0, n, ROW_BLOCK):
                    b = min(a + ROW_BLOCK, n)
                    block = np.zeros((b - a, embedder.dim), dtype=np.float32)
                    for k, name in ((-1, ""), (0, "dense"), (1, "units")):
                        places = np.flatnonzero(source[a:b] == k)
                        if len(places):  # only the rows needed, each source read once
                            at = row[a:b][places]
                            block[places] = fresh[at] if k < 0 else getattr(self.old, name).take(at)
                    rows.write(block)
            # a vector taken from the other index has no group in the one this replaces
            self.sources.append(np.where(source == kind, row, -1))
            out.append(rows.array)
        return out[0], out[1]


def _dense_index(vectors: np.ndarray, old, sources: np.ndarray) -> DenseIndex:
    """An index of `vectors`: an approximate one keeps the groups of `old` (the index its
    rows came from, `sources[i]` the old row of row i or -1) while they stay balanced."""
    if old is None or not old.grouped.approximate:
        return DenseIndex.build(vectors)
    groups = np.full(len(vectors), -1, dtype=np.int64)
    known = sources >= 0
    groups[known] = old.groups(sources[known])
    grouped = sources[groups >= 0]  # the rows of the base: their codes are copied
    codes = old.codes(grouped) if old.grouped.compressed else None
    return DenseIndex.build_in_groups(vectors, old.grouped, groups, codes)


def _previous(
    index_dir: Path,
    embedder: Embedder,
    max_tokens: int,
    full: bool,
    live: StoredIndex | None = None,
) -> tuple[StoredIndex | None, str]:
    """The live generation whose vectors can be re-used, and why notes are cut again, if so.

    A changed cutter re-cuts every note but still re-uses the vector of every piece whose
    text is unchanged.
    """
    if full:
        return None, "full rebuild requested"
    try:
        gen = current_generation(index_dir)
        if gen is None:
            return None, "no index yet"
        if live is not None and live.generation == gen and live.manifest.model == embedder.name:
            old = live
        else:
            old = load_index(index_dir, embedder.name, embedder.dim, None)
    except IndexProblem as e:  # e.g. a garbled CURRENT: this run writes a whole new index
        return None, e.reason
    if old.manifest.encoder != embedder.documents_encoder:
        return None, (
            f"its vectors were made by {old.manifest.encoder} and this run's by "
            f"{embedder.documents_encoder}: every text is embedded again, so the two never mix"
        )
    if old.manifest.chunker != chunker_settings(max_tokens):
        return old, (
            f"the chunker settings changed from {old.manifest.chunker} to "
            f"{chunker_settings(max_tokens)}; every note is cut again"
        )
    return old, ""


def _embed(
    embedder: Embedder, texts: list[str], progress: Progress | None, file: Path | None = None
) -> np.ndarray | RowFile:
    """Vectors of `texts`, in their order; written to the .npy `file` a block at a time, when
    given. Within a block they are sent longest first: where batches are padded (torch,
    without onnxruntime) each pads to texts of about its own length."""
    if progress and texts:
        progress(0, len(texts))
    with RowWriter(len(texts), embedder.dim, file) as rows:
        for first in range(0, len(texts), ROW_BLOCK):
            part = texts[first : first + ROW_BLOCK]
            order = sorted(range(len(part)), key=lambda i: -len(part[i]))
            out = np.zeros((len(part), embedder.dim), dtype=np.float32)
            for start in range(0, len(part), EMBED_BATCH):
                picked = order[start : start + EMBED_BATCH]
                out[picked] = embedder.embed_documents([part[i] for i in picked])
                if progress:
                    progress(first + min(start + EMBED_BATCH, len(part)), len(texts))
            rows.write(out)
    return rows.array


@contextmanager
def _scratch(index_dir: Path) -> Iterator[Path]:
    """A folder for a rewrite's vectors on their way into the new generation, which links
    them; removed after. Named as an unfinished generation is, so one a crash left behind is
    removed with those (store.clean_old_generations)."""
    folder = Path(index_dir) / f"gen-vectors-{os.getpid()}-{time.monotonic_ns()}.tmp"
    try:
        try:
            folder.mkdir(parents=True)
        except OSError as e:
            raise IndexUnwritable(f"cannot write in {index_dir} ({e.strerror or e})") from e
        try:
            yield folder
        except OSError as e:  # a full disk, or a failing one: nothing was switched
            raise IndexUnwritable(
                f"the new index could not be made in {index_dir}: a disk error while its "
                f"vectors were read or written ({e.strerror or e}); the live index is unchanged"
            ) from e
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def index_lock(index_dir: Path, wait: float) -> Iterator[None]:
    """Hold `index/.lock` for one update; IndexBusy after `wait` seconds of waiting,
    IndexUnwritable if the folder cannot hold the lock (a file, read-only)."""
    try:
        Path(index_dir).mkdir(parents=True, exist_ok=True)
        lock = FileLock(Path(index_dir) / ".lock", timeout=wait)
        lock.acquire()
    except Timeout:
        raise IndexBusy(
            f"another `rag index` is updating {index_dir} (lock {index_dir}/.lock held for "
            f"over {wait:.0f}s); try again when it finishes"
        ) from None
    except OSError as e:
        what = "is a file, not a folder" if Path(index_dir).is_file() else f"({e.strerror or e})"
        raise IndexUnwritable(
            f"cannot update the index: {index_dir} {what}; searching an existing index still "
            "works, updating it needs a folder you can write"
        ) from None
    try:
        yield
    finally:
        lock.release()
