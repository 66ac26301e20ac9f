"""The chat page: load the notes index once, then serve it on loopback.

python app.py                                  # http://127.0.0.1:7860
python app.py --notes ~/notes --port 7861
"""

from __future__ import annotations

import argparse
import sys

from rag.embedding import ModelError
from rag.indexer import IndexBusy
from rag.notes import NotesError
from rag.search import open_engine
from rag.settings import Settings
from rag.store import IndexProblem

EXAMPLES = "examples:\n  python app.py\n  python app.py --notes ~/notes --port 7861"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(
            notes_dir=args.notes,
            index_dir=args.index,
            model_path=args.model,
            port=args.port,
            host=args.host,
        )
        engine = open_engine(settings, log=lambda msg: print(msg, file=sys.stderr))
    except (NotesError, IndexProblem, ModelError, IndexBusy, ValueError) as e:
        print(f"app: error: {e}", file=sys.stderr)
        return 2
    from rag.ui import build_ui  # gradio takes seconds to import; a bad --notes fails first

    demo = build_ui(engine, settings)
    demo.launch(server_name=settings.host, server_port=settings.port)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Chat with your markdown notes: answers are quoted lines, with citations.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--notes", metavar="DIR", help="notes folder (env RAG_NOTES_DIR; notes/)")
    parser.add_argument("--index", metavar="DIR", help="index folder (env RAG_INDEX_DIR; index/)")
    parser.add_argument(
        "--model", metavar="DIR", help="local sentence-transformers model (env RAG_MODEL)"
    )
    parser.add_argument("--port", type=int, help="port to serve on (env RAG_PORT; 7860)")
    parser.add_argument(
        "--host", help="address to bind (env RAG_HOST; 127.0.0.1, only this machine)"
    )
    return parser


if __name__ == "__main__":
    sys.exit(main())
