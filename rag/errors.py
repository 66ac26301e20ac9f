"""Every error rag means a user to see, under one root; anything else is a bug.

    try:
        answer = ask(engine, question)
    except RagError as e:
        print(f"rag: error: {e}")       # says what is wrong and, where it can, what to do

RagError
  BadInput            a question, setting, flag or file the user gave cannot be used
                      (also a ValueError)
    NotesError        the notes folder cannot be used: missing, not a folder, no notes
  NoteRefused         a path names no note inside the notes folder
  ModelError          the configured embedding model cannot be loaded
  IndexProblem        the index cannot be used; `reason` says why, the message also what to do
    IndexMissing      there is no index yet
    IndexIncompatible built by another model, chunker or format
    IndexCorrupt      a file is missing, damaged or inconsistent
  IndexBusy           another process holds the index lock
  IndexUnwritable     a new generation cannot be written (read-only, disk full, not a folder)
  LLMError            the LLM server gave no usable answer (the extractive one is shown instead)
"""

from __future__ import annotations

import traceback
from pathlib import Path


class RagError(Exception):
    """Root of the errors rag reports as messages; the CLI and the app catch only this."""


class BadInput(RagError, ValueError):
    """Something the user gave (a question, a setting, a flag, a file) cannot be used."""


class NotesError(BadInput):
    """The notes folder cannot be used at all (missing, not a folder, no notes)."""


class NoteRefused(RagError):
    """The path names no note inside the notes folder."""


class ModelError(RagError):
    """The configured model cannot be loaded."""


class IndexProblem(RagError):
    """The index cannot be used: `reason` says what is wrong, the message also what to do."""

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


class IndexBusy(RagError):
    """Another `rag index` holds the lock for longer than we were willing to wait."""


class IndexUnwritable(RagError):
    """The index folder cannot take a new generation; the live one is left as it was."""


class LLMError(RagError):
    """The LLM server could not give an answer; the message says why, in a few words."""


def internal_error(prog: str, e: BaseException) -> str:
    """The message for a bug (any error that is not a RagError): what and where, and how to
    see the traceback."""
    where = traceback.extract_tb(e.__traceback__)[-1]
    return (
        f"{prog}: internal error: {type(e).__name__}: {e} (at {Path(where.filename).name}:"
        f"{where.lineno}); run again with --debug for the traceback"
    )
