"""The index a long-running app serves: re-indexed in the background, swapped in whole.

    live = LiveIndex(settings, embedder)
    live.engine.search("sqs size")      # always a complete generation
    live.reindex_in_background()        # questions keep using the old engine meanwhile
    stop = live.watch()                 # re-index when notes change; stop.set() ends it

Swapping is one reference assignment, so a question sees the old engine or the new one, never
a mix; `update_index` writes the new generation beside the old one before switching it in.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rag.index.build import IndexReport, update_index
from rag.index.embedding import Embedder
from rag.index.store import IndexProblem, load_index
from rag.notes import NotesError, load_notes
from rag.search.engine import Engine, Tuning
from rag.settings import Settings

WATCH_DEBOUNCE_MS = 800  # an editor's save-and-rename bursts become one re-index


@dataclass(frozen=True)
class Status:
    files: int
    chunks: int
    indexed_at: str  # UTC time the live generation was written
    indexing: bool
    stale: bool  # notes on disk differ from what the live generation was built from
    last_report: IndexReport | None
    error: str  # the last re-index failure, if the last attempt failed


class LiveIndex:
    def __init__(self, settings: Settings, embedder: Embedder, tuning: Tuning | None = None):
        self.settings, self.embedder, self.tuning = settings, embedder, tuning or Tuning()
        self.engine = self._load()
        self._busy = threading.Lock()  # one re-index at a time within this process
        self._last: IndexReport | None = None
        self._error = ""

    @classmethod
    def from_engine(cls, settings: Settings, engine: Engine) -> LiveIndex:
        """Serve an engine that is already loaded (no second load of the index)."""
        live = cls.__new__(cls)
        live.settings, live.embedder, live.tuning = settings, engine.embedder, engine.tuning
        live.engine = engine
        live._busy, live._last, live._error = threading.Lock(), None, ""
        return live

    def _load(self) -> Engine:
        s = self.settings
        index = load_index(s.index_dir, self.embedder.name, self.embedder.dim, s.max_chunk_tokens)
        return Engine(index, self.embedder, self.tuning)

    def reindex(self) -> IndexReport | None:
        """Bring the index up to date and swap the engine; None if one is already running."""
        if not self._busy.acquire(blocking=False):
            return None
        try:
            s = self.settings
            report = update_index(s.notes_dir, s.index_dir, self.embedder, s.max_chunk_tokens)
            if report.written:
                self.engine = self._load()  # the swap: one assignment
            self._last, self._error = report, ""
            return report
        except (NotesError, IndexProblem, RuntimeError, OSError) as e:
            self._error = str(e)  # the old engine keeps answering
            return None
        finally:
            self._busy.release()

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
        on_disk = {n.path: n.sha256 for n in notes}
        return on_disk != self.engine.index.manifest.files

    def describe(self) -> str:
        """The status as one line of text for the chat page."""
        st = self.status()
        state = (
            "re-indexing now"
            if st.indexing
            else "stale: notes changed"
            if st.stale
            else "up to date"
        )
        line = f"Index: {st.files} files, {st.chunks} sections, built {st.indexed_at} ({state})"
        return f"{line}; last re-index failed: {st.error}" if st.error else line

    def status(self) -> Status:
        manifest = self.engine.index.manifest
        return Status(
            files=len(manifest.files),
            chunks=manifest.chunks,
            indexed_at=manifest.created,
            indexing=self.indexing,
            stale=self.stale(),
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
        try:
            for changes in watch(
                notes_dir, debounce=debounce_ms, stop_event=stop, watch_filter=_is_note
            ):
                while changes and self.reindex() is None and not stop.is_set():
                    time.sleep(0.2)  # a manual re-index is running: ours follows it
        except (OSError, RuntimeError) as e:  # the folder went away: say so in the status
            self._error = f"stopped watching {notes_dir}: {e}"


def _is_note(_change, path: str) -> bool:
    return path.endswith(".md") and "/." not in path
