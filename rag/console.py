"""What the `rag` command reads and prints: questions and history files in; hits, answers
(streamed when an LLM writes them), JSON lines and reports out.

    print(search_text(question, hits))   # text made terminal-safe
    print_answer(stream_ask(engine, question))     # tokens as they come, then the sources
    read_history(Path("turns.jsonl"))               # [Exchange(question, answer), ...]

Notices go to stderr as "note: ...", so stdout stays the answer itself. Text from the notes,
the question or an LLM goes out through `say` (or `terminal_safe`), which shows control
characters as text (`\x1b`): a note cannot retitle, clear or recolour the terminal. On a
terminal, each `file:lines` is a hyperlink (OSC 8) that opens the line in your editor.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path

from rag.answer.base import Answer, Done, Exchange, Token
from rag.editor import Editor
from rag.errors import BadInput
from rag.index.build import IndexReport
from rag.index.cutting import heading_text, location, shown_line
from rag.jsonl import json_line, numbered_lines
from rag.search.engine import Hit
from rag.settings import Settings

SHOWN_LINES = 4  # of each hit in `rag search`
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and newline


def terminal_safe(text: str) -> str:
    """`text` with every control character a terminal would act on written out as text."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], text.replace("\r\n", "\n"))


def say(text: str = "", *, end: str = "\n", err: bool = False, flush: bool = False) -> None:
    """Print text that may hold a note's, a question's or an LLM's words, made safe."""
    print(terminal_safe(text), end=end, file=sys.stderr if err else sys.stdout, flush=flush)


def hyperlinks(settings: Settings, as_json: bool) -> Editor | None:
    """The editor links for `file:lines` in printed text: on a terminal only."""
    isatty = getattr(sys.stdout, "isatty", None)  # a stand-in stdout may have none
    tty = isatty is not None and isatty() and os.environ.get("TERM", "") != "dumb"
    return settings.links if tty and not as_json else None


def _source(heading: tuple[str, ...], path: str, start: int, end: int, links: Editor | None):
    """'Heading > Sub  (path:start-end)', made terminal-safe; the location a hyperlink to
    the line in the user's editor when `links` is given."""
    where = terminal_safe(location(path, start, end))
    if links is not None:
        uri = terminal_safe(links.uri(path, start, end))
        where = f"\x1b]8;;{uri}\x1b\\{where}\x1b]8;;\x1b\\"
    return f"{terminal_safe(heading_text(heading, path))}  ({where})"


def search_text(question: str, hits: list[Hit], links: Editor | None = None) -> str:
    """The hits as terminal-safe text."""
    if not hits:
        return terminal_safe(f"No matches for {question!r}.")
    out = []
    for n, h in enumerate(hits, 1):
        c = h.chunk
        where = _source(c.heading, c.path, c.start_line, c.end_line, links)
        out.append(f"{n}. {where}  score {h.score:.4f}")
        body = islice((shown_line(line) for line in c.lines if line.strip()), SHOWN_LINES)
        out += [f"     {terminal_safe(line)}" for line in body]
    return "\n".join(out)


def print_answer(events: Iterable, links: Editor | None = None) -> Answer:
    """Print an LLM's tokens as they arrive, then the sources; or the extractive answer.
    Returns the answer."""
    streamed = False
    for event in events:
        if isinstance(event, Token):
            say(event.text, end="", flush=True)
            streamed = True
        elif isinstance(event, Done):
            answer = event.answer
    if streamed:
        say()
    print_notices(answer.notices)
    if answer.uncited:
        print_notices(["the answer cites none of the excerpts: check it against them"])
    if answer.by_llm:
        print("\n" + sources_text(answer, links))
    else:  # no LLM, or a fault (after what it had streamed)
        print(("\n" if streamed else "") + answer_text(answer, links))
    return answer


def answer_text(a: Answer, links: Editor | None = None) -> str:
    """The answer and its sources as terminal-safe text."""
    return f"{terminal_safe(a.text)}\n\n{sources_text(a, links)}"


def sources_text(a: Answer, links: Editor | None = None) -> str:
    """The sources with their quoted lines; an LLM's uncited excerpts only by name."""
    out = []
    if a.citations:
        out.append("Sources:" if a.answered else "Closest lines (partly in your notes):")
        for c in a.citations:
            out.append(f"[{c.n}] {_source(c.heading, c.path, c.start_line, c.end_line, links)}")
            if not a.cited or c.n in a.cited:
                out += [f"    {terminal_safe(line)}" for line in c.text.split("\n")]
    else:
        out.append("Nearest sections:")
        for h in a.candidates:
            c = h.chunk
            out.append(f"- {_source(c.heading, c.path, c.start_line, c.end_line, links)}")
    return "\n".join(out)


def index_summary(r: IndexReport, settings: Settings) -> str:
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


def prepare_summary(ready: dict, cache: Path) -> str:
    """What `rag prepare` made ready."""
    questions = "ONNX Runtime" if ready["questions"] == "onnx" else "torch (slower)"
    notes = "its int8 copy" if ready["notes"].startswith("onnx-int8") else "the float network"
    lines = [
        f"Encoders ready in {cache}: questions through {questions}, note text through {notes}."
    ]
    return "\n".join([*lines, *(f"  {p}" for p in ready["problems"])])


def check_report(gen: Path | None, problems: list[str], as_json: bool) -> str:
    """What `rag index --check` found."""
    if as_json:
        return json.dumps({"generation": gen.name if gen else None, "problems": problems})
    if problems:
        return "\n".join([*problems, "rebuild it with `rag index --full`"])
    return f"{gen}: every file matches its checksum"


def print_notices(notices: Iterable[str]) -> None:
    for notice in notices:
        say(f"note: {notice}", err=True)


def read_questions(prompt: str = "> ") -> Iterator[str]:
    """Lines typed at the terminal (or piped in), until end of input."""
    while True:
        try:
            line = input(prompt if sys.stdin.isatty() else "")
        except EOFError:
            return
        if line.strip():
            yield line


class ProgressBar:
    """A progress bar on stderr, shown from the first text embedded (none if nothing is)."""

    def __init__(self) -> None:
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc="embedding", unit="text", file=sys.stderr)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def read_history(path: Path) -> list[Exchange]:
    """Earlier turns from a JSONL file: {"question": ..., "answer": ...} a line."""
    return [
        Exchange(str(item["question"]), str(item.get("answer", ""))) for item in read_jsonl(path)
    ]


def read_jsonl(path: Path, needs: tuple[str, ...] = ("question",)) -> Iterator[dict]:
    if not path.is_file():
        raise BadInput(f"file {path} does not exist")
    for n, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or any(k not in item for k in needs):
                raise ValueError
        except ValueError:
            wanted = " and ".join(repr(k) for k in needs)
            raise BadInput(f"{path} line {n} is not a JSON object with {wanted}") from None
        yield item


def print_json(out: dict, qid: str | None, args: argparse.Namespace) -> None:
    if qid is not None:
        out = {"id": qid, **out}
    print(json_line(out), end="", flush=bool(args.batch))


def print_error(args: argparse.Namespace, qid: str | None, raw: str, e: Exception) -> None:
    if qid is None:
        raise e
    if args.json:
        print(json_line({"id": qid, "question": raw, "error": str(e)}), end="", flush=True)
    else:
        say(f"[{qid}] error: {e}", err=True)
