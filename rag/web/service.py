"""What a program may ask of the notes: the operations behind the JSON API (`rag.web.api`)
and the MCP tools (`rag.web.mcp_server`), each returning a model of `rag.answer.schema`.

    service = Service(live, settings)
    service.search("max sqs message size", k=3)        # SearchOut
    service.search("backoff", filters=FiltersIn(where=["tag:infra"]))   # those notes only
    service.ask("and the default?", history=[...])      # AnswerOut, the chat's pipeline
    service.note("aws-notes.md", 1691, 1693)            # NoteOut: exact lines, or NoteRefused
    service.status(); service.reindex()

A bad argument (an empty question, k out of range, a filter that does not parse or that no
note meets, a path outside the notes) is a RagError with a message meant for the caller; each
front turns it into its own error reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rag.answer.base import Exchange
from rag.answer.llm import writer_for
from rag.answer.pipeline import ask, stream_ask
from rag.answer.schema import (
    MAX_K,
    AnswerOut,
    FiltersIn,
    NoteOut,
    ReindexOut,
    SearchOut,
    StatusOut,
    answer_out,
    reindex_out,
    search_out,
)
from rag.errors import BadInput
from rag.index.cutting import split_lines
from rag.index.embedding import model_name
from rag.notes import Folder, Folders, read_note_text
from rag.search.engine import Engine
from rag.search.filters import Where, filtered
from rag.search.live import LiveIndex
from rag.settings import Mode, Settings, check_mode


class Service:
    def __init__(self, live: LiveIndex, settings: Settings) -> None:
        self.live, self.settings = live, settings
        self.links = settings.links

    def search(
        self,
        query: str,
        k: int | None = None,
        mode: str | None = None,
        as_typed: bool = False,
        filters: FiltersIn | None = None,
    ) -> SearchOut:
        """The sections that best match `query`, best first, among the notes `filters` allow."""
        options = self._options(k, mode, as_typed)
        events = stream_ask(self._engine(filters), query, **options)
        return search_out(next(events), self.links)  # type: ignore[arg-type]

    def ask(
        self,
        question: str,
        history: Sequence[Exchange] = (),
        k: int | None = None,
        mode: str | None = None,
        as_typed: bool = False,
        filters: FiltersIn | None = None,
    ) -> AnswerOut:
        """The answer as the chat gives it: an earlier turn makes a short question a follow-up."""
        options = self._options(k, mode, as_typed)
        answer = ask(
            self._engine(filters),
            question,
            history=history,
            writer=writer_for(self.settings.llm),
            **options,
        )
        return answer_out(answer, self.links)

    def note(self, path: str, start: int | None = None, end: int | None = None) -> NoteOut:
        """Lines start..end of a note (all of it by default); NoteRefused outside the notes."""
        lines = split_lines(read_note_text(self.settings.folders, path))
        first = 1 if start is None else start
        last = len(lines) if end is None else min(end, len(lines))
        if first < 1 or first > len(lines):
            raise BadInput(f"{path} has lines 1 to {len(lines)}; start {first} is outside them")
        if last < first:
            raise BadInput(f"end ({end}) is before start ({first})")
        return NoteOut(
            path=path,
            start_line=first,
            end_line=last,
            total_lines=len(lines),
            text="\n".join(lines[first - 1 : last]),
            uri=self.links.uri(path, first, last),
        )

    def status(self) -> StatusOut:
        st, engine = self.live.status(), self.live.current  # never waits for a first build
        model = engine.embedder.name if engine else model_name(Path(self.settings.model))
        folders = self.settings.folders
        resolved = Folders(tuple(Folder(f.name, f.path.resolve()) for f in folders.items))
        return StatusOut(
            notes_dir=str(resolved),
            folders={f.name: str(f.path) for f in resolved.items},
            index_dir=str(self.settings.index_dir.resolve()),
            files=st.files,
            chunks=st.chunks,
            model=model,
            indexed_at=st.indexed_at,
            indexing=st.indexing,
            stale=st.stale,
            lines_pending=st.lines_pending,
            error=st.error,
        )

    def reindex(self) -> ReindexOut:
        """Bring the index up to date now; "busy" if another re-index is running."""
        done = self.live.reindex()
        return reindex_out(done.state, done.report, done.error)

    def _engine(self, filters: FiltersIn | None) -> Engine:
        """The live engine, searching only the notes `filters` allow (the CLI's parser)."""
        if filters is None:
            return self.live.engine
        where = Where.parse(filters.where, filters.since)
        return filtered(self.live.engine, where, self.settings.folders)

    def _options(self, k: int | None, mode: str | None, as_typed: bool) -> dict:
        k = self.settings.top_k if k is None else k
        if not 1 <= k <= MAX_K:
            raise BadInput(f"k must be between 1 and {MAX_K}, not {k}")
        chosen: Mode = check_mode(mode or self.settings.mode)
        return {"k": k, "mode": chosen, "spelling": not as_typed}
