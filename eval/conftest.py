"""The engines `pytest eval/` measures: one over notes/ and one over BEIR SciFact (for the
declines of questions asked of the wrong notes), each built once per session in a temp folder
with the real model; and the question sets, by part:

- "tune": `eval/questions.jsonl` lines with "split": "tune", and `eval/tune_extra.jsonl`:
  the only questions settings were fitted on (`eval/fit_answer.py`).
- "test": `eval/questions.jsonl` lines with "split": "test": frozen, only measured.
- "blind": `eval/blind/questions.jsonl`, written from the notes alone by someone who had not
  seen the code or its answers: only measured.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from rag.quality import beir
from rag.quality.evaluate import load_cases
from rag.search.engine import Engine
from rag.search.live import open_engine
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "eval"
SCIFACT = ROOT.parent / "shared" / "bench" / "scifact"  # CI has shared/ beside the checkout


@pytest.fixture(scope="session")
def engine(tmp_path_factory) -> Engine:
    base = tmp_path_factory.mktemp("eval")
    shutil.copytree(ROOT / "notes", base / "notes")
    settings = Settings.from_env(env={}, notes_dir=base / "notes", index_dir=base / "index")
    return open_engine(settings)


@pytest.fixture(scope="session")
def first_pass(tmp_path_factory) -> Engine:
    """An engine over notes/ as a server answers while a new index's line vectors are still
    being made: the first pass, section vectors only."""
    base = tmp_path_factory.mktemp("first-pass")
    shutil.copytree(ROOT / "notes", base / "notes")
    settings = Settings.from_env(env={}, notes_dir=base / "notes", index_dir=base / "index")
    engine = open_engine(settings, first_pass=True)
    assert engine.index.lines_pending > 0, "not a first pass"
    return engine


@pytest.fixture(scope="session")
def parts() -> dict[str, list]:
    main = load_cases(EVAL / "questions.jsonl")
    return {
        "tune": [c for c in main if c.split == "tune"] + load_cases(EVAL / "tune_extra.jsonl"),
        "test": [c for c in main if c.split == "test"],
        "blind": load_cases(EVAL / "blind" / "questions.jsonl"),
    }


@pytest.fixture(scope="session")
def scifact(tmp_path_factory) -> tuple[Engine, list[str]]:
    """An engine over the SciFact abstracts, and SciFact's test claims."""
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.fail(f"no BEIR SciFact at {SCIFACT}: it comes with shared/ beside the checkout")
    base = tmp_path_factory.mktemp("scifact")
    beir.convert(SCIFACT, base / "notes")
    settings = Settings.from_env(env={}, notes_dir=base / "notes", index_dir=base / "index")
    lines = (SCIFACT / "queries.test.jsonl").read_text(encoding="utf-8").splitlines()
    claims = [json.loads(line)["text"] for line in lines if line.strip()]
    return open_engine(settings), claims


def pytest_terminal_summary(terminalreporter, config):
    from test_quality import TABLE

    table = config.stash.get(TABLE, None)
    if table:
        terminalreporter.write_sep("=", "quality (eval/questions.jsonl, eval/blind)")
        terminalreporter.write_line(table)
