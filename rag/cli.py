"""The `rag` command: index, search, ask and chat, with --json output for scripts.

rag index
rag search "max sqs message size" -k 5 --json
rag ask "what is the default visibility timeout?"
rag chat                       # a conversation: follow-ups are read with earlier questions
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from rag import console
from rag.answer.base import Exchange
from rag.answer.llm import writer_for
from rag.answer.pipeline import stream_ask
from rag.answer.schema import answer_json, search_json
from rag.errors import BadInput, RagError, internal_error
from rag.index.build import IndexReport, update_index
from rag.index.embedding import SentenceTransformerEmbedder, prepare, warm_up
from rag.index.store import current_generation, verify_generation
from rag.quality import beir
from rag.quality.evaluate import (
    evaluate,
    format_table,
    format_votes,
    load_cases,
    recheck_votes,
)
from rag.search.engine import Engine
from rag.search.filters import Where, filtered
from rag.search.live import open_engine
from rag.settings import (
    Settings,
    add_flags,
    add_verbosity_flags,
    configure_logging,
    settings_from_args,
)

EXAMPLES = {
    "index": "examples:\n  rag index\n  rag index --dry-run   # what would change\n"
    "  rag index --check     # read every index file against its checksum\n"
    "  rag index --notes ~/notes --index ~/.rag-index --json",
    "search": 'examples:\n  rag search "max sqs message size" -k 5\n'
    '  rag search "retry backoff" --where tag:infra --where folder:projects/* --since 2026-01-01\n'
    "  rag search --batch questions.jsonl --json   # one result line per input line",
    "ask": 'examples:\n  rag ask "what is the default sqs visibility timeout?"\n'
    "  rag ask --batch questions.jsonl --json\n"
    '  rag ask "lambda max timeout" --json > turns.jsonl\n'
    '  rag ask "and the default?" --history turns.jsonl   # read as a follow-up\n'
    '  rag ask "sqs max message size?" --llm-url http://127.0.0.1:8080/v1   # an LLM writes it',
    "chat": "examples:\n  rag chat\n  rag chat --llm-url http://127.0.0.1:8080/v1\n\n"
    'type a question, then follow-ups ("and the default?"); /new starts over, Ctrl-D ends',
    "serve": "examples:\n  rag serve --notes ~/vault        # http://127.0.0.1:7860\n"
    "  rag serve --port 7862 --auth-file ~/.rag-auth   # the file holds me:secret\n\n"
    "the JSON API is at /api/ (its routes at /api/docs); outside the rag checkout the index "
    "lives in ~/.cache/rag unless --index says otherwise",
    "mcp": "examples:\n  rag mcp --notes ~/vault            # over stdio, for an agent to start\n"
    "  rag mcp --http --mcp-port 7861     # http://127.0.0.1:7861/mcp\n\n"
    "Claude Code: claude mcp add notes -- rag mcp --notes ~/vault",
    "prepare": "examples:\n  rag prepare\n  rag prepare --model ~/models/my-model --json\n\n"
    "`make install` runs it; without it the first index or question makes them",
    "beir": "examples:\n  rag beir ../shared/bench/scifact\n  rag beir ~/beir/nfcorpus --json\n\n"
    "the notes and index go to .bench/<name>/ unless --notes/--index say otherwise",
    "eval": "examples:\n  rag eval\n  rag eval --questions my-questions.jsonl --json\n"
    "  rag eval --feedback                # the chat's votes: which answers changed since\n"
    "  rag eval --feedback --cases > mine.jsonl   # down-votes with gold lines, as eval cases\n\n"
    'each line: {"id": "q1", "question": "...", "gold": [{"path": "a.md", "start_line": 3, '
    '"end_line": 4}], "type": "fact"}; "gold": [] marks a question the notes do not answer',
}
LOCATION = ("notes_dir", "index_dir", "model_path", "editor")
SERVER = ("host", "allowed_hosts", "auth_file")
LLM = ("llm_url", "llm_model", "llm_timeout")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging(args, "rag")
    try:
        return args.run(args, settings_from_args(args))
    except RagError as e:
        console.say(f"rag: error: {e}", err=True)
        return 2
    except BrokenPipeError:  # `rag search ... | head`
        return 0
    except Exception as e:  # a bug in rag: say so, and how to see it
        if args.debug:
            raise
        print(internal_error("rag", e), file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_flags(common, *LOCATION)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_verbosity_flags(common)

    parser = argparse.ArgumentParser(
        prog="rag", description="Question answering over your markdown notes, with citations."
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help: str, run) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name,
            parents=[common],
            help=help,
            description=help,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        p.set_defaults(run=run, command=name)
        return p

    p = command("index", "Build the index, or bring it up to date with the notes.", cmd_index)
    p.add_argument("--full", action="store_true", help="re-embed everything from scratch")
    p.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    p.add_argument("--check", action="store_true", help="verify every index file; change nothing")

    p = command("search", "Show the note sections that best match a question.", cmd_search)
    _question_flags(p)
    p = command("ask", "Answer a question with cited lines from the notes.", cmd_ask)
    _question_flags(p)
    p.add_argument(
        "--history",
        metavar="FILE",
        help='earlier turns, one JSON object a line with "question" (and "answer"), oldest '
        "first: `rag ask --json` lines will do",
    )
    add_flags(p, *LLM)
    p = command("chat", "Talk with your notes: follow-ups are read in context.", cmd_chat)
    _search_flags(p)
    add_flags(p, *LLM)

    p = command("serve", "Serve the chat page, the note viewer and the JSON API.", cmd_serve)
    add_flags(p, *SERVER, "port", "feedback", *LLM)
    p = command("mcp", "Serve the notes to AI agents over MCP (stdio, or --http).", cmd_mcp)
    add_flags(p, *SERVER, "mcp_port", *LLM)
    p.add_argument("--http", action="store_true", help="streamable HTTP at /mcp instead of stdio")

    p = command("eval", "Measure retrieval and answers on questions with gold lines.", cmd_eval)
    p.add_argument(
        "--questions", metavar="FILE", default="eval/questions.jsonl", help="eval JSONL file"
    )
    p.add_argument(
        "--feedback",
        dest="votes",
        nargs="?",
        const="",
        metavar="FILE",
        help="instead, ask the chat's voted questions again and say which answers changed "
        "(FILE, else the feedback file: RAG_FEEDBACK or feedback.jsonl beside the index)",
    )
    p.add_argument(
        "--cases",
        action="store_true",
        help="with --feedback: print the down-votes that give gold lines (marked in the note "
        "viewer) or say 'not in my notes' as eval cases, one JSON line each, for --questions",
    )
    command(
        "prepare",
        "Make the model's ONNX encoders once (an export and its int8 copy, 10-16 s), so the "
        "first index and the first question do not wait for them.",
        cmd_prepare,
    )
    p = command("beir", "Measure retrieval on a BEIR folder (corpus, queries, qrels).", cmd_beir)
    p.add_argument("beir_dir", metavar="DIR", help="folder with corpus.jsonl, queries.jsonl, qrels")
    return parser


def _question_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("question", nargs="?", help="the question (or use --batch)")
    p.add_argument("--batch", metavar="FILE", help="JSONL file of {id, question} objects")
    _search_flags(p)


def _search_flags(p: argparse.ArgumentParser) -> None:
    add_flags(p, "top_k", "mode")
    p.add_argument(
        "--where",
        action="append",
        metavar="NAME:VALUE",
        help="search only notes with this tag (tag:infra, nested tags too), below this folder "
        "(folder:projects/*) or with this front-matter property (status:draft); repeatable, "
        "all must hold",
    )
    p.add_argument(
        "--since", metavar="YYYY-MM-DD", help="search only notes modified on or after this day"
    )
    p.add_argument(
        "--as-typed",
        action="store_true",
        help="search the words as typed (by default a word your notes do not use is searched "
        "as they spell it, when they use one a letter or two away)",
    )


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    if args.check:
        return _check(args, settings)
    report = _update(settings, args.full, not args.json, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        console.say(console.index_summary(report, settings))
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    gen = current_generation(settings.index_dir)
    problems = verify_generation(gen) if gen else [f"no index in {settings.index_dir}"]
    print(console.check_report(gen, problems, args.json))
    return 1 if problems else 0


def _update(settings: Settings, full: bool, progress_bar: bool, dry_run=False) -> IndexReport:
    embedder = SentenceTransformerEmbedder(settings.model)
    bar = console.ProgressBar()
    try:
        return update_index(
            settings.folders,
            settings.index_dir,
            embedder,
            settings.max_chunk_tokens,
            full=full,
            dry_run=dry_run,
            progress=bar if progress_bar else None,
        )
    finally:
        bar.close()


def cmd_prepare(args: argparse.Namespace, settings: Settings) -> int:
    embedder = SentenceTransformerEmbedder(settings.model)
    ready = prepare(embedder)
    if args.json:
        print(json.dumps({**ready, "cache": str(embedder.cache_dir)}))
    else:
        console.say(console.prepare_summary(ready, embedder.cache_dir))
    return 0


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    engine = _filtered(_engine(settings, many=bool(args.batch)), args, settings)
    for qid, raw in _questions(args):
        try:
            found = next(_stream(engine, settings, raw, [], args.as_typed))
        except BadInput as e:
            console.print_error(args, qid, raw, e)
            continue
        if args.json:
            console.print_json(search_json(found, settings.links), qid, args)
        else:
            console.print_notices(found.notices)
            links = console.hyperlinks(settings, args.json)
            print(console.search_text(found.searched, found.hits, links))
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    engine = _filtered(_engine(settings, many=bool(args.batch)), args, settings)
    history = console.read_history(Path(args.history)) if args.history else []
    for qid, raw in _questions(args):
        events = _stream(engine, settings, raw, history, args.as_typed)
        try:
            next(events)  # the search: an empty question fails here
        except BadInput as e:
            console.print_error(args, qid, raw, e)
            continue
        if args.json:
            *_, done = events
            console.print_json(answer_json(done.answer, settings.links), qid, args)
        else:
            console.print_answer(events, console.hyperlinks(settings, args.json))
    return 0


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    """A conversation at the terminal: each question is read with the ones before it."""
    engine = _filtered(_engine(settings, many=True), args, settings)
    history: list[Exchange] = []
    if sys.stdin.isatty():
        print(EXAMPLES["chat"].rsplit("\n", 1)[-1].capitalize())
    for question in console.read_questions():
        if question.strip() == "/new":
            history = []
            continue
        events = _stream(engine, settings, question, history, args.as_typed)
        try:
            next(events)
        except BadInput as e:
            console.say(f"rag: {e}", err=True)
            continue
        answer = console.print_answer(events, console.hyperlinks(settings, False))
        history.append(Exchange(answer.question, answer.text))
        print()
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """The chat page, as app.py serves it, for any notes folder."""
    from rag.search.live import serving
    from rag.web.app import serve

    serve(serving(settings, page=True), settings)
    return 0


def cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    """The MCP server, answering the client at once: with no index yet, the first one is
    built in the background (`serving`) and tool calls wait for it, `status` says how far it
    is. Over stdio, stdout carries the protocol alone: logs go to stderr, and while it serves
    the SDK points file descriptor 1 at stderr, so a stray print from the build cannot break
    the protocol either."""
    from rag.search.live import serving, shut_down
    from rag.web import mcp_server
    from rag.web.service import Service

    with contextlib.redirect_stdout(sys.stderr):  # a library's print must not break stdio
        live = serving(settings)
    try:
        mcp_server.serve(Service(live, settings), http=args.http)
    finally:
        shut_down(live)
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    if args.cases and args.votes is None:
        raise BadInput("--cases writes eval cases from the chat's votes: add --feedback [FILE]")
    if args.votes is not None:
        from rag.web.feedback import eval_cases, load_votes

        votes = load_votes(Path(args.votes) if args.votes else settings.feedback_file)
        if args.cases:
            for case in eval_cases(votes):
                print(json.dumps(case, ensure_ascii=False))
            return 0
        rows = recheck_votes(_engine(settings, many=True), votes)
        print(json.dumps(rows) if args.json else format_votes(rows))
        return 0
    cases = load_cases(Path(args.questions))
    if not cases:
        raise BadInput(f"{args.questions} holds no questions")
    report = evaluate(_engine(settings, many=True), cases)
    print(json.dumps(report) if args.json else format_table(report))
    return 0


def cmd_beir(args: argparse.Namespace, settings: Settings) -> int:
    beir_dir = Path(args.beir_dir)
    work = Path(".bench") / beir_dir.resolve().name
    if args.notes_dir and len(args.notes_dir) > 1:
        raise BadInput("rag beir writes the benchmark's documents into one folder: one --notes")
    settings = replace(
        settings,
        notes_dir=Path(args.notes_dir[0]) if args.notes_dir else work / "notes",
        index_dir=Path(args.index_dir) if args.index_dir else work / "index",
    )
    docs = beir.convert(beir_dir, settings.notes_dir)
    queries, qrels = beir.load_queries(beir_dir)
    indexed = _update(settings, full=False, progress_bar=not args.json)
    if not args.json:
        console.say(console.index_summary(indexed, settings))
    report = beir.evaluate_beir(_engine(settings, many=True), queries, qrels)
    if args.json:
        print(json.dumps({"documents": docs, "queries": len(queries), "results": report}))
    else:
        print(f"{beir_dir.name}: {docs} documents, {len(queries)} queries with qrels")
        print(beir.format_table(report))
    return 0


def _engine(settings: Settings, many: bool = False) -> Engine:
    """The engine; `many` questions to come: open the embedder's fast path for them."""
    engine = open_engine(settings)
    if many:
        warm_up(engine.embedder)
    return engine


def _filtered(engine: Engine, args: argparse.Namespace, settings: Settings) -> Engine:
    """The engine, searching only the notes `--where` and `--since` allow."""
    return filtered(engine, Where.parse(args.where, args.since), settings.folders)


def _stream(
    engine: Engine, settings: Settings, question: str, history: list[Exchange], as_typed: bool
):
    writer = writer_for(settings.llm)
    k, mode, spelling = settings.top_k, settings.mode, not as_typed
    return stream_ask(
        engine, question, history=history, k=k, mode=mode, writer=writer, spelling=spelling
    )


def _questions(args: argparse.Namespace) -> Iterator[tuple[str | None, str]]:
    """(id, question) pairs: the one positional question, or each line of --batch."""
    if args.batch and args.question:
        raise BadInput("give a question or --batch FILE, not both")
    if not args.batch:
        if args.question is None:
            raise BadInput(f'no question given: rag {args.command} "your question" (or --batch)')
        yield None, args.question
        return
    for item in console.read_jsonl(Path(args.batch), needs=("id", "question")):
        yield str(item["id"]), str(item["question"])


if __name__ == "__main__":
    sys.exit(main())
