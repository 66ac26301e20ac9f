"""rag: question answering over your own markdown notes, with cited lines.

    from rag import Settings, open_engine, ask
    engine = open_engine(Settings.from_env(notes_dir="notes"))
    answer = ask(engine, "what is the default visibility timeout?")
    answer.text, answer.citations[0].location

The stages, in data-flow order: rag.notes -> rag.index (cut, embed, store) -> rag.search ->
rag.answer (the one ask pipeline) -> rag.web (the chat page) and rag.cli; rag.quality measures.
Names are imported on first use, so `import rag` loads no model, FAISS or Gradio.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "Settings": "rag.settings",
    "RagError": "rag.errors",
    "open_engine": "rag.search.live",
    "Engine": "rag.search.engine",
    "Hit": "rag.search.engine",
    "Answer": "rag.answer.base",
    "Exchange": "rag.answer.base",
    "ask": "rag.answer.pipeline",
    "stream_ask": "rag.answer.pipeline",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
