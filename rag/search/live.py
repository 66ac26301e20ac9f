"""The engine a program serves: opened (the index built first if missing), kept up to date.

    engine = open_engine(settings)      # load the model and the index once
    live = LiveIndex(settings, engine)  # open_engine(settings, first_pass=True): a server's
    live.engine.search("sqs size")      # always a complete generation
    live.reindex()                      # Reindexed("done" | "busy" | "failed", report, error)
    stop = live.watch()                 # re-index when notes change; stop.set() ends it

Swapping is one reference assignment, so a question sees the old engine or the new one, never
a mix; `update_index` writes the new generation beside the old one before switching it in. A
re-index that fails is retried when a note changes again, or after a back-off that doubles
from RETRY_FIRST to RETRY_MOST seconds; each failure is logged, and the old engine answers.
"""

from __future__ import annotations

import calendar
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag.errors import IndexIncompatible, IndexMissing, IndexProblem, NotesError, RagError
from rag.index.build import IndexReport, update_index
from rag.index.embedding import Embedder, SentenceTransformerEmbedder
from rag.index.store import current_generation, incompatibility, load_index, read_manifest
from rag.notes import fingerprints, load_notes, require_notes, watched
from rag.search.engine import Engine, Tuning
from rag.settings import Settings

log = logging.getLogger(__name__)
WATCH_DEBOUNCE_MS = 800  # an editor's save-and-rename bursts become one re-index
RETRY_FIRST, RETRY_MOST = 1.0, 300.0  # seconds between attempts after a failed re-index
BUSY_WAIT = 0.5  # seconds before trying again while another re-index runs


def time_ago(stamp: str, now: float | None = None) -> str:
    """'just now', '3 min ago', '2 h ago', '4 days ago' for a UTC time as the manifest
    writes it (2026-12-01T09:30:00Z); the stamp itself if it is not one."""
    try:
        then = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return stamp
    seconds = max(0, int((time.time() if now is None else now) - then))
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if unit == 'day' and n > 1 else ''} ago"
    return "just now"


def open_engine(
    settings: Settings, tuning: Tuning | None = None, first_pass: bool = False
) -> Engine:
    """Load the model and the index once; a missing index is built first, and an index cut
    with other settings is cut again (its vectors kept); another model's is refused.

    `first_pass`: a missing index is built from chunk vectors alone, a third of the work, for a
    server whose `LiveIndex.keep_fresh` then adds the line vectors while it answers."""
    require_notes(settings.notes_dir)  # before the model: a wrong --notes fails at once
    embedder = SentenceTransformerEmbedder(settings.model)
    tokens = settings.max_chunk_tokens
    try:
        index = load_index(settings.index_dir, embedder.name, embedder.dim, tokens)
    except (IndexMissing, IndexIncompatible) as e:
        if isinstance(e, IndexIncompatible) and not _only_cutting_changed(settings, embedder):
            raise  # another model or format: re-embedding everything is the user's call
        if isinstance(e, IndexMissing):
            where = (settings.index_dir, settings.notes_dir)
            log.info("No index in %s yet: building it from %s ...", *where)
        else:
            log.info("%s: updating the index (unchanged text keeps its vectors) ...", e.reason)
        lines = not (first_pass and isinstance(e, IndexMissing))
        report = update_index(settings.notes_dir, settings.index_dir, embedder, tokens, lines=lines)
        done = (report.files, report.chunks, report.seconds)
        log.info("Indexed %d files into %d chunks in %.1fs.", *done)
        index = load_index(settings.index_dir, embedder.name, embedder.dim, tokens)
    return Engine(index, embedder, tuning or Tuning())


def _only_cutting_changed(settings: Settings, embedder: Embedder) -> bool:
    """True when the index only needs cutting again: its vectors are still this model's."""
    try:
        gen = current_generation(settings.index_dir)
        manifest = read_manifest(gen) if gen else None
    except IndexProblem:
        return False
    if manifest is None:
        return False
    return incompatibility(manifest, embedder.name, embedder.dim, None) is None


@dataclass(frozen=True)
class Reindexed:
    state: Literal["done", "busy", "failed"]  # busy: another re-index was running
    report: IndexReport | None = None
    error: str = ""


@dataclass(frozen=True)
class Status:
    files: int
    chunks: int
    indexed_at: str  # UTC time the live generation was written
    indexing: bool
    progress: tuple[int, int] | None  # texts embedded so far, of how many, while indexing
    stale: bool  # notes on disk differ from what the live generation was built from
    lines_pending: int  # line vectors a first pass left out, still to embed
    last_report: IndexReport | None
    error: str  # why the last re-index failed, if it did


class LiveIndex:
    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings, self.engine = settings, engine
        self._busy = threading.Lock()  # one re-index at a time within this process
        self._last: IndexReport | None = None
        self._error = ""
        self._progress: tuple[int, int] | None = None  # (texts embedded, of) in this re-index

    def reindex(self) -> Reindexed:
        """Bring the index up to date and swap the engine in, unless one is running already."""
        if not self._busy.acquire(blocking=False):
            return Reindexed("busy")
        try:
            s, engine = self.settings, self.engine
            report = update_index(
                s.notes_dir, s.index_dir, engine.embedder, s.max_chunk_tokens, progress=self._step
            )
            if report.written:
                e = engine.embedder
                index = load_index(s.index_dir, e.name, e.dim, s.max_chunk_tokens)
                self.engine = Engine(index, e, engine.tuning)  # the swap
            self._last, self._error = report, ""
            return Reindexed("done", report)
        except (RagError, OSError) as e:
            self._error = str(e)  # the old engine keeps answering
            bug = not isinstance(e, RagError)  # a disk error, say: keep its traceback
            log.warning("re-indexing %s failed: %s", self.settings.notes_dir, e, exc_info=bug)
            return Reindexed("failed", error=self._error)
        finally:
            self._progress = None
            self._busy.release()

    def _step(self, done: int, total: int) -> None:
        self._progress = (done, total)

    def keep_fresh(self) -> threading.Event:
        """Watch the notes from now on, and catch up at once with edits made while nothing
        was watching (in the background). The returned event stops the watching."""
        stop = self.watch()
        if self.stale() or self.engine.index.lines_pending:
            self.reindex_in_background()
        return stop

    def reindex_in_background(self) -> threading.Thread:
        thread = threading.Thread(target=self.reindex, name="rag-reindex", daemon=True)
        thread.start()
        return thread

    @property
    def indexing(self) -> bool:
        return self._busy.locked()

    def stale(self) -> bool:
        try:
            notes, _ = load_notes(self.settings.notes_dir)
        except NotesError:
            return True
        return fingerprints(notes) != self.engine.index.manifest.files

    def describe(self) -> str:
        """The status as one line of text for the chat page."""
        st = self.status()
        state = "up to date"
        if st.indexing:
            state = "re-indexing now"
            if st.progress:
                state = f"indexing: {st.progress[0]:,}/{st.progress[1]:,} texts embedded"
        elif st.stale:
            state = "stale: notes changed"
        if st.lines_pending:  # a first pass: each section is found by its own vector for now
            state += "; answers improve once every line is embedded"
        notes = f"{st.files} note" + ("" if st.files == 1 else "s")
        when = time_ago(st.indexed_at)
        line = f"Index: {notes}, {st.chunks} sections, updated {when} ({state})"
        return f"{line}; last re-index failed: {st.error}" if st.error else line

    def status(self) -> Status:
        manifest = self.engine.index.manifest
        return Status(
            files=len(manifest.files),
            chunks=manifest.chunks,
            indexed_at=manifest.created,
            indexing=self.indexing,
            progress=self._progress,
            stale=self.stale(),
            lines_pending=self.engine.index.lines_pending,
            last_report=self._last,
            error=self._error,
        )

    def watch(self, debounce_ms: int = WATCH_DEBOUNCE_MS) -> threading.Event:
        """Re-index after notes change, until the returned event is set."""
        stop = threading.Event()
        thread = threading.Thread(
            target=self._watch, args=(stop, debounce_ms), name="rag-watch", daemon=True
        )
        thread.start()
        return stop

    def _watch(self, stop: threading.Event, debounce_ms: int) -> None:
        from watchfiles import watch

        notes_dir = Path(self.settings.notes_dir)
        retry_at: float | None = None  # when to try again without a new change
        delay = RETRY_FIRST
        try:
            for changes in watch(
                notes_dir,
                debounce=debounce_ms,
                stop_event=stop,
                watch_filter=lambda _, path: watched(notes_dir, path),
                rust_timeout=500,
                yield_on_timeout=True,  # an empty set every 0.5 s: time to retry
            ):
                if not changes and (retry_at is None or time.monotonic() < retry_at):
                    continue
                result = self.reindex()
                if result.state == "done":
                    retry_at, delay = None, RETRY_FIRST
                elif result.state == "busy":  # a re-index began before this change: follow it
                    retry_at = time.monotonic() + BUSY_WAIT
                else:
                    retry_at = time.monotonic() + delay
                    delay = min(2 * delay, RETRY_MOST)
        except (OSError, RuntimeError) as e:  # the folder went away: say so in the status
            self._error = f"stopped watching {notes_dir}: {e}"
            log.warning("%s", self._error)
