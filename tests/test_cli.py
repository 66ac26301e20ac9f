"""The `rag` command: JSON schemas, batch mode, help, and every kind of bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import main
from rag.index.store import current_generation

HIT_KEYS = {"path", "heading", "start_line", "end_line", "score", "text"}
CITATION_KEYS = {"n", "path", "heading", "start_line", "end_line", "text", "uri"}


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def at(settings):
    return ["--notes", str(settings.notes_dir), "--index", str(settings.index_dir)]


def test_search_json_schema(capsys, aws_settings):
    code, out, _ = run(
        capsys, "search", "max sqs message size", "-k", "3", "--json", *at(aws_settings)
    )
    assert code == 0
    result = json.loads(out)
    assert result["question"] == "max sqs message size"
    assert len(result["hits"]) == 3
    for hit in result["hits"]:
        assert set(hit) >= HIT_KEYS
        assert hit["path"] == "aws-notes.md"
        assert all(isinstance(h, str) for h in hit["heading"])
        assert 1 <= hit["start_line"] <= hit["end_line"]
    scores = [h["score"] for h in result["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_ask_json_schema(capsys, aws_settings):
    question = "What is the maximum size of an SQS message?"
    code, out, _ = run(capsys, "ask", question, "--json", *at(aws_settings))
    assert code == 0
    result = json.loads(out)
    assert {"question", "answer", "answered", "citations"} <= set(result)
    assert result["answered"] is True and "256KB" in result["answer"]
    assert [c["n"] for c in result["citations"]] == list(range(1, len(result["citations"]) + 1))
    for c in result["citations"]:
        assert set(c) == CITATION_KEYS
    assert result["citations"][0]["heading"][-1] == "SQS -- Simple queueing service"


@pytest.mark.parametrize("command", ["search", "ask"])
def test_batch_keeps_input_order_and_ids(capsys, aws_settings, tmp_path, command):
    batch = tmp_path / "q.jsonl"
    rows = [
        {"id": "b", "question": "lambda max timeout", "type": "ignored"},
        {"id": "a", "question": "   "},
        {"id": "c", "question": "what is imds"},
    ]
    batch.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code, out, _ = run(capsys, command, "--batch", str(batch), "--json", *at(aws_settings))
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in results] == ["b", "a", "c"]
    assert "empty" in results[1]["error"]
    assert ("hits" in results[2]) if command == "search" else ("citations" in results[2])


def test_readable_output_names_heading_and_lines(capsys, aws_settings):
    _, out, _ = run(capsys, "ask", "max sqs message size", *at(aws_settings))
    assert "Sources:" in out
    assert "SQS -- Simple queueing service" in out and "aws-notes.md:1693" in out


def test_index_json_reports_counts_and_skips(capsys, tmp_path):
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "a.md").write_text("# A\n\nSQS keeps messages for four days.\n")
    (notes / "sub" / "b.md").write_text("# B\n\n## Lambda\n\n- timeout 900s max\n")
    (notes / "empty.md").write_text("")
    (notes / "latin.md").write_bytes("caf\xe9 na\xefve".encode("latin-1"))
    (notes / "blob.md").write_bytes(b"\x89PNG\x00\x00")
    code, out, _ = run(
        capsys, "index", "--json", "--notes", str(notes), "--index", str(tmp_path / "ix")
    )
    assert code == 0
    report = json.loads(out)
    assert report["files"] == 2 and report["chunks"] == 2 and report["embedded"] == 2
    assert report["removed"] == 0 and report["seconds"] > 0
    reasons = {s["path"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"empty.md", "latin.md", "blob.md"}
    assert "empty" in reasons["empty.md"] and "UTF-8" in reasons["latin.md"]
    assert "binary" in reasons["blob.md"]


def test_missing_index_is_built_on_first_use(capsys, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "n.md").write_text("# Queues\n\nSQS messages are at most 256KB.\n")
    index = tmp_path / "index"
    code, out, err = run(
        capsys, "search", "sqs size", "--json", "--notes", str(notes), "--index", str(index)
    )
    assert code == 0 and "No index" in err and "building" in err
    assert json.loads(out)["hits"][0]["heading"] == ["Queues"]
    assert current_generation(index) is not None


def test_prepare_makes_the_encoders_once(capsys, tmp_path, monkeypatch):
    """`make install` runs it, so a newcomer's first index and question find them made."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    code, out, _ = run(capsys, "prepare", "--json")
    ready = json.loads(out)
    assert code == 0 and ready["questions"] == "onnx" and ready["problems"] == []
    assert ready["notes"].startswith("onnx-int8-") and ready["cache"] == str(tmp_path / "rag/onnx")
    made = {f: f.stat().st_mtime_ns for f in (tmp_path / "rag" / "onnx").iterdir()}
    assert len(made) == 2  # the export and its int8 copy
    code, out, _ = run(capsys, "prepare")
    assert code == 0 and "questions through ONNX Runtime, note text through its int8 copy" in out
    assert {f: f.stat().st_mtime_ns for f in (tmp_path / "rag" / "onnx").iterdir()} == made


def test_a_question_from_the_terminal_never_loads_torch(aws_settings):
    """Once the encoders are made (the index fixture made them in the user's cache), `rag ask`
    answers without importing torch or sentence-transformers, 5-6 s of every start."""
    argv = ["ask", "what is the maximum sqs message size?", "--json", *at(aws_settings)]
    code = f"""
import sys
from rag.cli import main
assert main({argv!r}) == 0
print([m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules])
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    answer, loaded = run.stdout.strip().splitlines()
    assert loaded == "[]", run.stderr
    assert json.loads(answer)["citations"][0]["path"] == "aws-notes.md"


def test_empty_question_is_refused_without_search(capsys, aws_settings):
    code, out, err = run(capsys, "ask", " \t\n", *at(aws_settings))
    assert code == 2 and out == ""
    assert "question is empty" in err


def test_huge_question_is_truncated_with_a_notice(capsys, aws_settings):
    code, out, _ = run(capsys, "search", "sqs " * 1000, "--json", *at(aws_settings))
    result = json.loads(out)
    assert code == 0 and len(result["question"]) == 2000
    assert "cut to its first 2000" in result["notices"][0]


def test_control_characters_are_stripped(capsys, aws_settings):
    code, out, _ = run(
        capsys, "search", "sqs\x00 message\x1b[31m size\x07", "--json", *at(aws_settings)
    )
    assert code == 0
    assert json.loads(out)["question"] == "sqs message [31m size"


def test_missing_notes_folder_is_a_clear_error(capsys, tmp_path):
    missing = tmp_path / "nowhere"
    code, _, err = run(capsys, "index", "--notes", str(missing), "--index", str(tmp_path / "i"))
    assert code == 2 and f"notes folder {missing} does not exist" in err


def test_empty_notes_folder_is_a_clear_error(capsys, tmp_path):
    (tmp_path / "notes").mkdir()
    code, _, err = run(
        capsys, "index", "--notes", str(tmp_path / "notes"), "--index", str(tmp_path / "i")
    )
    assert code == 2 and "no usable markdown notes" in err


def test_corrupt_index_is_named_with_the_fix(capsys, aws_settings, tmp_path):
    import shutil

    index = tmp_path / "index"
    shutil.copytree(aws_settings.index_dir, index)
    (current_generation(index) / "dense.faiss").write_bytes(b"garbage")
    code, _, err = run(
        capsys, "search", "sqs", "--notes", str(aws_settings.notes_dir), "--index", str(index)
    )
    assert code == 2 and "dense.faiss" in err and "rag index --full" in err


@pytest.mark.parametrize("command", ["index", "search", "ask", "eval", "prepare"])
def test_every_command_has_help_with_an_example(capsys, command):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "examples:" in out and f"rag {command}" in out
    assert "--notes" in out and "--index" in out


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "rag"
    rag = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True)
    assert "index" in rag.stdout and "search" in rag.stdout and "ask" in rag.stdout


def test_index_dry_run_writes_nothing(capsys, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\n- SQS keeps messages for four days\n")
    index = tmp_path / "index"
    code, out, _ = run(
        capsys, "index", "--dry-run", "--json", "--notes", str(notes), "--index", str(index)
    )
    report = json.loads(out)
    assert code == 0 and report["dry_run"] and not report["written"]
    assert report["embedded"] == 1 and report["changed_files"] == ["a.md"]
    assert not index.exists() or not any(index.iterdir())


def test_ask_reads_a_followup_with_the_history_file(capsys, aws_settings, tmp_path):
    code, out, _ = run(capsys, "ask", "lambda max timeout", "--json", *at(aws_settings))
    history = tmp_path / "turns.jsonl"
    history.write_text(out)  # `rag ask --json` lines are history lines
    code, out, _ = run(
        capsys, "ask", "and the default?", "--history", str(history), "--json", *at(aws_settings)
    )
    result = json.loads(out)
    assert code == 0 and result["question"] == "and the default?"
    assert result["searched"] == "lambda max timeout the default?"
    assert any("read as a follow-up" in n for n in result["notices"])
    alone = json.loads(run(capsys, "ask", "and the default?", "--json", *at(aws_settings))[1])
    assert "searched" not in alone


def test_a_bad_history_file_is_named(capsys, aws_settings, tmp_path):
    history = tmp_path / "turns.jsonl"
    history.write_text('{"answer": "no question"}\n')
    code, _, err = run(capsys, "ask", "x", "--history", str(history), *at(aws_settings))
    assert code == 2 and f"{history} line 1 is not a JSON object with 'question'" in err


def test_chat_keeps_the_conversation(capsys, aws_settings, monkeypatch):
    import io

    turns = "lambda max timeout\nand the default?\n/new\nand the default?\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(turns))
    code, out, err = run(capsys, "chat", *at(aws_settings))
    assert code == 0 and out.count("Sources:") + out.count("Nearest sections:") == 3
    # the second question leans on the first; after /new the third has nothing to lean on
    assert err.count('read as a follow-up: searched for "lambda max timeout the default?"') == 1


def test_index_check_reads_every_file(capsys, aws_settings, tmp_path):
    import shutil

    index = tmp_path / "index"
    shutil.copytree(aws_settings.index_dir, index)
    args = ["index", "--check", "--notes", str(aws_settings.notes_dir), "--index", str(index)]
    code, out, _ = run(capsys, *args)
    assert code == 0 and "every file matches its checksum" in out
    gen = current_generation(index)
    data = bytearray((gen / "dense.faiss").read_bytes())
    data[-5] ^= 0xFF  # the same size: only the checksum tells
    (gen / "dense.faiss").write_bytes(bytes(data))
    code, out, _ = run(capsys, *args, "--json")
    assert code == 1
    assert json.loads(out)["problems"] == [f"{gen / 'dense.faiss'} is damaged (checksum mismatch)"]


def test_an_internal_bug_is_not_passed_off_as_a_user_error(capsys, aws_settings, monkeypatch):
    def broken(*args):
        raise ValueError("a bug, not the user's doing")

    monkeypatch.setattr("rag.console.search_text", broken)
    code, _, err = run(capsys, "search", "sqs", *at(aws_settings))
    assert code == 1 and "rag: internal error: ValueError: a bug" in err and "--debug" in err
    with pytest.raises(ValueError, match="a bug"):
        main(["search", "sqs", "--debug", *at(aws_settings)])


def test_citations_open_in_the_chosen_editor(capsys, aws_settings):
    argv = ["ask", "max sqs message size", "--json", "--editor", "obsidian", *at(aws_settings)]
    code, out, _ = run(capsys, *argv)
    vault = aws_settings.notes_dir.resolve().name
    assert code == 0
    for c in json.loads(out)["citations"]:
        assert c["uri"] == f"obsidian://open?vault={vault}&file=aws-notes.md"
    code, _, err = run(capsys, *argv[:-4], "--editor", "javascript:alert(1)", *at(aws_settings))
    assert code == 2 and "would run code" in err


def test_terminal_locations_are_editor_hyperlinks(aws_engine, aws_settings):
    from rag import console

    hits = aws_engine.search("max sqs message size", k=1)
    c = hits[0].chunk
    text = console.search_text("q", hits, aws_settings.links)
    uri = aws_settings.links.uri(c.path, c.start_line)
    assert f"\x1b]8;;{uri}\x1b\\{c.location}\x1b]8;;\x1b\\" in text  # OSC 8
    assert "\x1b" not in console.search_text("q", hits)  # not a terminal: plain text


def test_eval_feedback_asks_the_voted_questions_again(capsys, aws_settings, tmp_path):
    """A vote whose answer is today's is "same"; one that cited other lines, "CHANGED"."""
    from rag.answer.pipeline import ask
    from rag.search.live import open_engine
    from rag.web.feedback import feedback_entry, mark_gold, record_vote

    engine = open_engine(aws_settings)
    right = ask(engine, "What is the maximum size of an SQS message?")
    wrong = ask(engine, "what is the default visibility timeout?")
    wrong.question, wrong.searched = right.question, ""  # as if it had cited other lines
    path = tmp_path / "feedback.jsonl"
    record_vote(path, feedback_entry(right, "up", key="a"))
    record_vote(path, feedback_entry(wrong, "down", "Wrong lines", key="b"))
    code, out, _ = run(capsys, "eval", "--feedback", str(path), *at(aws_settings))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("same    up ") and "SQS message" in lines[0]
    assert lines[1].startswith("CHANGED down ") and lines[1].endswith("(Wrong lines)")
    assert lines[2] == (
        "2 votes: 1 of 1 down-voted answers now cite other lines; 0 of 1 up-voted answers changed"
    )
    code, out, _ = run(capsys, "eval", "--feedback", str(path), "--json", *at(aws_settings))
    rows = json.loads(out)
    assert [(r["vote"], r["same"]) for r in rows] == [("up", True), ("down", False)]
    mark_gold(path, "b", right.citations[0].path, 1693, 1694)  # the lines, marked in the viewer
    code, out, _ = run(capsys, "eval", "--feedback", str(path), "--cases", *at(aws_settings))
    assert code == 0 and [json.loads(line) for line in out.splitlines()] == [
        {
            "id": "feedback-b",
            "question": right.question,
            "gold": [{"path": "aws-notes.md", "start_line": 1693, "end_line": 1694}],
            "type": "feedback",
        }
    ]
    code, _, err = run(capsys, "eval", "--cases", *at(aws_settings))
    assert code == 2 and "add --feedback" in err
    code, _, err = run(
        capsys, "eval", "--feedback", str(tmp_path / "none.jsonl"), *at(aws_settings)
    )
    assert code == 2 and "no feedback file at" in err
