"""Votes on answers, kept as JSON lines to review, to re-check, and to write eval cases from.

    record_vote(path, feedback_entry(answer, "down", reason="Wrong lines", key=turn.key))
    record_vote(path, None, key=turn.key)          # the vote taken back: its line goes
    # {"id": "3f2a...", "question": "max sqs size", "answer": "...", "vote": "down",
    #  "reason": "Wrong lines", "citations": [citation_json...], "time": "2026-...Z"}
    load_votes(path)                               # the entries, oldest first

The file is `feedback.jsonl` next to the index folder unless `--feedback` / RAG_FEEDBACK
says otherwise. One line per answer voted on: a new vote on the same answer replaces its line,
taking a vote back removes it. The file is rewritten whole into a temporary file and renamed
over the old, so a crash leaves the old file or the new one, never half of either.

A line is not an eval case: `rag eval` needs the gold lines that do answer the question, which
only a person can give (it says so if handed this file). The note viewer lets them: while a
down-vote is in the file, it offers "These lines answer my question" for the newest one
(`mark_gold` adds the lines to its "gold"). `rag eval --feedback --cases` then writes each
down-vote with gold lines, or whose reason is "Should say not in my notes" (gold: none), as an
eval case (`eval_cases`). `rag eval --feedback` asks each voted question again and says
whether its answer still cites the lines that were voted on.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from rag.answer.base import Answer
from rag.answer.schema import citation_json
from rag.errors import BadInput
from rag.jsonl import json_line, numbered_lines

Vote = Literal["up", "down"]
# The chat's vote buttons: the thumbs, then the reasons a down-vote can give (a flag menu).
NOT_ANSWERED = "Should say not in my notes"
REASONS = ("Wrong lines", "Missed part of the answer", NOT_ANSWERED)
_WRITE = threading.Lock()  # one writer at a time: every line stays whole


def feedback_entry(answer: Answer, vote: Vote = "down", reason: str = "", key: str = "") -> dict:
    """A vote on `answer`: "question" is what was searched; "asked", if it differs, what the
    user typed (a follow-up such as "and the default?"); "id" names the answer, so a later
    vote on it replaces this one."""
    entry = {"id": key} if key else {}
    entry |= {
        "question": answer.searched or answer.question,
        "answer": answer.text,
        "vote": vote,
        "citations": [citation_json(c) for c in answer.citations],
        "time": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    if reason:
        entry["reason"] = reason
    if answer.searched:
        entry["asked"] = answer.question
    return entry


def record_vote(path: Path, entry: dict | None, key: str = "") -> None:
    """Keep `entry` in the file, in place of any earlier vote on the same answer (`key`, or
    the entry's "id"); with `entry` None, only remove that earlier vote."""
    key = key or (entry or {}).get("id", "")
    with _WRITE:
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = _lines(path)
        kept = [
            line
            for line in lines
            if not key or not line.strip() or _id(line) != key  # other answers' lines, as they are
        ]
        gold = [g for line in lines if key and _id(line) == key for g in _gold(line)]
        if entry is not None and gold and entry.get("vote") == "down":
            entry = entry | {"gold": gold}  # a new reason keeps the lines marked in the viewer
        if entry is not None:
            kept.append(json_line(entry))
        _replace(path, kept)


def _replace(path: Path, lines: list[str]) -> None:
    """The file's content, replaced whole: a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text("".join(lines), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def newest_down_vote(path: Path | None) -> dict | None:
    """The down-vote voted or marked last (the file's last down-vote line), or None (no
    file, none in it, or a file that is not votes: the viewer then offers nothing)."""
    if path is None:
        return None
    try:
        votes = load_votes(path) if path.is_file() else []
    except BadInput:
        return None
    down = [v for v in votes if v.get("vote") == "down" and v.get("id")]
    return down[-1] if down else None


def mark_gold(path: Path, key: str, note: str, start: int, end: int) -> dict | None:
    """Add lines start..end of `note` to the gold lines of the vote `key` (once), the entry
    moved to the end of the file (the newest); the entry, or None when there is no such vote."""
    with _WRITE:
        lines, found = _lines(path), None
        for i, line in enumerate(lines):
            if line.strip() and _id(line) == key:
                found = i
        if found is None:
            return None
        entry = json.loads(lines[found])
        span = {"path": note, "start_line": start, "end_line": end}
        gold = [g for g in entry.get("gold", []) if isinstance(g, dict)]
        entry["gold"] = gold if span in gold else [*gold, span]
        kept = [line for i, line in enumerate(lines) if i != found] + [json_line(entry)]
        _replace(path, kept)
    return entry


def eval_cases(votes: list[dict]) -> list[dict]:
    """The down-votes that say what the answer should have been, as eval cases (the schema
    of eval/questions.jsonl): gold lines marked in the viewer, or "not in my notes" (gold
    none). Each case's id is made from its vote's, so a later run gives the same ids."""
    cases = []
    for v in votes:
        gold = v.get("gold") or []
        if v.get("vote") != "down" or not (gold or v.get("reason") == NOT_ANSWERED):
            continue
        key = str(v.get("id") or len(cases))
        case = {"id": f"feedback-{key[:12]}", "question": str(v.get("question", ""))}
        cases.append(case | {"gold": gold, "type": "feedback"})
    return cases


def load_votes(path: Path) -> list[dict]:
    """The votes in the file, oldest first; BadInput naming the line that is not one."""
    if not path.is_file():
        raise BadInput(f"no feedback file at {path}: vote on an answer in the chat first")
    votes = []
    for n, line in enumerate(_lines(path), 1):  # numbered as the file's lines
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise BadInput(f"{path} line {n} is not JSON") from None
        if not isinstance(entry, dict) or entry.get("vote") not in ("up", "down"):
            raise BadInput(f'{path} line {n} is not a vote (no "vote": "up" or "down")')
        votes.append(entry)
    return votes


def _lines(path: Path) -> list[str]:
    """The file's lines, each ending in "\n" (a hand-edited last line may not)."""
    if not path.is_file():
        return []
    try:
        return [line if line.endswith("\n") else f"{line}\n" for _, line in numbered_lines(path)]
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not UTF-8 text: move it aside to start a new one") from None


def _gold(line: str) -> list:
    try:
        gold = json.loads(line).get("gold", [])
    except (json.JSONDecodeError, AttributeError):
        return []
    return gold if isinstance(gold, list) else []


def _id(line: str) -> str:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return ""
    return entry.get("id", "") if isinstance(entry, dict) else ""
