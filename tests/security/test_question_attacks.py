"""Attacks through the question and through what rag prints (review rows #21, #28, #65):
lone surrogates and undecodable bytes, terminal escape sequences in notes, and line
separators inside JSON Lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.answer.base import Answer
from rag.answer.pipeline import ask
from rag.cli import main
from rag.console import terminal_safe
from rag.index.build import update_index
from rag.jsonl import json_line, numbered_lines
from rag.quality.evaluate import load_cases
from rag.search.engine import prepare_question
from rag.web.feedback import feedback_entry, record_vote

RAG = str(Path(sys.executable).parent / "rag")
SQS = "sqs \ud800 max message size"  # a JSON "\ud800" arrives as this


def at(settings) -> list[str]:
    return ["--notes", str(settings.notes_dir), "--index", str(settings.index_dir)]


def test_a_lone_surrogate_is_cleaned_from_the_question(aws_engine):
    assert prepare_question(SQS).text == "sqs max message size"
    answer = ask(aws_engine, SQS)
    assert answer.answered and "256" in answer.text


def test_an_undecodable_byte_in_argv_is_answered(aws_settings):
    argv = [RAG, "ask", b"sqs \xff max message size", *at(aws_settings), "--json"]
    done = subprocess.run(argv, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    out = json.loads(done.stdout)
    assert out["answered"] and "256" in out["answer"]


def test_a_batch_goes_on_past_a_bad_line(aws_settings, tmp_path, capsys):
    batch = tmp_path / "batch.jsonl"
    lines = ['{"id": "a", "question": "sqs \\ud800 size"}', '{"id": "b", "question": "  "}']
    lines.append('{"id": "s", "question": "\\udfff"}')  # cleaned to nothing: an error line
    lines.append('{"id": "c", "question": "max sqs message size"}')
    batch.write_text("\n".join(lines) + "\n")
    assert main(["ask", "--batch", str(batch), "--json", *at(aws_settings)]) == 0
    printed = capsys.readouterr().out
    printed.encode("utf-8")  # what a terminal or a pipe takes: no lone surrogate left raw
    out = [json.loads(line) for line in printed.splitlines()]
    assert [o["id"] for o in out] == ["a", "b", "s", "c"]
    assert "answer" in out[0] and "error" in out[1] and "error" in out[2]
    assert "256" in out[3]["answer"]


ESCAPES = "Emu escape fact \x1b]0;pwned\x07 title \x1b[2J clear \x1b[31m red \x9b31m c1"


def test_escape_sequences_in_a_note_reach_the_terminal_as_text(tmp_path, embedder, capsys):
    notes, index = tmp_path / "notes", tmp_path / "index"
    notes.mkdir()
    (notes / "esc.md").write_text(f"# Birds\n\n- {ESCAPES}\n- Swans are white\n")
    update_index(notes, index, embedder, 200)
    for command in ("search", "ask"):
        assert main([command, "emu escape fact", "--notes", str(notes), "--index", str(index)]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
        assert "\\x1b]0;pwned\\x07" in out


def test_terminal_safe_keeps_text_and_layout():
    assert terminal_safe("a\tb\r\nc\nd") == "a\tb\nc\nd"
    assert terminal_safe("x\ry\x00") == "x\\ry\\x00"


def test_line_separators_survive_feedback_and_eval_files(tmp_path):
    question = "what\u2028is\u2029this\x85?"
    path = tmp_path / "feedback.jsonl"
    record_vote(path, feedback_entry(Answer(question, "Not in your notes", False), key="k1"))
    record_vote(path, feedback_entry(Answer("second", "Not in your notes", False), key="k2"))
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2  # any reader sees 2 lines
    first = json.loads(next(numbered_lines(path))[1])
    assert first["question"] == question
    cases = tmp_path / "cases.jsonl"
    gold = [{"path": "a.md", "start_line": 1, "end_line": 1}]
    cases.write_text(json_line({"id": "q1", "question": question, "gold": gold}))
    assert [c.question for c in load_cases(cases)] == [question]


@pytest.mark.parametrize("raw", ["\u2028", "\x85", "\x9b", "\udfff"])
def test_json_line_escapes_what_splitlines_or_a_terminal_would_act_on(raw):
    line = json_line({"q": f"a{raw}b"})
    assert raw not in line and json.loads(line) == {"q": f"a{raw}b"}
