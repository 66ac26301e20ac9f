"""Thumbs-down answers, kept as JSON lines to review and to write eval cases from.

    append_feedback(path, feedback_entry(answer))
    # {"question": "max sqs size", "answer": "...", "vote": "down",
    #  "citations": [citation_json...], "time": "2026-...Z"}

The file is `feedback.jsonl` next to the index folder unless `--feedback` / RAG_FEEDBACK
says otherwise. One line per vote, appended; nothing is ever rewritten. A line is not an eval
case: `rag eval` needs the gold lines that do answer the question, which only a person can
give (it says so if handed this file).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from rag.answer.base import Answer
from rag.answer.schema import citation_json
from rag.jsonl import json_line

_WRITE = threading.Lock()  # one writer at a time: every line stays whole


def feedback_entry(answer: Answer) -> dict:
    """A down-vote on `answer`: "question" is what was searched; "asked", if it differs,
    what the user typed (a follow-up such as "and the default?")."""
    entry = {
        "question": answer.searched or answer.question,
        "answer": answer.text,
        "vote": "down",
        "citations": [citation_json(c) for c in answer.citations],
        "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if answer.searched:
        entry["asked"] = answer.question
    return entry


def append_feedback(path: Path, entry: dict) -> None:
    line = json_line(entry)
    with _WRITE:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.write(line)
