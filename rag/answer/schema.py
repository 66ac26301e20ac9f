"""Answers and hits as JSON: one schema for `rag search/ask --json`, the chat page's
`/ask_json` and the feedback file.

    search_json(question, hits)   # {"question", "hits": [hit_json...], "notices"}
    answer_json(answer)           # {"question", "answer", "answered", "status", "missing",
                                  #  "generator", "citations": [citation_json...], "candidates",
                                  #  "notices"}

"status" is "answered", "partial" (the notes hold the topic, not the asked detail; the
citations are the closest lines) or "not_found"; "missing" lists the asked terms the notes (or
those lines) lack; "answered" is `status == "answered"`.

An LLM's answer adds "cited" (the [n] its text cites) and "uncited"; a follow-up adds
"searched" (the question as it was searched).
"""

from __future__ import annotations

from rag.answer.base import Answer, Citation
from rag.answer.pipeline import Searched
from rag.search.engine import Hit


def hit_json(h: Hit) -> dict:
    c = h.chunk
    return {
        "path": c.path,
        "heading": list(c.heading),
        "start_line": c.start_line,
        "end_line": c.end_line,
        "score": round(h.score, 6),
        "text": c.text,
        "bm25_rank": h.bm25_rank,
        "dense_rank": h.dense_rank,
    }


def citation_json(c: Citation) -> dict:
    return {
        "n": c.n,
        "path": c.path,
        "heading": list(c.heading),
        "start_line": c.start_line,
        "end_line": c.end_line,
        "text": c.text,
    }


def search_json(found: Searched) -> dict:
    """What a search found (`rag search --json`)."""
    out = {"question": found.question, "hits": [hit_json(h) for h in found.hits]}
    out["notices"] = list(found.notices)
    if found.searched != found.question:
        out["searched"] = found.searched
    return out


def answer_json(a: Answer) -> dict:
    out = {
        "question": a.question,
        "answer": a.text,
        "answered": a.answered,
        "status": a.status,
        "missing": list(a.missing),
        "generator": a.generator,
        "citations": [citation_json(c) for c in a.citations],
        "candidates": [hit_json(h) for h in a.candidates],
        "notices": list(a.notices),
    }
    if a.searched:
        out["searched"] = a.searched
    if a.by_llm:
        out["cited"] = list(a.cited)
        out["uncited"] = a.uncited
    return out
