"""The chat page: load the notes index once, then serve it on loopback.

python app.py                                  # http://127.0.0.1:7860
python app.py --notes ~/notes --port 7861
RAG_AUTH=me:secret python app.py --host 0.0.0.0   # on the network: ask for a password
python app.py --llm-url http://127.0.0.1:8080/v1    # answers written by a local LLM
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rag.answer.llm_client import LLMSettings
from rag.flags import add_llm_flags, add_location_flags, settings_from_args
from rag.index.build import IndexBusy
from rag.index.embedding import ModelError, warm_up
from rag.index.store import IndexProblem
from rag.notes import NotesError
from rag.search.engine import open_engine

EXAMPLES = """examples:
  python app.py
  python app.py --notes ~/notes --port 7861
  python app.py --host 0.0.0.0 --auth me:secret   # or RAG_AUTH=me:secret
  python app.py --llm-url http://127.0.0.1:8080/v1  # an LLM writes the answers"""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        auth = parse_auth(args.auth or os.environ.get("RAG_AUTH", ""))
        feedback = args.feedback or os.environ.get("RAG_FEEDBACK") or None
        LLMSettings.from_settings(settings)  # a malformed --llm-url fails here, not later
        engine = open_engine(settings, log=lambda msg: print(msg, file=sys.stderr))
        warm_up(engine.embedder)  # questions through ONNX Runtime from the first one
    except (NotesError, IndexProblem, ModelError, IndexBusy, ValueError) as e:
        print(f"app: error: {e}", file=sys.stderr)
        return 2
    from rag.web.app import serve  # gradio takes seconds to import; a bad --notes fails first

    serve(engine, settings, auth=auth, feedback=Path(feedback) if feedback else None)
    return 0


def parse_auth(text: str) -> tuple[str, str] | None:
    """'user:pass' -> ('user', 'pass'); '' -> None (no sign-in)."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise ValueError("--auth (or RAG_AUTH) must be user:password, both non-empty")
    return user, password


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Chat with your markdown notes: answers are quoted lines, with citations.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_location_flags(parser)
    parser.add_argument("--port", type=int, help="port to serve on (env RAG_PORT; 7860)")
    parser.add_argument(
        "--host", help="address to bind (env RAG_HOST; 127.0.0.1, only this machine)"
    )
    parser.add_argument(
        "--auth", metavar="USER:PASS", help="require this sign-in (env RAG_AUTH; none)"
    )
    parser.add_argument(
        "--feedback",
        metavar="FILE",
        help="where thumbs-down answers are appended (env RAG_FEEDBACK; "
        "feedback.jsonl next to the index folder)",
    )
    add_llm_flags(parser)
    return parser


if __name__ == "__main__":
    sys.exit(main())
