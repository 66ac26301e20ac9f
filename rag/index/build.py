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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from rag.errors import IndexBusy, IndexProblem, IndexUnwritable
from rag.index.cutting import Chunk, chunk_note
from rag.index.dense import DenseIndex
from rag.index.embedding import Embedder
from rag.index.store import (
    Manifest,
    StoredIndex,
    chunker_settings,
    clean_old_generations,
    current_generation,
    load_index,
    unit_counts,
    verified_at_load,
    verify_generation,
    write_generation,
)
from rag.notes import Folders, Note, Skipped, fingerprints, require_notes

log = logging.getLogger(__name__)
EMBED_BATCH = 256  # texts per progress step
Progress = Callable[[int, int], None]  # (done, total) texts embedded so far


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
) -> IndexReport:
    started = time.perf_counter()
    with nullcontext() if dry_run else index_lock(index_dir, lock_wait):
        # Read under the lock: a note saved while this run waited for it is indexed as saved.
        notes, skipped = require_notes(notes)
        if not dry_run:
            clean_old_generations(index_dir)  # what a crashed or failed run left
        old, reason = _previous(index_dir, embedder, max_tokens, full, verify=not dry_run)
        old_files = old.manifest.files if old and not reason else {}
        chunks, changed_files = _chunks(notes, old, old_files, embedder, max_tokens)
        vectors = VectorPlan(old, chunks, lines)
        report = _report(notes, skipped, old, chunks, vectors, changed_files, reason, dry_run)
        same = old is not None and [c.id for c in chunks] == [c.id for c in old.chunks]
        whole = old is not None and (not lines or old.lines_pending == 0)
        if dry_run or (same and whole and old_files == fingerprints(notes)):
            report.seconds = time.perf_counter() - started
            return report
        chunk_vectors, unit_vectors = vectors.build(embedder, progress)
        manifest = Manifest(
            model=embedder.name,
            dim=embedder.dim,
            encoder=embedder.documents_encoder,
            chunker=chunker_settings(max_tokens),
            files=fingerprints(notes),
            chunks=len(chunks),
            units=len(unit_vectors),
            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        dense, units = DenseIndex.build(chunk_vectors), DenseIndex.build(unit_vectors)
        gen = write_generation(index_dir, chunks, dense, units, manifest, vectors.counts)
        report.written = True
        report.seconds = time.perf_counter() - started
        log.debug("wrote %s: %d chunks, %d embedded", gen.name, report.chunks, report.embedded)
        return report


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
    notes: list[Note], old: StoredIndex | None, old_files: dict, embedder: Embedder, tokens: int
) -> tuple[list[Chunk], list[str]]:
    """Every chunk of the notes: kept from the old index for unchanged files, else cut anew."""
    old_by_path: dict[str, list[Chunk]] = {}
    for chunk in old.chunks if old else []:
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


def vector_texts(
    chunks: list[Chunk], counts: np.ndarray | None = None
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(hash, text) of every chunk vector and every unit vector, in index row order; `counts`:
    how many unit vectors each chunk has (all of its units, or none), when not all."""
    chunk_items = [(c.content_hash, c.indexed_text) for c in chunks]
    unit_items = [
        (c.unit_hash(u), c.unit_indexed_text(u))
        for i, c in enumerate(chunks)
        if counts is None or counts[i]
        for u in c.vector_units
    ]
    return chunk_items, unit_items


class VectorPlan:
    """Which vectors of a new generation are re-used (by text hash) and which are embedded;
    without `lines`, chunk vectors only (a first pass)."""

    def __init__(self, old: StoredIndex | None, chunks: list[Chunk], lines: bool = True) -> None:
        self.old = old
        self.counts = unit_counts(chunks) if lines else np.zeros(len(chunks), dtype=np.int64)
        self.chunk_items, self.unit_items = vector_texts(chunks, self.counts)
        self.old_rows: dict[str, int] = {}  # hash -> row in old chunk rows + old unit rows
        if old:
            old_chunks, old_units = vector_texts(old.chunks, old.unit_counts)
            for row, (h, _) in enumerate([*old_chunks, *old_units]):
                self.old_rows.setdefault(h, row)
        self.missing = {  # hash -> text, for text no old vector was made from
            h: t for h, t in [*self.chunk_items, *self.unit_items] if h not in self.old_rows
        }
        self.new_chunks = len({h for h, _ in self.chunk_items if h in self.missing})

    def build(self, embedder: Embedder, progress: Progress | None) -> tuple[np.ndarray, ...]:
        fresh = _embed(embedder, list(self.missing.values()), progress)
        fresh_rows = {h: i for i, h in enumerate(self.missing)}
        old_all = np.zeros((0, embedder.dim), dtype=np.float32)
        if self.old_rows:
            old_all = np.concatenate([self.old.dense.vectors(), self.old.units.vectors()])

        def gather(items: list[tuple[str, str]]) -> np.ndarray:
            out = np.zeros((len(items), embedder.dim), dtype=np.float32)
            for i, (h, _) in enumerate(items):
                out[i] = fresh[fresh_rows[h]] if h in fresh_rows else old_all[self.old_rows[h]]
            return out

        return gather(self.chunk_items), gather(self.unit_items)


def _previous(
    index_dir: Path, embedder: Embedder, max_tokens: int, full: bool, verify: bool
) -> tuple[StoredIndex | None, str]:
    """The live generation whose vectors can be re-used, and why notes are cut again, if so.

    A changed cutter re-cuts every note but still re-uses the vector of every piece whose
    text is unchanged.
    """
    if full:
        return None, "full rebuild requested"
    try:
        if current_generation(index_dir) is None:
            return None, "no index yet"
        old = load_index(index_dir, embedder.name, embedder.dim, None)
    except IndexProblem as e:  # e.g. a garbled CURRENT: this run writes a whole new index
        return None, e.reason
    if old.manifest.encoder != embedder.documents_encoder:
        return None, (
            f"its vectors were made by {old.manifest.encoder} and this run's by "
            f"{embedder.documents_encoder}: every text is embedded again, so the two never mix"
        )
    check = verify and not verified_at_load(old.manifest)  # a small one was, by load_index
    problems = verify_generation(old.generation) if check else []
    if problems:
        return None, f"the live index is damaged ({problems[0]})"
    if old.manifest.chunker != chunker_settings(max_tokens):
        return old, (
            f"the chunker settings changed from {old.manifest.chunker} to "
            f"{chunker_settings(max_tokens)}; every note is cut again"
        )
    return old, ""


def _embed(embedder: Embedder, texts: list[str], progress: Progress | None) -> np.ndarray:
    """Vectors of `texts`, in their order. They are sent longest first: where batches are
    padded (torch, without onnxruntime) each pads to texts of about its own length."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    if progress and texts:
        progress(0, len(texts))
    for start in range(0, len(texts), EMBED_BATCH):
        rows = order[start : start + EMBED_BATCH]
        out[rows] = embedder.embed_documents([texts[i] for i in rows])
        if progress:
            progress(min(start + EMBED_BATCH, len(texts)), len(texts))
    return out


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
