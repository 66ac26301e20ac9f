"""Shared fixtures: the real packaged model, and one real index over the default notes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from rag.embedding import SentenceTransformerEmbedder
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(Settings().model)


@pytest.fixture(scope="session")
def aws_settings(tmp_path_factory, embedder) -> Settings:
    """Settings whose notes are a copy of notes/ and whose index is built once."""
    from rag.indexer import update_index

    base = tmp_path_factory.mktemp("aws")
    shutil.copytree(ROOT / "notes", base / "notes")
    settings = Settings.from_env(env={}, notes_dir=base / "notes", index_dir=base / "index")
    update_index(settings.notes_dir, settings.index_dir, embedder, settings.max_chunk_tokens)
    return settings


@pytest.fixture(scope="session")
def aws_engine(aws_settings, embedder):
    from rag.search import Engine
    from rag.store import load_index

    index = load_index(
        aws_settings.index_dir, embedder.name, embedder.dim, aws_settings.max_chunk_tokens
    )
    return Engine(index, embedder)
