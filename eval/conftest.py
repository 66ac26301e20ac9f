"""One real index per session, built from notes/ in a temp folder with the real model."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.quality.evaluate import load_cases
from rag.search.engine import Engine
from rag.search.live import open_engine
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "eval"


@pytest.fixture(scope="session")
def engine(tmp_path_factory) -> Engine:
    base = tmp_path_factory.mktemp("eval")
    shutil.copytree(ROOT / "notes", base / "notes")
    settings = Settings.from_env(env={}, notes_dir=base / "notes", index_dir=base / "index")
    return open_engine(settings)


@pytest.fixture(scope="session")
def cases():
    return load_cases(EVAL / "questions.jsonl")


def pytest_terminal_summary(terminalreporter, config):
    from test_retrieval import TABLE

    table = config.stash.get(TABLE, None)
    if table:
        terminalreporter.write_sep("=", "retrieval quality (eval/questions.jsonl)")
        terminalreporter.write_line(table)
