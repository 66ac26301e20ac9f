"""Command-line flags shared by `rag` (rag/cli.py) and `app.py`, and the Settings they give.

    parser = argparse.ArgumentParser()
    add_location_flags(parser)            # --notes --index --model
    add_llm_flags(parser)                 # --llm-url --llm-model --llm-timeout
    settings = settings_from_args(parser.parse_args())   # RAG_* variables, then the flags

A flag that was given wins over its RAG_* variable, which wins over the default.
"""

from __future__ import annotations

import argparse

from rag.settings import Settings

# flag attribute -> Settings field; a parser that lacks a flag leaves its setting alone
FLAG_FIELDS = {
    "notes": "notes_dir",
    "index": "index_dir",
    "model": "model_path",
    "port": "port",
    "host": "host",
    "llm_url": "llm_url",
    "llm_model": "llm_model",
    "llm_timeout": "llm_timeout",
}


def add_location_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--notes", metavar="DIR", help="notes folder (env RAG_NOTES_DIR; notes/)")
    parser.add_argument("--index", metavar="DIR", help="index folder (env RAG_INDEX_DIR; index/)")
    parser.add_argument(
        "--model", metavar="DIR", help="local sentence-transformers model (env RAG_MODEL)"
    )


def add_llm_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--llm-url",
        metavar="URL",
        help="OpenAI-compatible API (.../v1) that writes the answer (env RAG_LLM_URL; "
        "unset: extractive answers)",
    )
    parser.add_argument("--llm-model", metavar="NAME", help="model to ask for (env RAG_LLM_MODEL)")
    parser.add_argument(
        "--llm-timeout",
        metavar="SECONDS",
        type=float,
        help="longest wait for a whole LLM answer (env RAG_LLM_TIMEOUT; 120)",
    )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the RAG_* variables, overridden by the flags that were given."""
    given = {field: getattr(args, flag, None) for flag, field in FLAG_FIELDS.items()}
    return Settings.from_env(**given)
