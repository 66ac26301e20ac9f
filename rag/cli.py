"""The `rag` command: index, search and ask, with --json output for scripts.

rag index
rag search "max sqs message size" -k 5 --json
rag ask "what is the default visibility timeout?"
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from rag.answer.extractive import Answer, hit_json
from rag.answer.llm import LLMEvent, Token, result_json, stream_ask, written_by_llm
from rag.answer.llm_client import LLMSettings
from rag.flags import add_llm_flags, add_location_flags, settings_from_args
from rag.index.build import IndexBusy, IndexReport, update_index
from rag.index.embedding import ModelError, SentenceTransformerEmbedder, warm_up
from rag.index.store import IndexProblem
from rag.notes import NotesError
from rag.quality import beir
from rag.quality.evaluate import evaluate, format_table, load_cases
from rag.search.engine import Engine, Hit, open_engine, prepare_question
from rag.settings import MODES, Settings

EXAMPLES = {
    "index": "examples:\n  rag index\n  rag index --dry-run   # what would change\n"
    "  rag index --notes ~/notes --index ~/.rag-index --json",
    "search": 'examples:\n  rag search "max sqs message size" -k 5\n'
    "  rag search --batch questions.jsonl --json   # one result line per input line",
    "ask": 'examples:\n  rag ask "what is the default sqs visibility timeout?"\n'
    "  rag ask --batch questions.jsonl --json\n"
    '  rag ask "sqs max message size?" --llm-url http://127.0.0.1:8080/v1   # an LLM writes it',
    "beir": "examples:\n  rag beir ../shared/bench/scifact\n  rag beir ~/beir/nfcorpus --json\n\n"
    "the notes and index go to .bench/<name>/ unless --notes/--index say otherwise",
    "eval": "examples:\n  rag eval\n  rag eval --questions my-questions.jsonl --json\n\n"
    'each line: {"id": "q1", "question": "...", "gold": [{"path": "a.md", "start_line": 3, '
    '"end_line": 4}], "type": "fact"}; "gold": [] marks a question the notes do not answer',
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = settings_from_args(args)  # only `rag ask` has the LLM flags
        return args.run(args, settings)
    except (NotesError, IndexProblem, ModelError, IndexBusy, ValueError) as e:
        print(f"rag: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `rag search ... | head`
        return 0


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_location_flags(common)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")

    parser = argparse.ArgumentParser(
        prog="rag", description="Question answering over your markdown notes, with citations."
    )
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            parents=[common],
            help=help,
            description=help,
            epilog=EXAMPLES[name],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = command("index", "Build the index, or bring it up to date with the notes.")
    p.add_argument("--full", action="store_true", help="re-embed everything from scratch")
    p.add_argument("--dry-run", action="store_true", help="say what would change; write nothing")
    p.set_defaults(run=cmd_index)

    for name, run, help in (
        ("search", cmd_search, "Show the note sections that best match a question."),
        ("ask", cmd_ask, "Answer a question with cited lines from the notes."),
    ):
        p = command(name, help)
        p.add_argument("question", nargs="?", help="the question (or use --batch)")
        p.add_argument("--batch", metavar="FILE", help="JSONL file of {id, question} objects")
        p.add_argument("-k", type=int, default=None, help="number of hits (default 5)")
        p.add_argument("--mode", choices=MODES, default=None, help="retrieval leg(s)")
        p.set_defaults(run=run)
    add_llm_flags(sub.choices["ask"])

    p = command("eval", "Measure retrieval and answers on questions with gold line ranges.")
    p.add_argument(
        "--questions", metavar="FILE", default="eval/questions.jsonl", help="eval JSONL file"
    )
    p.set_defaults(run=cmd_eval)

    p = command("beir", "Measure retrieval on a BEIR folder (corpus, queries, qrels).")
    p.add_argument("beir_dir", metavar="DIR", help="folder with corpus.jsonl, queries.jsonl, qrels")
    p.set_defaults(run=cmd_beir)
    return parser


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    report = _update(settings, args.full, not args.json, dry_run=args.dry_run)
    print(json.dumps(report.to_json()) if args.json else _index_summary(report, settings))
    return 0


def _update(settings: Settings, full: bool, progress_bar: bool, dry_run=False) -> IndexReport:
    embedder = SentenceTransformerEmbedder(settings.model)
    bar = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="embedding", unit="chunk", file=sys.stderr)
        bar.update(done - bar.n)

    try:
        return update_index(
            settings.notes_dir,
            settings.index_dir,
            embedder,
            settings.max_chunk_tokens,
            full=full,
            dry_run=dry_run,
            progress=progress if progress_bar else None,
        )
    finally:
        if bar is not None:
            bar.close()


def _index_summary(r: IndexReport, settings: Settings) -> str:
    lines = []
    if r.rebuild_reason and r.written:
        lines.append(f"Full rebuild: {r.rebuild_reason}.")
    if r.dry_run:
        verb = "Would index"
        lines += [f"  changed: {p}" for p in r.changed_files]
        lines += [f"  removed: {p}" for p in r.removed_files]
    else:
        verb = "Indexed" if r.written else "Index is up to date:"
    lines.append(
        f"{verb} {r.files} files, {r.chunks} chunks ({r.embedded} embedded, {r.unchanged} "
        f"unchanged, {r.removed} removed) in {r.seconds:.2f}s -> {settings.index_dir}"
    )
    lines += [f"  skipped {s.path}: {s.reason}" for s in r.skipped]
    return "\n".join(lines)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    engine = _engine(settings, many=bool(args.batch))
    k, mode = args.k or settings.top_k, args.mode or settings.mode
    for qid, raw in _questions(args):
        try:
            q = prepare_question(raw)
        except ValueError as e:
            _emit_error(args, qid, raw, e)
            continue
        hits = engine.search(q.text, k=k, mode=mode)
        if args.json:
            out = {"question": q.text, "hits": [hit_json(h) for h in hits]}
            if q.notices:
                out["notices"] = list(q.notices)
            _print_json(out, qid, args)
        else:
            _print_notices(q.notices)
            print(_search_text(q.text, hits))
    return 0


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    engine = _engine(settings, many=bool(args.batch))
    k, mode = args.k or settings.top_k, args.mode or settings.mode
    llm = LLMSettings.from_settings(settings)
    for qid, raw in _questions(args):
        try:
            events = stream_ask(engine, raw, llm, k=k, mode=mode)
        except ValueError as e:
            _emit_error(args, qid, raw, e)
            continue
        if args.json:
            *_, done = events
            _print_json(result_json(done.answer), qid, args)
        else:
            _print_stream(events)
    return 0


def _print_stream(events: Iterator[LLMEvent]) -> None:
    """Print an LLM's tokens as they arrive, then the sources; or the extractive answer."""
    streamed = False
    for event in events:
        if isinstance(event, Token):
            print(event.text, end="", flush=True)
            streamed = True
            continue
        a = event.answer
        if streamed:
            print()
        _print_notices(a.notices)
        if getattr(a, "uncited", False):
            _print_notices(["the answer cites none of the excerpts: check it against them"])
        if written_by_llm(a):
            print("\n" + sources_text(a))
        else:  # no LLM, or a fault (after what it had streamed)
            print(("\n" if streamed else "") + answer_text(a))


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    cases = load_cases(Path(args.questions))
    if not cases:
        raise ValueError(f"{args.questions} holds no questions")
    report = evaluate(_engine(settings, many=True), cases)
    print(json.dumps(report) if args.json else format_table(report))
    return 0


def cmd_beir(args: argparse.Namespace, settings: Settings) -> int:
    beir_dir = Path(args.beir_dir)
    work = Path(".bench") / beir_dir.resolve().name
    settings = replace(
        settings,
        notes_dir=Path(args.notes) if args.notes else work / "notes",
        index_dir=Path(args.index) if args.index else work / "index",
    )
    docs = beir.convert(beir_dir, settings.notes_dir)
    queries, qrels = beir.load_queries(beir_dir)
    indexed = _update(settings, full=False, progress_bar=not args.json)
    if not args.json:
        print(_index_summary(indexed, settings))
    report = beir.evaluate_beir(_engine(settings, many=True), queries, qrels)
    if args.json:
        print(json.dumps({"documents": docs, "queries": len(queries), "results": report}))
        return 0
    print(f"{beir_dir.name}: {docs} documents, {len(queries)} queries with qrels")
    print(f"{'mode':<8} {'nDCG@10':>8} {'R@100':>8}")
    for mode, r in report.items():
        print(f"{mode:<8} {r['nDCG@10']:>8.4f} {r['R@100']:>8.4f}")
    return 0


def answer_text(a: Answer) -> str:
    return f"{a.text}\n\n{sources_text(a)}"


def sources_text(a: Answer) -> str:
    out = []
    cited = getattr(a, "cited", ())  # an LLM answer's cited excerpts come first; only they
    if a.citations:  # are quoted, unless it cited none
        out.append("Sources:")
        for c in a.citations:
            out.append(f"[{c.n}] {' > '.join(c.heading)}  ({c.location})")
            if not cited or c.n in cited:
                out += [f"    {line}" for line in c.text.split("\n")]
    else:
        out.append("Nearest sections:")
        for h in a.candidates:
            out.append(f"- {' > '.join(h.chunk.heading) or h.chunk.path}  ({h.chunk.location})")
    return "\n".join(out)


def _search_text(question: str, hits: list[Hit]) -> str:
    if not hits:
        return f"No matches for {question!r}."
    out = []
    for n, h in enumerate(hits, 1):
        c = h.chunk
        out.append(f"{n}. {' > '.join(c.heading) or c.path}  ({c.location})  score {h.score:.4f}")
        body = [line for line in c.text.split("\n") if line.strip()][:4]
        out += [f"     {line}" for line in body]
    return "\n".join(out)


def _engine(settings: Settings, many: bool = False) -> Engine:
    """The engine; `many` questions to come: open the embedder's fast path for them."""
    engine = open_engine(settings, log=lambda msg: print(msg, file=sys.stderr))
    if many:
        warm_up(engine.embedder)
    return engine


def _questions(args: argparse.Namespace) -> Iterator[tuple[str | None, str]]:
    """(id, question) pairs: the one positional question, or each line of --batch."""
    if args.batch and args.question:
        raise ValueError("give a question or --batch FILE, not both")
    if not args.batch:
        if args.question is None:
            raise ValueError('no question given: rag ask "your question" (or --batch FILE)')
        yield None, args.question
        return
    path = Path(args.batch)
    if not path.is_file():
        raise ValueError(f"batch file {path} does not exist")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                yield str(item["id"]), str(item["question"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(
                    f"{path} line {n} is not a JSON object with 'id' and 'question'"
                ) from None


def _print_json(out: dict, qid: str | None, args: argparse.Namespace) -> None:
    if qid is not None:
        out = {"id": qid, **out}
    print(json.dumps(out, ensure_ascii=False), flush=bool(args.batch))


def _emit_error(args: argparse.Namespace, qid: str | None, raw: str, e: Exception) -> None:
    if qid is None:
        raise e
    if args.json:
        print(json.dumps({"id": qid, "question": raw, "error": str(e)}), flush=True)
    else:
        print(f"[{qid}] error: {e}", file=sys.stderr)


def _print_notices(notices) -> None:
    for notice in notices:
        print(f"note: {notice}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
