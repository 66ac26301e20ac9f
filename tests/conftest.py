"""Shared fixtures: the real packaged model, one real index over the default notes, and the
real servers tests talk to: headless Chromium and a llama.cpp LLM server."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from rag.index.embedding import SentenceTransformerEmbedder
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(Settings().model)


@pytest.fixture(scope="session")
def aws_settings(tmp_path_factory, embedder) -> Settings:
    """Settings whose notes are a copy of notes/ and whose index is built once."""
    from rag.index.build import update_index

    base = tmp_path_factory.mktemp("aws")
    shutil.copytree(ROOT / "notes", base / "notes")
    settings = Settings.from_env(env={}, notes_dir=base / "notes", index_dir=base / "index")
    update_index(settings.notes_dir, settings.index_dir, embedder, settings.max_chunk_tokens)
    return settings


@pytest.fixture(scope="session")
def aws_engine(aws_settings, embedder):
    from rag.index.store import load_index
    from rag.search.engine import Engine

    index = load_index(
        aws_settings.index_dir, embedder.name, embedder.dim, aws_settings.max_chunk_tokens
    )
    return Engine(index, embedder)


# --- shared servers: a browser (tests/test_browser.py) and an LLM (tests/test_llm*.py) -------


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: .venv/bin/pip install -e '.[test]'"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}: `make browser` (apt-get install chromium)"
    return None


@pytest.fixture(scope="session")
def browser():
    reason = _missing_browser()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and the browser tests cannot run: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def launch_browser(browser):
    """launch_browser(*flags): one more Chromium with extra command-line flags, closed after."""
    launched = []

    def launch(*flags: str):
        launched.append(
            browser.browser_type.launch(executable_path=str(CHROMIUM), args=[*ARGS, *flags])
        )
        return launched[-1]

    yield launch
    for chromium in launched:
        chromium.close()


@pytest.fixture(scope="session")
def llama(tmp_path_factory):
    """`python -m llama_cpp.server`, SmolLM2-135M, on a free loopback port (llm_server.py)."""
    from llm_server import LlamaServer, smollm2_gguf

    with LlamaServer(smollm2_gguf(), tmp_path_factory.mktemp("llama") / "server.log") as server:
        yield server
