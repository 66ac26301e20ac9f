"""The chat app: `app.py` as a real server on loopback, asked through gradio_client.

The server fixture builds its index on first start (~25 s), once for the whole module.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from gradio_client import Client

from rag.answer import NOT_IN_NOTES, Answer, Citation
from rag.chunking import Chunk
from rag.search import Hit
from rag.ui import escape_md, reply_markdown

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 120  # seconds; the first start embeds ~470 chunks
SQS_QUESTION = "What is the maximum size of an SQS message?"
SQS_HEADING = "SQS -- Simple queueing service"
HOSTILE_NOTE = """# Hostile note

## Rendering payloads

- The onerror payload is <img src=x onerror=alert(1)> in a note
- The script payload is <script>alert(1)</script> in a note
"""


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path
    notes: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("app")
    notes = tmp / "notes"
    notes.mkdir()
    shutil.copy(ROOT / "notes" / "aws-notes.md", notes)
    (notes / "hostile.md").write_text(HOSTILE_NOTE, encoding="utf-8")
    port, log = _free_port(), tmp / "app.log"
    args = ["--notes", str(notes), "--index", str(tmp / "index"), "--port", str(port)]
    with open(log, "w") as out:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), *args],
            cwd=tmp,  # gradio writes a .gradio/ folder into the working directory
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(proc, port, log)
        yield Server(proc, port, log, notes)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    return Client(server.url, verbose=False, download_files=False, analytics_enabled=False)


def _clean_env() -> dict[str, str]:
    """The test's own settings only: no RAG_* or GRADIO_* from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAG_", "GRADIO_"))}
    return {**env, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(proc: subprocess.Popen, port: int, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"app.py exited with {proc.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"app.py did not listen on {port} within {STARTUP_TIMEOUT}s:\n{log.read_text()}")


def _line_of(path: Path, needle: str) -> int:
    """1-based number of the one line of `path` containing `needle`."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(found) == 1, found
    return found[0]


# --- the running app -------------------------------------------------------------------


def test_ask_answers_with_cited_heading_and_lines(server: Server, client: Client):
    line = _line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    reply = client.predict(SQS_QUESTION, api_name="/ask")
    answer, sources = reply.split("\n\n**Sources**\n\n")
    assert "256KB" in answer.split("\n")[0] and answer.split("\n")[0].endswith(" [1]")
    head, quote = sources.split("\n\n")[:2]
    assert head == (
        f"**[1]** AWS Notes > Integration and Messaging > {SQS_HEADING} (aws-notes.md:{line})"
    )
    assert quote == "> \\- Max message size (256KB; 1KB-256KB)"


def test_ask_json_gives_the_cli_schema(server: Server, client: Client):
    line = _line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    out = json.loads(client.predict(SQS_QUESTION, api_name="/ask_json"))
    assert out["answered"] is True
    assert out["answer"].split("\n")[0].endswith("Max message size (256KB; 1KB-256KB) [1]")
    first = out["citations"][0]
    assert (first["path"], first["heading"][-1], first["start_line"]) == (
        "aws-notes.md",
        SQS_HEADING,
        line,
    )
    assert out["notices"] == []


@pytest.mark.parametrize("question", ["", "   \n\t  "])
def test_empty_question_gets_a_clear_message(server: Server, client: Client, question: str):
    reply = client.predict(question, api_name="/ask")
    assert reply == (
        "**Nothing searched:** the question is empty: type what you want to find in your notes."
    )
    assert json.loads(client.predict(question, api_name="/ask_json"))["error"].startswith(
        "the question is empty"
    )
    assert server.proc.poll() is None


def test_unanswerable_question_lists_nearest_sections(client: Client):
    reply = client.predict("What is the capital of France?", api_name="/ask")
    head, nearest = reply.split("\n\nThe nearest sections of your notes:\n\n")
    assert head == NOT_IN_NOTES
    items = nearest.split("\n")
    assert len(items) == 3
    assert all(item.startswith("- AWS Notes > ") and "(aws-notes.md:" in item for item in items)


@pytest.mark.parametrize(
    ("question", "shown"),
    [
        ("What is the onerror payload?", "&lt;img src=x onerror=alert(1)&gt;"),
        ("What is the script payload?", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ],
)
def test_html_in_a_note_is_shown_as_text(client: Client, question: str, shown: str):
    reply = client.predict(question, api_name="/ask")
    assert "(hostile.md:" in reply
    assert reply.count(shown) == 2  # in the answer line and in its quoted source
    assert "<" not in reply


def test_long_question_is_cut_with_a_notice(client: Client):
    reply = client.predict("sqs " * 600, api_name="/ask")
    assert reply.startswith(
        "**Note:** the question was over 2000 characters and was cut to its first 2000\n\n"
    )


def test_binds_loopback_by_default(server: Server):
    assert f"Running on local URL:  http://127.0.0.1:{server.port}" in server.log.read_text()
    listening = _listen_addresses(server.port)
    if listening is None:
        pytest.skip("no /proc/net/tcp to read the bound address from")
    assert listening == {"127.0.0.1"}


def _listen_addresses(port: int) -> set[str] | None:
    """IPv4 addresses with a socket listening on `port`, from the kernel's table (Linux)."""
    table = Path("/proc/net/tcp")
    if not table.exists():
        return None
    found = set()
    for row in table.read_text().splitlines()[1:]:
        _, local, _, state = row.split()[:4]
        addr, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A = LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))  # little-endian
    return found


def test_missing_notes_folder_exits_with_a_message(tmp_path: Path):
    missing = tmp_path / "no-such-notes"
    run = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--notes", str(missing)]
        + ["--index", str(tmp_path / "index"), "--port", str(_free_port())],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
    )
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("app: error: notes folder ") and str(missing) in last
    assert "Traceback" not in run.stderr


# --- the pure parts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
        ("&lt;b&gt; & co", "&amp;lt;b&amp;gt; &amp; co"),
        ("- **a** [b](c) `d` _e_ ~f~ | g", r"\- \*\*a\*\* \[b\](c) \`d\` \_e\_ \~f\~ \| g"),
        ("![x](http://x/y.png)", r"!\[x\](http://x/y.png)"),
        ("# h", r"\# h"),
        ("> quoted", "&gt; quoted"),
        ("12. item", r"12\. item"),
        ("a\\<b>", r"a\\&lt;b&gt;"),
        ("  - child\n\tcode", "&nbsp;&nbsp;\\- child\n&nbsp;&nbsp;&nbsp;&nbsp;code"),
        ("SQS -- max 256KB (1KB-256KB)", "SQS -- max 256KB (1KB-256KB)"),
        ("   ", ""),
    ],
)
def test_escape_md(text: str, escaped: str):
    assert escape_md(text) == escaped


def _cite(n: int, text: str, line: int) -> Citation:
    return Citation(n, "x<y>.md", ("Top", "<b>Sub</b>"), line, line, text, text, line, line)


def test_reply_markdown_escapes_notes_but_keeps_markers():
    answer = Answer(
        question="q",
        text="<script>alert(1)</script> › hi [1]\n- second [2]",
        answered=True,
        citations=[_cite(1, "  - <script>alert(1)</script> › hi", 3), _cite(2, "- second", 4)],
        notices=("cut <here>",),
    )
    assert reply_markdown(answer) == (
        "**Note:** cut &lt;here&gt;\n\n"
        "&lt;script&gt;alert(1)&lt;/script&gt; › hi [1]\n"
        "\\- second [2]\n\n"
        "**Sources**\n\n"
        "**[1]** Top > &lt;b&gt;Sub&lt;/b&gt; (x&lt;y&gt;.md:3)\n\n"
        "> \\- &lt;script&gt;alert(1)&lt;/script&gt; › hi\n\n"
        "**[2]** Top > &lt;b&gt;Sub&lt;/b&gt; (x&lt;y&gt;.md:4)\n\n"
        "> \\- second"
    )


def test_reply_markdown_declined_lists_candidates():
    chunk = Chunk("id", "a.md", ("A", "<i>B</i>"), 5, 9, "text", "A > B", "hash")
    answer = Answer("q", NOT_IN_NOTES, False, candidates=[Hit(chunk, 0.5)])
    assert reply_markdown(answer) == (
        f"{NOT_IN_NOTES}\n\nThe nearest sections of your notes:\n\n"
        "- A > &lt;i&gt;B&lt;/i&gt; (a.md:5-9)"
    )
