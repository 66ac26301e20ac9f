"""Thumbs-down answers, kept as JSON lines so `rag eval` can turn them into eval cases.

    append_feedback(path, feedback_entry("max sqs size", answer))
    # {"question": "max sqs size", "answer": "...", "vote": "down",
    #  "citations": [{"path", "start_line", "end_line", "heading"}], "time": "2026-...Z"}

The file is `feedback.jsonl` next to the index folder unless `--feedback` / RAG_FEEDBACK
says otherwise. One line per vote, appended; nothing is ever rewritten.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from rag.answer.extractive import Answer
from rag.settings import Settings

_WRITE = threading.Lock()  # one writer at a time: every line stays whole


def default_feedback_path(settings: Settings) -> Path:
    """feedback.jsonl beside the index folder (the project folder, by default)."""
    return settings.index_dir.parent / "feedback.jsonl"


def feedback_entry(question: str, answer: Answer, asked: str | None = None) -> dict:
    """A down-vote on `answer`. `question` is what was searched; `asked`, if different, what
    the user typed (a follow-up such as "and the default?")."""
    entry = {
        "question": question,
        "answer": answer.text,
        "vote": "down",
        "citations": [
            {
                "path": c.path,
                "start_line": c.start_line,
                "end_line": c.end_line,
                "heading": list(c.heading),
            }
            for c in answer.citations
        ],
        "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if asked is not None and asked != question:
        entry["asked"] = asked
    return entry


def append_feedback(path: Path, entry: dict) -> None:
    line = json.dumps(entry, ensure_ascii=False) + "\n"
    with _WRITE:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.write(line)
