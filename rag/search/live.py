"""The engine a program serves: opened (the index built first if missing), kept up to date.

    engine = open_engine(settings)      # load the model and the index once
    live = LiveIndex(settings, engine)  # open_engine(settings, first_pass=True): a server's
    live = LiveIndex.first_build(settings)  # no index yet: serve at once, build it meanwhile
    live.engine.search("sqs size")      # always a complete generation (waits for the first)
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
import os
import sys
import threading
import time
from dataclasses import dataclass
from typing import Literal

from rag.errors import IndexIncompatible, IndexMissing, IndexProblem, NotesError, RagError
from rag.index.build import IndexReport, Progress, update_index
from rag.index.embedding import Embedder, SentenceTransformerEmbedder, warm_up
from rag.index.store import current_generation, incompatibility, load_index, read_manifest
from rag.notes import Fingerprinter, require_notes, watched
from rag.search.engine import Engine, Tuning
from rag.settings import Settings

log = logging.getLogger(__name__)
WATCH_DEBOUNCE_MS = 800  # an editor's save-and-rename bursts become one re-index
RETRY_FIRST, RETRY_MOST = 1.0, 300.0  # seconds between attempts after a failed re-index
BUSY_WAIT = 0.5  # seconds before trying again while another re-index runs
PAGE_WAIT = 30.0  # seconds a first build waits for its page to serve, at most


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
    settings: Settings,
    tuning: Tuning | None = None,
    first_pass: bool = False,
    progress: Progress | None = None,
) -> Engine:
    """Load the model and the index once; a missing index is built first, and an index cut
    with other settings is cut again (its vectors kept); another model's is refused.

    `first_pass`: a missing index is built from chunk vectors alone, a third of the work, for a
    server whose `LiveIndex.keep_fresh` then adds the line vectors while it answers.
    `progress(done, total)` follows the texts embedded by that build."""
    require_notes(settings.folders)  # before the model: a wrong --notes fails at once
    embedder = SentenceTransformerEmbedder(settings.model)
    tokens = settings.max_chunk_tokens
    try:
        index = load_index(settings.index_dir, embedder.name, embedder.dim, tokens)
    except (IndexMissing, IndexIncompatible) as e:
        if isinstance(e, IndexIncompatible) and not _only_cutting_changed(settings, embedder):
            raise  # another model or format: re-embedding everything is the user's call
        if isinstance(e, IndexMissing):
            where = (settings.index_dir, settings.folders)
            log.info("No index in %s yet: building it from %s ...", *where)
        else:
            log.info("%s: updating the index (unchanged text keeps its vectors) ...", e.reason)
        lines = not (first_pass and isinstance(e, IndexMissing))
        report = update_index(
            settings.folders,
            settings.index_dir,
            embedder,
            tokens,
            progress=progress,
            lines=lines,
        )
        done = (report.files, report.chunks, report.seconds)
        log.info("Indexed %d files into %d chunks in %.1fs.", *done)
        index = load_index(settings.index_dir, embedder.name, embedder.dim, tokens)
    return Engine(index, embedder, tuning or Tuning())


def serving(settings: Settings, page: bool = False) -> LiveIndex:
    """The live index a server starts with, kept fresh: its index opened (cut again if the
    settings changed), or, when there is none yet, built in the background
    (`LiveIndex.first_build`) so the server answers at once. `page`: a chat page is starting,
    and the first build waits until it serves (`page_up`)."""
    require_notes(settings.folders)  # a wrong --notes fails at once, not in a thread
    if current_generation(settings.index_dir) is None:
        return LiveIndex.first_build(settings, after_page=page)
    engine = open_engine(settings, first_pass=True)
    warm_up(engine.embedder)  # questions through ONNX Runtime from the first one
    live = LiveIndex(settings, engine)
    live.keep_fresh()  # re-index after notes are edited, in the background
    return live


def shut_down(live: LiveIndex) -> None:
    """The end of a server's process: a build in progress is stopped first (`stop`). One
    that will not stop in time is left behind: the process exits at once (the index is
    crash-safe), not through an interpreter shutdown that would abort inside torch."""
    if live.stop():
        return
    log.warning("a re-index did not stop in time; leaving without it (it is redone next start)")
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


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


class _Stopped(Exception):
    """Raised at a build's next progress step once its live index is stopping (`stop`)."""


class LiveIndex:
    def __init__(self, settings: Settings, engine: Engine | None) -> None:
        """`engine` None: the first index is being built (`first_build`); `engine` waits."""
        self.settings, self._engine = settings, engine
        self._ready = threading.Event()  # set once there is an engine, or the first build failed
        if engine is not None:
            self._ready.set()
        self._busy = threading.Lock()  # one re-index at a time within this process
        self._last: IndexReport | None = None
        self._error = ""
        self._progress: tuple[int, int] | None = None  # (texts embedded, of) in this re-index
        self.version = 0  # counts the engines swapped in: what a page shows can be compared
        self._stopping = threading.Event()  # set by `stop`: builds end at their next step
        self._page = threading.Event()  # set by `page_up`: a first build may start
        self._fingerprints = Fingerprinter()  # `stale` reads only the notes that changed

    @classmethod
    def first_build(
        cls, settings: Settings, tuning: Tuning | None = None, after_page: bool = False
    ) -> LiveIndex:
        """A server's live index over notes that have no index yet: returned at once, while a
        first pass (section vectors only) is built in the background; then `keep_fresh` adds
        the line vectors. Questions asked meanwhile wait for the first pass (`engine`), and
        `describe` says how far it is. `after_page`: the build starts once `page_up` says the
        page serves (at most PAGE_WAIT seconds later): the page's start (importing gradio)
        and the build share the cores and the interpreter, and beside the build the page took
        8-11 s instead of 6 on two cores."""
        live = cls(settings, None)
        if not after_page:
            live._page.set()
        live._busy.acquire()  # held until the first pass is in: status says "indexing"
        thread = threading.Thread(
            target=live._build_first, args=(tuning,), name="rag-first-build", daemon=True
        )
        thread.start()
        return live

    def page_up(self) -> None:
        """The page serves: a first build waiting for it starts."""
        self._page.set()

    def _build_first(self, tuning: Tuning | None) -> None:
        try:
            self._page.wait(PAGE_WAIT)
            if self._stopping.is_set():
                raise _Stopped
            engine = open_engine(self.settings, tuning, first_pass=True, progress=self._step)
            self._engine = engine
            self.version += 1
            warm_up(engine.embedder)  # questions through ONNX Runtime from the first one
        except _Stopped:
            self._error = "stopped before the first index was built"
        except (RagError, OSError) as e:
            self._error = f"the first index could not be built: {e}"
            log.error("%s", self._error, exc_info=not isinstance(e, RagError))
        finally:
            self._progress = None
            self._busy.release()
            self._ready.set()
        if self._stopping.is_set():
            return
        if self._engine is not None:
            self.keep_fresh()  # the line vectors, then the watch
        else:  # watch anyway: fixing the notes (say, a permission) retries the build
            self.watch()

    @property
    def engine(self) -> Engine:
        """The newest complete generation. While the first index is built this waits for it;
        if that build failed, it raises IndexProblem with the reason."""
        self._ready.wait()
        engine = self._engine
        if engine is None:
            raise IndexProblem(self._error or "the first index is not built yet")
        return engine

    @property
    def current(self) -> Engine | None:
        """The engine now, without waiting: None while the first index is built."""
        return self._engine

    @property
    def ready(self) -> bool:
        """True once questions can be answered (or the first build has failed, which
        `engine` then raises)."""
        return self._ready.is_set()

    def wait_ready(self, seconds: float) -> bool:
        """Wait at most `seconds` for the first index; True once it is in (or failed)."""
        return self._ready.wait(seconds)

    def reindex(self) -> Reindexed:
        """Bring the index up to date and swap the engine in, unless one is running already."""
        if self._stopping.is_set():
            return Reindexed("failed", error="stopped: the server is shutting down")
        if not self._busy.acquire(blocking=False):
            return Reindexed("busy")
        try:
            s, engine = self.settings, self._engine
            if engine is None:  # the first build failed: it is tried again, whole
                embedder: Embedder = SentenceTransformerEmbedder(s.model)
                tuning = Tuning()
            else:
                embedder, tuning = engine.embedder, engine.tuning
            known = engine.index if engine is not None else None
            report = update_index(
                s.folders,
                s.index_dir,
                embedder,
                s.max_chunk_tokens,
                progress=self._step,
                live=known,
            )
            if report.written or engine is None:
                e = embedder  # an edit's delta is read; the base's files were read before
                index = load_index(s.index_dir, e.name, e.dim, s.max_chunk_tokens, known)
                self._engine = Engine(index, e, tuning)  # the swap
                self.version += 1
            self._last, self._error = report, ""
            return Reindexed("done", report)
        except _Stopped:
            return Reindexed("failed", error="stopped: the server is shutting down")
        except (RagError, OSError) as e:
            self._error = str(e)  # the old engine keeps answering
            bug = not isinstance(e, RagError)  # a disk error, say: keep its traceback
            log.warning("re-indexing %s failed: %s", self.settings.folders, e, exc_info=bug)
            return Reindexed("failed", error=self._error)
        finally:
            self._progress = None
            self._busy.release()

    def _step(self, done: int, total: int) -> None:
        if self._stopping.is_set():
            raise _Stopped
        self._progress = (done, total)

    def stop(self, timeout: float = 30.0) -> bool:
        """End a build or re-index in progress at its next step (one batch of texts embedded;
        what it wrote so far is an unfinished generation, cleaned up by the next run) and
        start no other; True once none runs, False if one still did after `timeout` seconds.
        For a server on its way out: a process that exits while a thread is inside torch
        aborts ("terminate called without an active exception")."""
        self._stopping.set()
        self._page.set()  # a first build waiting for its page ends at once
        if not self._busy.acquire(timeout=timeout):
            return False
        self._busy.release()
        return True

    def keep_fresh(self) -> threading.Event:
        """Watch the notes from now on, and catch up at once with edits made while nothing
        was watching (in the background). The returned event stops the watching."""
        stop = self.watch()
        if self.stale() or self.current is None or self.current.index.lines_pending:
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
        engine = self._engine
        if engine is None:  # nothing indexed yet: not stale, unbuilt
            return False
        try:
            return self._fingerprints(self.settings.folders) != engine.index.manifest.files
        except NotesError:
            return True

    def describe(self) -> str:
        """The status as one line of text for the chat page."""
        st = self.status()
        if self._engine is None:  # the first index: no sections to count yet
            if st.error:
                return f"Index: none yet; {st.error}"
            done = "loading the embedding model"
            if st.progress:
                done = f"{st.progress[0]:,}/{st.progress[1]:,} texts embedded"
            return (
                f"Index: building the first index of your notes ({done}); "
                "questions are answered as soon as it is in"
            )
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
        engine = self._engine
        if engine is None:  # the first index is being built (or its build failed)
            return Status(0, 0, "", self.indexing, self._progress, False, 0, None, self._error)
        manifest = engine.index.manifest
        return Status(
            files=len(manifest.files),
            chunks=manifest.chunks,
            indexed_at=manifest.created,
            indexing=self.indexing,
            progress=self._progress,
            stale=self.stale(),
            lines_pending=engine.index.lines_pending,
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

        folders = self.settings.folders
        retry_at: float | None = None  # when to try again without a new change
        delay = RETRY_FIRST
        try:
            for changes in watch(
                *(f.path for f in folders.items),
                debounce=debounce_ms,
                stop_event=stop,
                watch_filter=lambda _, path: watched(folders, path),
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
            self._error = f"stopped watching {folders}: {e}"
            log.warning("%s", self._error)
