"""The chat app: `app.py` as a real server on loopback, asked over HTTP and gradio_client.

The notes are notes/aws-notes.md plus a hostile note; their index is the session's aws index
(tests/conftest.py) brought up to date with the hostile note, once per session (`app_files`),
and shared with tests/test_browser.py. The pure parts (rendering, viewer paths, feedback
lines) are tested at the end, without a server.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from rag.answer.base import NOT_IN_NOTES, Answer, Citation
from rag.errors import NoteRefused
from rag.index.cutting import Chunk
from rag.notes import resolve_note
from rag.search.engine import Hit
from rag.web.feedback import feedback_entry, load_votes, record_vote
from rag.web.markup import block_html, inline_html, lines_html
from rag.web.panel import sources_html
from rag.web.render import chat_html
from rag.web.reply import escape_md, reply_markdown
from rag.web.viewer import note_page

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 120  # seconds: loading the model and the index
SQS_QUESTION = "What is the maximum size of an SQS message?"
# Its answer quotes the 256KB line [1], alone or with the bullet under it: the two score within
# a hair of each other, so which one ranks first is the eval's business, not these tests'.
SQS_QUOTE = "Max message size (256KB; 1KB-256KB)"
SQS_ANSWER = f"- {SQS_QUOTE}"
SQS_LINES = r"(-\d+)?\)"  # what follows "aws-notes.md:1693" in a citation
SQS_HEADING = "SQS -- Simple queueing service"
HOSTILE_NOTE = """# Hostile note

## Rendering payloads

- The onerror payload is <img src=x onerror=alert(1)> in a note
- The script payload is <script>alert(1)</script> in a note
- The template payload is ${alert(1)} and {{constructor.constructor('alert(1)')()}} in a note
- The autolink payload is https://example.com/phish and www.example.com and ann@example.com

## Link payloads

- The link payload is [x](javascript:alert(1)) in a note
- The data payload is [d](data:text/html,<script>alert(5)</script>) in a note
- The angle payload is <https://example.com/angle> and <javascript:alert(6)> in a note

## Table payload

| Table payload | Where |
| --- | --- |
| <img src=y onerror=alert(2)> | `<img src=z onerror=alert(3)>` |

## Code payload

- The code payload is this YAML:
  ```yaml
  Resources:
    Queue:
      Type: AWS::SQS::Queue  # <script>alert(4)</script>
  ```
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


def app_files(tmp_path_factory: pytest.TempPathFactory, aws_settings, embedder) -> Path:
    """A folder with notes/ (aws-notes.md + hostile.md) and index/, made once per session."""
    from rag.index.build import update_index

    base = tmp_path_factory.getbasetemp() / "app-files"
    if not (base / "ready").exists():
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(aws_settings.notes_dir, base / "notes")
        (base / "notes" / "hostile.md").write_text(HOSTILE_NOTE, encoding="utf-8")
        shutil.copytree(aws_settings.index_dir, base / "index")
        update_index(base / "notes", base / "index", embedder, aws_settings.max_chunk_tokens)
        (base / "ready").touch()
    return base


@contextlib.contextmanager
def run_app(files: Path, workdir: Path, *args: str, env: dict[str, str] | None = None):
    """app.py on a free port over `files`, with `workdir` as its working directory."""
    port, log = _free_port(), workdir / "app.log"
    notes = files / "notes"
    argv = ["--notes", str(notes), "--index", str(files / "index"), "--port", str(port), *args]
    with open(log, "w") as out:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), *argv],
            cwd=workdir,  # gradio writes a .gradio/ folder into the working directory
            env={**_clean_env(), **(env or {})},
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
def server(tmp_path_factory, aws_settings, embedder):
    files = app_files(tmp_path_factory, aws_settings, embedder)
    with run_app(files, tmp_path_factory.mktemp("app")) as running:
        yield running


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


def line_of(path: Path, needle: str) -> int:
    """1-based number of the one line of `path` containing `needle`."""
    found = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(found) == 1, found
    return found[0]


# --- the running app -------------------------------------------------------------------


def test_ask_answers_with_cited_heading_and_lines(server: Server, client: Client):
    line = line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    reply = client.predict(SQS_QUESTION, api_name="/ask")
    answer, sources = reply.split("\n\n**Sources**\n\n")
    assert answer.split("\n")[0].startswith(SQS_ANSWER) and answer.endswith(" [1]")
    head, quote = sources.split("\n\n")[:2]
    where = f"AWS Notes › Integration and Messaging › {SQS_HEADING} (aws-notes.md:{line}"
    assert head.startswith(f"**[1]** {where}") and re.fullmatch(SQS_LINES, head[len(where) + 8 :])
    assert quote.split("\n")[0] == "> \\- Max message size (256KB; 1KB-256KB)"


def test_ask_json_gives_the_cli_schema(server: Server, client: Client):
    line = line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    out = json.loads(client.predict(SQS_QUESTION, api_name="/ask_json"))
    assert out["answered"] is True
    assert out["answer"].startswith(SQS_ANSWER) and " [1]" in out["answer"]
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
    assert all(item.startswith("- AWS Notes › ") and "(aws-notes.md:" in item for item in items)


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


# --- the note viewer, over HTTP -------------------------------------------------------------


def test_viewer_shows_the_note_with_the_cited_lines_marked(server: Server):
    line = line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    page = httpx.get(f"{server.url}note/aws-notes.md?start={line}&end={line + 1}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]  # no script runs
    html = page.text
    assert f'<div class="l hit" id="L{line}"><span class="n">{line}</span>' in html
    assert f'<div class="l hit" id="L{line + 1}">' in html
    assert (
        f'<div class="l" id="L{line + 2}">' in html and f'<div class="l" id="L{line - 1}">' in html
    )
    assert f"lines {line}-{line + 1} cited" in html


def test_viewer_shows_html_in_a_note_as_text(server: Server):
    html = httpx.get(f"{server.url}note/hostile.md?start=5&end=5").text
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img" not in html and "<script" not in html


@pytest.fixture(scope="module")
def outside(server: Server) -> str:
    """A secret .md outside the notes folder, a symlink to it, a hidden note and a .csv inside."""
    secret = server.notes.parent / "secret.md"
    secret.write_text("TOP SECRET\n", encoding="utf-8")
    (server.notes / "link-out.md").symlink_to(secret)
    (server.notes / ".private").mkdir()
    (server.notes / ".private" / "diary.md").write_text("TOP SECRET\n", encoding="utf-8")
    (server.notes / "plain.csv").write_text("TOP SECRET\n", encoding="utf-8")
    return str(secret)


@pytest.mark.parametrize(
    "path",
    [
        "../secret.md",
        "..%2Fsecret.md",
        "%2E%2E/secret.md",
        "notes/../../secret.md",
        "link-out.md",  # a symlink inside the folder that leads out of it
        ".private/diary.md",
        "plain.csv",  # not a note: .md, .markdown and .txt are
        "no-such-note.md",
        "",
    ],
)
def test_viewer_refuses_anything_but_a_note_in_the_folder(server: Server, outside, path):
    page = httpx.get(f"{server.url}note/{path}")
    assert page.status_code == 404
    assert "TOP SECRET" not in page.text


def test_viewer_refuses_an_absolute_path(server: Server, outside):
    for url in (f"note/{outside}", f"note/%2F{outside.lstrip('/')}"):
        page = httpx.get(server.url + url)
        assert page.status_code == 404 and "TOP SECRET" not in page.text, url


# --- the JSON API (/api/) ----------------------------------------------------------------


def test_api_answers_with_the_cli_schema(server: Server):
    from rag.answer.schema import AnswerOut, SearchOut

    line = line_of(server.notes / "aws-notes.md", "Max message size (256KB")
    with httpx.Client(base_url=server.url + "api/", timeout=60) as api:
        asked = api.post("ask", json={"question": SQS_QUESTION})
        assert asked.status_code == 200
        out = asked.json()
        assert list(out) == list(AnswerOut.model_fields)[: len(out)]  # the CLI's keys, in order
        assert out["status"] == "answered" and out["citations"][0]["start_line"] == line
        notes = (server.notes / "aws-notes.md").resolve()
        assert out["citations"][0]["uri"] == f"vscode://file{notes}:{line}"
        found = api.post("search", json={"question": "max sqs message size", "k": 2}).json()
        assert SearchOut.model_validate(found).hits[0].path == "aws-notes.md"
        assert len(found["hits"]) == 2 and "searched" not in found
        follow = {"question": "and the default?", "history": [{"question": SQS_QUESTION}]}
        assert "searched" in api.post("ask", json=follow).json()


def test_api_notes_status_reindex_and_docs(server: Server):
    lines = (server.notes / "aws-notes.md").read_text(encoding="utf-8").split("\n")
    with httpx.Client(base_url=server.url + "api/", timeout=60) as api:
        got = api.get("notes/aws-notes.md", params={"start": 3, "end": 5}).json()
        assert got["text"] == "\n".join(lines[2:5]) and got["total_lines"] == len(lines)
        status = api.get("status").json()
        assert status["files"] == 2 and status["model"] and status["stale"] is False
        assert api.post("reindex").json()["state"] in ("done", "busy")
        docs = api.get("docs")
        assert docs.status_code == 200 and "POST /api/ask" in docs.text
        assert "<script" not in docs.text  # nothing from a CDN
        spec = api.get("openapi.json").json()
        assert {"/search", "/ask", "/notes/{path}", "/status", "/reindex"} <= set(spec["paths"])


@pytest.mark.parametrize(
    ("method", "route", "body", "status", "says"),
    [
        ("post", "ask", {"question": "  "}, 400, "the question is empty"),
        ("post", "ask", {}, 422, "question"),
        ("post", "search", {"question": "sqs", "k": 0}, 422, "k"),
        ("post", "search", {"question": "sqs", "mode": "magic"}, 422, "mode"),
        ("get", "notes/%2E%2E/outside.md", None, 404, "note"),
        ("get", "notes/%2Fetc%2Fpasswd", None, 404, "note"),
        ("get", "notes/.obsidian/app.md", None, 404, "note"),
        ("get", "notes/aws-notes.md?start=999999", None, 400, "outside"),
    ],
)
def test_api_refuses_bad_input_clearly(server: Server, method, route, body, status, says):
    with httpx.Client(base_url=server.url + "api/", timeout=60) as api:
        reply = api.request(method.upper(), route, json=body)
    assert reply.status_code == status, reply.text
    assert says in json.dumps(reply.json()["detail"])
    assert server.proc.poll() is None


def test_api_search_and_ask_take_the_clis_filters_over_a_vault(tmp_path_factory, embedder):
    from test_vault import QUEUE_PROPERTIES, vault_files

    files = vault_files(tmp_path_factory, embedder)
    with (
        run_app(files, tmp_path_factory.mktemp("vault-app")) as vault,
        httpx.Client(base_url=vault.url + "api/", timeout=60) as api,
    ):
        people = {"where": ["folder:people"]}
        found = api.post("search", json={"question": "meeting", "k": 5, "filters": people})
        assert found.status_code == 200, found.text
        hits = {h["path"]: h for h in found.json()["hits"]}
        assert sorted(hits) == ["people/elodie.md", "people/tokyo.md"]  # only those two
        assert hits["people/tokyo.md"]["tags"] == ["会議"]
        assert "tags" not in hits["people/elodie.md"]  # no tags, no key
        assert "properties" not in hits["people/tokyo.md"]

        question = "what happens to a message when retries fail"
        draft = {"where": ["status:draft"], "since": "2000-01-01"}
        asked = api.post("ask", json={"question": question, "filters": draft}).json()
        cited = asked["citations"] or asked["candidates"]
        assert cited and {c["path"] for c in cited} == {"projects/queue-design.md"}
        assert all(c["properties"] == QUEUE_PROPERTIES for c in cited)
        assert all("infra/queues" in c["tags"] for c in cited)

        for filters, says in [
            ({"where": ["tag"]}, "--where takes NAME:VALUE (tag:infra, folder:projects/*, "),
            ({"since": "01/02/2026"}, "--since takes a date as YYYY-MM-DD, not '01/02/2026'"),
            ({"where": ["tag:nowhere"]}, f"no note in {vault.notes} matches tag:nowhere"),
        ]:
            for route in ("search", "ask"):
                reply = api.post(route, json={"question": "retries", "filters": filters})
                assert reply.status_code == 400, (route, reply.text)
                assert reply.json()["detail"].startswith(says), reply.text
        one = api.post("search", json={"question": "retries", "filters": {"where": "tag:x"}})
        assert one.status_code == 422  # where is a list, as --where is repeated
        assert vault.proc.poll() is None


# --- sign-in ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(server: Server, tmp_path_factory):
    files = server.notes.parent
    with run_app(files, tmp_path_factory.mktemp("auth"), env={"RAG_AUTH": "ann:s3cret"}) as s:
        yield s


def test_auth_guards_the_chat_and_the_viewer(auth_server: Server):
    url = auth_server.url
    with httpx.Client(base_url=url) as browser:
        assert browser.get("config").status_code == 401
        assert browser.get("note/aws-notes.md").status_code == 401
        wrong = browser.post("login", data={"username": "ann", "password": "nope"})
        assert wrong.status_code == 400
        assert browser.post("login", data={"username": "ann", "password": "s3cret"}).is_success
        assert browser.get("config").status_code == 200
        assert browser.get("note/aws-notes.md").status_code == 200
    with pytest.raises(Exception, match="401|[Ll]ogin|auth"):
        Client(url, verbose=False, download_files=False, analytics_enabled=False)
    asked = Client(url, auth=("ann", "s3cret"), verbose=False, download_files=False)
    assert "256KB" in asked.predict(SQS_QUESTION, api_name="/ask")


def test_auth_guards_the_api(auth_server: Server):
    question = {"question": SQS_QUESTION}
    with httpx.Client(base_url=auth_server.url, timeout=60) as h:
        assert h.get("api/status").status_code == 401
        assert h.post("api/ask", json=question).status_code == 401
        assert h.get("api/status", auth=("ann", "nope")).status_code == 401
        assert h.get("api/docs").headers["www-authenticate"].startswith("Basic")
        assert h.post("api/ask", json=question, auth=("ann", "s3cret")).json()["answered"]
        assert h.post("login", data={"username": "ann", "password": "s3cret"}).is_success
        assert h.get("api/status").status_code == 200  # the page's session cookie will do


def test_auth_must_be_user_and_password(tmp_path: Path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "app.py"), "--notes", str(tmp_path)],
        cwd=tmp_path,
        env={**_clean_env(), "RAG_AUTH": "no-colon"},
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
    )
    assert run.returncode == 2
    assert run.stderr.strip() == "app: error: RAG_AUTH must hold user:password, both non-empty"


# --- the pure parts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
        ("&lt;b&gt; & co", "&amp;lt;b&amp;gt; &amp; co"),
        ("- **a** [b](c) `d` _e_ ~f~ | g", r"\- \*\*a\*\* \[b\](c) \`d\` \_e\_ \~f\~ \| g"),
        ("![x](http://x/y.png)", r"!\[x\](http\://x/y.png)"),
        ("see www.x.io, a@x.io", r"see www\.x.io, a\@x.io"),
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
        "**[1]** Top › &lt;b&gt;Sub&lt;/b&gt; (x&lt;y&gt;.md:3)\n\n"
        "> \\- &lt;script&gt;alert(1)&lt;/script&gt; › hi\n\n"
        "**[2]** Top › &lt;b&gt;Sub&lt;/b&gt; (x&lt;y&gt;.md:4)\n\n"
        "> \\- second"
    )


def test_reply_markdown_declined_lists_candidates():
    chunk = Chunk("id", "a.md", ("A", "<i>B</i>"), 5, 9, "text", "A > B", "hash")
    answer = Answer("q", NOT_IN_NOTES, False, candidates=[Hit(chunk, 0.5)])
    assert reply_markdown(answer) == (
        f"{NOT_IN_NOTES}\n\nThe nearest sections of your notes:\n\n"
        "- A › &lt;i&gt;B&lt;/i&gt; (a.md:5-9)"
    )


# --- the chat message, the sources panel, the viewer page and feedback lines ---------------


def _answer(*citations: Citation, notices=()) -> Answer:
    text = "\n".join(f"{c.text.strip().lstrip('- ')} [{c.n}]" for c in citations)
    return Answer("q", text, True, list(citations), notices=notices)


def _section_cite(n: int, line: int) -> Citation:
    """A citation of one line of the section a.md:10-13 ("## <b>S</b>" and three items)."""
    excerpt = "## <b>S</b>\n- one <i>\n- two\n- three"
    text = excerpt.split("\n")[line - 10]
    return Citation(n, "a b.md", ("T", "<b>S</b>"), line, line, text, excerpt, 10, 13)


def _link(n: int, url: str, title: str) -> str:
    return f'[<a href="{url}" title="{title}" target="_blank" rel="noopener">{n}</a>]'


def test_chat_html_links_each_marker_to_the_viewer():
    answer = _answer(_section_cite(1, 11), _section_cite(2, 13), notices=("read <this>",))
    one = _link(1, "/note/a%20b.md?start=11&amp;end=11#L11", "a b.md:11: - one &lt;i&gt;")
    three = _link(2, "/note/a%20b.md?start=13&amp;end=13#L13", "a b.md:13: - three")
    assert chat_html(answer) == (
        "<p><strong>Note:</strong> read &lt;this&gt;</p>"
        f"<p>one &lt;i&gt; {one}<br>three {three}</p>"
        '<details class="rag-sources" open><summary><strong>Sources</strong></summary>'
        f"<ul><li>T › &lt;b&gt;S&lt;/b&gt;: {one} a b.md:11, {three} a b.md:13</li></ul>"
        "</details>"
    )


def test_chat_html_declined_links_the_nearest_sections():
    chunk = Chunk("id", "a.md", ("A", "[B] `c`"), 5, 9, "text", "A > B", "hash")
    answer = Answer("q", NOT_IN_NOTES, False, candidates=[Hit(chunk, 0.5)])
    link = '<a href="/note/a.md?start=5&amp;end=9#L5" target="_blank" rel="noopener">a.md:5-9</a>'
    assert chat_html(answer) == (
        f"<p>{NOT_IN_NOTES}</p><p>The nearest sections of your notes:</p>"
        f"<ul><li>A › [B] <code>c</code> ({link})</li></ul>"
    )


def test_sources_panel_marks_the_cited_lines_and_escapes_the_note():
    c1, c2 = _section_cite(1, 11), _section_cite(2, 13)
    chunk = Chunk("id", "a b.md", c1.heading, 10, 13, c1.excerpt, "T > S", "hash")
    hit = Hit(chunk, 0.8123, bm25_rank=3, dense_rank=1)
    html = sources_html(_answer(c1, c2), [hit], why=True)
    assert '<div class="rag-asked">For “q”</div>' in html  # which question it belongs to
    assert html.count('<li class="rag-card">') == 1  # one section, two cited lines
    assert '<div class="rag-head">T › &lt;b&gt;S&lt;/b&gt;</div>' in html
    assert 'href="/note/a%20b.md?start=11&amp;end=11#L11"' in html and ">[1] a b.md:11</a>" in html
    assert '<span class="rag-line"><strong>## &lt;b&gt;S&lt;/b&gt;</strong></span>' in html
    assert '<mark class="rag-line"><span class="rag-n">[1]</span>- one &lt;i&gt;</mark>' in html
    assert '<span class="rag-line">- two</span>' in html
    assert '<mark class="rag-line"><span class="rag-n">[2]</span>- three</mark>' in html
    assert "BM25 rank #3 · dense rank #1 · fused score 0.812" in html
    assert "<b>S" not in html and "<i>" not in html
    assert "BM25 rank" not in sources_html(_answer(c1), [hit], why=False)


def test_viewer_page_escapes_and_marks():
    page = note_page("x<y>.md", "# <b>T</b>\n<script>alert(1)</script>\nlast", 2, 2)
    assert "<title>x&lt;y&gt;.md</title>" in page
    assert (
        '<div class="l" id="L1"><span class="n">1</span><span class="t"><strong># &lt;b&gt;T'
        in page
    )
    assert (
        '<div class="l hit" id="L2"><span class="n">2</span><span class="t">&lt;script&gt;' in page
    )
    assert '<div class="l" id="L3">' in page and "line 2 cited" in page
    assert "<script>" not in page and "<b>" not in page


def test_resolve_note_keeps_to_the_folder(tmp_path: Path):
    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "sub" / "a.md").write_text("a")
    (tmp_path / "out.md").write_text("out")
    (notes / "out.md").symlink_to(tmp_path / "out.md")
    (notes / "in.md").symlink_to(notes / "sub" / "a.md")
    assert resolve_note(notes, "sub/a.md") == (notes / "sub" / "a.md").resolve()
    assert resolve_note(notes, "in.md") == (notes / "sub" / "a.md").resolve()
    for bad in ["out.md", "../out.md", "sub/../../out.md", str(tmp_path / "out.md"), "sub", ""]:
        with pytest.raises(NoteRefused):
            resolve_note(notes, bad)


def test_feedback_lines_are_appended(tmp_path: Path):
    answer = _answer(_section_cite(1, 11))
    answer.question, answer.searched = "and the default?", "lambda timeout the default?"
    path = tmp_path / "deep" / "feedback.jsonl"
    record_vote(path, feedback_entry(answer))
    record_vote(path, feedback_entry(Answer("q2", NOT_IN_NOTES, False), "up"))
    first, second = [json.loads(line) for line in path.read_text().splitlines()]
    assert set(first) == {"question", "answer", "vote", "citations", "time", "asked"}
    assert (first["question"], first["asked"], first["vote"]) == (
        "lambda timeout the default?",
        "and the default?",
        "down",
    )
    assert first["answer"] == "one <i> [1]"
    assert first["citations"] == [
        {
            "n": 1,
            "path": "a b.md",
            "heading": ["T", "<b>S</b>"],
            "start_line": 11,
            "end_line": 11,
            "text": "- one <i>",
        }
    ]
    assert first["time"].endswith("Z")
    assert second["question"] == "q2" and second["citations"] == [] and "asked" not in second
    assert second["vote"] == "up"


def test_a_new_vote_on_an_answer_replaces_its_line_and_taking_it_back_removes_it(tmp_path):
    path = tmp_path / "feedback.jsonl"
    path.write_text('{"question": "by hand", "vote": "down"}')  # no newline at the end
    a, b = _answer(_section_cite(1, 11)), Answer("q2", NOT_IN_NOTES, False)
    record_vote(path, feedback_entry(a, "down", key="k1"))
    record_vote(path, feedback_entry(b, "down", key="k2"))
    record_vote(path, feedback_entry(a, "down", "Wrong lines", key="k1"))  # a reason, later
    votes = load_votes(path)
    assert [(v["question"], v.get("id"), v.get("reason")) for v in votes] == [
        ("by hand", None, None),
        ("q2", "k2", None),
        (a.question, "k1", "Wrong lines"),
    ]
    record_vote(path, None, key="k2")  # the same button again: the vote is taken back
    assert [v.get("id") for v in load_votes(path)] == [None, "k1"]
    assert path.read_text().endswith("\n") and not list(tmp_path.glob("*.tmp"))


def test_a_feedback_file_that_is_not_votes_is_named(tmp_path: Path):
    from rag.errors import BadInput

    path = tmp_path / "feedback.jsonl"
    with pytest.raises(BadInput, match="no feedback file at .*vote on an answer"):
        load_votes(path)
    path.write_text('{"vote": "down"}\nnot json\n')
    with pytest.raises(BadInput, match="line 2 is not JSON"):
        load_votes(path)
    path.write_text('{"id": "q1", "question": "x", "gold": []}\n')
    with pytest.raises(BadInput, match="line 1 is not a vote"):
        load_votes(path)


def test_a_feedback_file_is_not_taken_for_eval_cases(tmp_path: Path):
    from rag.errors import BadInput
    from rag.quality.evaluate import load_cases

    path = tmp_path / "feedback.jsonl"
    record_vote(path, feedback_entry(_answer(_section_cite(1, 11)), key="k1"))
    with pytest.raises(BadInput, match="line 1 is a feedback line, not an eval case"):
        load_cases(path)


def test_gold_lines_marked_on_a_down_vote_become_an_eval_case(tmp_path: Path):
    from rag.quality.evaluate import load_cases
    from rag.web.feedback import eval_cases, mark_gold, newest_down_vote

    path = tmp_path / "feedback.jsonl"
    assert newest_down_vote(path) is None  # no file: the viewer offers nothing
    a, b = _answer(_section_cite(1, 11)), Answer("q2", NOT_IN_NOTES, False)
    record_vote(path, feedback_entry(a, "down", "Wrong lines", key="k1"))
    record_vote(path, feedback_entry(b, "up", key="k2"))
    assert newest_down_vote(path)["id"] == "k1"  # an up-vote is not offered
    assert mark_gold(path, "nope", "a b.md", 3, 4) is None  # no such vote: nothing changes
    entry = mark_gold(path, "k1", "a b.md", 12, 13)
    assert mark_gold(path, "k1", "a b.md", 12, 13) == entry  # twice: marked once
    assert entry["gold"] == [{"path": "a b.md", "start_line": 12, "end_line": 13}]
    record_vote(path, feedback_entry(a, "down", "Missed part of the answer", key="k1"))
    assert load_votes(path)[-1]["gold"] == entry["gold"]  # a new reason keeps the marks
    record_vote(path, feedback_entry(b, "down", "Should say not in my notes", key="k2"))
    record_vote(path, feedback_entry(a, "down", "Wrong lines", key="k3"))  # no marks: no case
    cases = eval_cases(load_votes(path))
    assert cases == [
        {"id": "feedback-k1", "question": a.question, "gold": entry["gold"], "type": "feedback"},
        {"id": "feedback-k2", "question": "q2", "gold": [], "type": "feedback"},
    ]
    mine = tmp_path / "mine.jsonl"
    mine.write_text("".join(json.dumps(c) + "\n" for c in cases))
    loaded = [(c.id, len(c.gold)) for c in load_cases(mine)]
    assert loaded == [("feedback-k1", 1), ("feedback-k2", 0)]


def test_the_app_picks_up_edits_without_a_restart(tmp_path_factory, aws_settings, embedder):
    files = app_files(tmp_path_factory, aws_settings, embedder)
    own = tmp_path_factory.mktemp("live-files")
    shutil.copytree(files / "notes", own / "notes")
    shutil.copytree(files / "index", own / "index")
    with run_app(own, tmp_path_factory.mktemp("live-app")) as running:
        client = Client(running.url, verbose=False, download_files=False, analytics_enabled=False)
        assert client.predict(api_name="/status").startswith("Index: ")
        (own / "notes" / "zebra.md").write_text(
            "# Zebra\n\n- the zebra protocol listens on port 9999\n", encoding="utf-8"
        )
        deadline = time.monotonic() + 120
        reply = ""
        while "9999" not in reply:  # every reply meanwhile comes from the old, whole generation
            assert time.monotonic() < deadline, f"the edit never showed up: {reply}"
            reply = client.predict("zebra protocol port", api_name="/ask")
            assert reply.strip()
            time.sleep(0.5)
        status = client.predict(api_name="/reindex")
        # The count depends on the notes other tests left in the shared folder (a copied
        # symlink becomes a note); a busy machine may take a minute.
        said = r"Index: \d+ notes, \d+ sections, updated (just now|\d+ min ago) \("
        assert re.match(said, status), status


def test_a_multi_line_part_is_shown_as_the_note_has_it():
    """A fenced block as a code block with its language, its indentation and a copy button, a
    table as a table, bullets as a nested list with the markers on the last; note HTML inert.
    The /ask reply has them as escaped markdown, code verbatim inside a fence it cannot close."""
    code = Citation(1, "a.md", ("T",), 3, 6, "x", "x", 3, 6)
    table = Citation(2, "a.md", ("T",), 8, 11, "x", "x", 8, 11)
    bullets = Citation(3, "a.md", ("T",), 13, 14, "x", "x", 13, 14)
    text = (
        "- Template <b>\n  ```yaml\n  Key: `v`\n    Sub: 1\n  ``` [1]\n"
        "| A | B |\n| --- | --- |\n| 1 <i> | `2` | [2]\n"
        "- Parent\n  - child *x* [3]"
    )
    answer = Answer("q", text, True, [code, table, bullets])
    message = chat_html(answer)
    link = re.compile(r'\[<a href="[^"]+" title="[^"]+" target="_blank" rel="noopener">(\d)</a>\]')
    message = link.sub(r"[\1]", message)
    assert (
        "<ul><li>Template &lt;b&gt;"
        '<div class="code_wrap"><button title="copy" class="copy_code_button"'
    ) in message
    assert '<pre><code class="language-yaml">Key: `v`\n  Sub: 1\n</code></pre></div>' in message
    assert "</ul><p>[1]</p><table>" in message
    assert "<td>1 &lt;i&gt;</td><td><code>2</code></td>" in message
    assert "</table><p>[2]</p>" in message
    assert "<li>Parent\n<ul><li>child <em>x</em> [3]</li>" in message
    reply = reply_markdown(answer)
    assert "- Template &lt;b&gt;\n```yaml\nKey: `v`\n  Sub: 1\n```\n[1]" in reply
    assert "| A | B |\n| --- | --- |\n| 1 &lt;i&gt; | \\`2\\` |\n\n[2]" in reply
    assert "- Parent\n  - child \\*x\\* [3]" in reply


# --- a note's markdown as HTML (rag.web.markup) ----------------------------------------------


@pytest.mark.parametrize(
    ("note", "shown"),
    [
        (
            "`a<b>` **b** _c_ ~~d~~",
            "<code>a&lt;b&gt;</code> <strong>b</strong> <em>c</em> <s>d</s>",
        ),
        (
            "[docs](https://x.io/a?b=1&c=2)",
            '<a href="https://x.io/a?b=1&amp;c=2" target="_blank" '
            'rel="noopener noreferrer">docs</a>',
        ),  # fmt: skip
        (
            "<https://x.io>",
            '<a href="https://x.io" target="_blank" rel="noopener noreferrer">https://x.io</a>',
        ),  # fmt: skip
        (
            "[n](/note/a.md#L3)",
            '<a href="/note/a.md#L3" target="_blank" rel="noopener noreferrer">n</a>',
        ),  # fmt: skip
        ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
        ("[x](JaVaScRiPt:alert(1))", "[x](JaVaScRiPt:alert(1))"),
        ("[d](data:text/html,hi)", "[d](data:text/html,hi)"),
        ("<javascript:alert(1)>", "&lt;javascript:alert(1)&gt;"),
        ("[r](other.md) [f](file:///etc/passwd)", "[r](other.md) [f](file:///etc/passwd)"),
        (
            "![i](https://x.io/i.png)",
            '!<a href="https://x.io/i.png" target="_blank" rel="noopener noreferrer">i</a>',
        ),  # fmt: skip
        ("see https://x.io and www.x.io", "see https://x.io and www.x.io"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
        ("  - a `b`", "  - a <code>b</code>"),  # a line keeps its indentation and bullet
        ("## T &amp; \\<b>", "## T &amp; &lt;b&gt;"),
    ],
)
def test_inline_markdown_renders_and_only_safe_links_link(note: str, shown: str):
    assert inline_html(note) == shown


def test_a_code_block_keeps_its_language_and_a_table_its_cells():
    html = block_html(
        "```yaml title\nKey:\n  <img src=x onerror=alert(1)>\n```\n\n"
        "| A | `<b>` |\n|:--|--:|\n| [x](javascript:alert(1)) | <i> |"
    )
    assert '<pre><code class="language-yaml">Key:\n  &lt;img src=x onerror=alert(1)&gt;\n' in html
    assert '<th style="text-align:left">A</th><th style="text-align:right"><code>&lt;b&gt;' in html
    assert '<td style="text-align:left">[x](javascript:alert(1))</td>' in html
    assert "<img" not in html and "<i>" not in html and "<b>" not in html


def test_a_hostile_language_name_is_dropped():
    html = block_html('```"><script>alert(1)</script>\nx\n```\n\n```c++ \nx\n```')
    assert "<pre><code>x\n</code></pre>" in html and "<script" not in html
    assert '<code class="language-c++">' in html


def test_lines_keep_their_rows_with_code_and_table_cells():
    lines = [
        "# T `x`",
        "- a [l](https://x.io)",
        "  ```sh",
        "  echo <b>",
        "",
        "  ```",
        "| A | `B` |",
        "|---|---|",
        "| 1 <i> | [j](javascript:alert(1)) |",
        "",
        "after",
    ]
    link = '<a href="https://x.io" target="_blank" rel="noopener noreferrer">l</a>'
    assert lines_html(lines) == [
        "<strong># T <code>x</code></strong>",
        f"- a {link}",
        '<span class="md-mark">  ```sh</span>',
        '<code class="language-sh">  echo &lt;b&gt;</code>',
        '<code class="language-sh"></code>',
        '<span class="md-mark">  ```</span>',
        '<span class="md-row"><span class="md-cell">A</span>'
        '<span class="md-cell"><code>B</code></span></span>',
        '<span class="md-mark">|---|---|</span>',
        '<span class="md-row"><span class="md-cell">1 &lt;i&gt;</span>'
        '<span class="md-cell">[j](javascript:alert(1))</span></span>',
        "",
        "after",
    ]


# --- citations that stay true after an edit ----------------------------------------------


def test_a_citation_keeps_the_digest_of_the_lines_it_quotes(aws_engine, aws_settings):
    from rag.answer.pipeline import ask
    from rag.index.cutting import span_digest, split_lines

    lines = split_lines((aws_settings.notes_dir / "aws-notes.md").read_text(encoding="utf-8"))
    for c in ask(aws_engine, SQS_QUESTION).citations:
        assert c.digest == span_digest(lines[c.start_line - 1 : c.end_line])


def test_relocate_finds_moved_lines_nearest_first():
    from rag.index.cutting import relocate, span_digest

    lines = ["a", "x", "y", "b", "x", "y", "c"]
    digest = span_digest(["x", "y"])
    assert relocate(lines, 2, 3, digest) == (2, 3)  # still there
    assert relocate(lines, 4, 5, digest) == (5, 6)  # moved: the nearest copy
    assert relocate(lines, 1, 2, digest) == (2, 3)
    assert relocate(["a", "b"], 1, 2, digest) is None  # gone
    assert relocate(lines, 0, 1, digest) is None and relocate(lines, 3, 2, digest) is None


def test_the_viewer_finds_cited_lines_after_an_edit(tmp_path: Path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from rag.index.cutting import span_digest
    from rag.web.viewer import add_viewer

    async def anyone(request) -> bool:
        return True

    note = tmp_path / "n.md"
    note.write_text("# N\n\n- alpha\n- beta\n- gamma\n", encoding="utf-8")
    app = FastAPI()
    add_viewer(app, tmp_path, anyone)
    viewer = TestClient(app)
    q = span_digest(["- beta", "- gamma"])
    same = viewer.get(f"/note/n.md?start=4&end=5&q={q}")
    assert same.status_code == 200 and "changed since" not in same.text

    note.write_text("# N\n\nnew line\nanother\n\n- alpha\n- beta\n- gamma\n", encoding="utf-8")
    moved = viewer.get(f"/note/n.md?start=4&end=5&q={q}", follow_redirects=False)
    assert moved.status_code == 307
    assert moved.headers["location"] == f"/note/n.md?start=7&end=8&q={q}&was=4-5#L7"
    page = viewer.get(moved.headers["location"]).text
    assert "the quoted lines are now 7-8 (was 4-5)" in page
    assert '<div class="l hit" id="L7">' in page and '<div class="l hit" id="L8">' in page

    note.write_text("# N\n\n- alpha\n", encoding="utf-8")
    gone = viewer.get(f"/note/n.md?start=4&end=5&q={q}")
    assert gone.status_code == 200 and "no longer in it (4-5)" in gone.text
    assert "l hit" not in gone.text  # nothing marked: the lines are not there


def test_kept_conversations_round_trip_and_survive_bad_storage(aws_settings):
    from rag.web.handlers import Handlers, Turn

    h = Handlers(None, aws_settings)  # only the settings are used by these two
    messages = [{"role": "user", "content": "lambda max timeout"}, {"role": "assistant"}]
    conv, saved = h.keep_conversation(
        None, messages, [Turn("lambda max timeout", "bm25", None)], []
    )
    conv2, saved = h.keep_conversation(None, messages[:1], [Turn("x " * 80, "hybrid", None)], saved)
    assert conv != conv2 and [c["id"] for c in saved] == [conv2, conv]  # newest first
    assert saved[0]["title"].endswith("…") and len(saved[0]["title"]) == 60
    shown, turns, _, reopened = h.reopen(1, saved)
    assert (shown, reopened) == (messages, conv)
    assert [(t.asked, t.mode, t.message) for t in turns] == [("lambda max timeout", "bm25", 1)]
    import gradio as gr

    for bad in ([], [None], [{"messages": 3}]):  # storage edited by hand: nothing changes
        assert h.reopen(0, bad) == (gr.skip(),) * 4
    shown, turns, _, reopened = h.reopen(0, [{"messages": ["x", 3], "questions": [], "id": 1}])
    assert (shown, turns, reopened) == ([], [], 1)  # only well-formed messages


def test_a_question_asked_before_the_first_index_waits_and_is_answered(aws_settings, aws_engine):
    """The page serves while the first index is built; a question asked then shows how far
    the build is, keeps what the user types next, and is answered once the index is in."""
    import gradio as gr

    from rag.search.live import LiveIndex
    from rag.web.handlers import Handlers

    live = LiveIndex(aws_settings, None)  # as `LiveIndex.first_build` starts, before its thread
    live._busy.acquire()
    live._step(120, 451)
    h = Handlers(live, aws_settings)
    assert "building the first index of your notes (120/451 texts embedded)" in live.describe()
    status, shown, intro, *examples = h.tick(live.version)
    assert "120/451" in status and shown == intro == gr.skip()  # the first screen stays
    steps = h.chat("max sqs message size", [], [], 5, "hybrid", False, False)
    box, shown_chat, turns, panel = next(steps)  # at once, while nothing is indexed
    assert box == "" and turns == [] and panel == gr.skip()
    assert shown_chat[0]["content"] == "max sqs message size"
    assert "120/451 texts embedded" in shown_chat[1]["content"]

    def index_arrives() -> None:  # what `_build_first` does once the first pass is written
        time.sleep(1.5)
        live._engine, live.version = aws_engine, 1
        live._progress = None
        live._busy.release()
        live._ready.set()

    threading.Thread(target=index_arrives).start()
    rest = list(steps)
    assert all(box == gr.skip() for box, *_ in rest)  # the box is emptied once, at the start
    box, shown_chat, turns, panel = rest[-1]
    assert [t.asked for t in turns] == ["max sqs message size"] and panel != gr.skip()
    assert "256" in shown_chat[-1]["content"] and "Sources" in shown_chat[-1]["content"]
    status, shown, intro, *examples = h.tick(0)  # the page's first screen, made again
    assert shown == 1 and "Topics:" in intro and "being indexed" not in intro
    assert [b.value for b in examples if b.visible], "no example question once indexed"


def test_a_first_index_that_cannot_be_built_says_why(aws_settings):
    from rag.errors import IndexProblem
    from rag.search.live import LiveIndex
    from rag.web.handlers import Handlers

    live = LiveIndex(aws_settings, None)
    live._error = "the first index could not be built: disk full"
    live._ready.set()
    assert live.describe() == "Index: none yet; the first index could not be built: disk full"
    with pytest.raises(IndexProblem, match="disk full"):
        _ = live.engine
    (_, shown_chat, turns, _), *more = Handlers(live, aws_settings).chat(
        "max sqs message size", [], [], 5, "hybrid", False, False
    )
    assert more == [] and turns == [] and "disk full" in shown_chat[-1]["content"]


def test_an_answer_offers_the_sections_around_the_ones_it_cited(aws_settings, aws_engine):
    """Under an answer, questions about the sections beside (or below) those it cited: none
    it cited, none the question named; each asked answers from the section it names."""
    from rag.answer.pipeline import ask
    from rag.search.live import LiveIndex
    from rag.web.handlers import Handlers
    from rag.web.page import next_questions

    answer = ask(aws_engine, SQS_QUESTION)
    (cited,) = {c.heading for c in answer.citations}
    offered = next_questions(aws_engine, answer)
    assert len(offered) == 3
    for question in offered:
        assert question.startswith("What do my notes say about ")
        topic = question.removeprefix("What do my notes say about ").removesuffix("?")
        then = ask(aws_engine, question)
        assert then.status == "answered"
        found = then.hits[0].chunk.heading  # the section it names, beside the cited one
        assert topic in found[-1] and found != cited and found[:-1] == cited[:-1]
        assert any(c.heading == found for c in then.citations)
    (_, shown, _, _), *more = Handlers(LiveIndex(aws_settings, aws_engine), aws_settings).chat(
        SQS_QUESTION, [], [], 5, "hybrid", False, False
    )
    assert more == []  # one step, the options included
    assert shown[-1]["options"] == [{"label": q, "value": q} for q in offered]
    declined = ask(aws_engine, "What is the capital of France?")
    assert next_questions(aws_engine, declined) == []  # nothing cited, nothing around it


class _CountedRows(Sequence):
    """Chunks that count the rows read, and know their paths without reading one (as a
    large index's ChunkFile does)."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks, self.read = chunks, set()

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, row):
        chunk = self.chunks[row]  # IndexError past the end, which ends iteration
        self.read.add(row)
        return chunk

    @property
    def paths(self) -> list[str]:
        return [c.path for c in self.chunks]


@dataclass(eq=False)
class _Shown:  # what the page reads of an Engine to draw its first screen
    chunks: _CountedRows


def test_a_large_index_opens_the_page_reading_a_spread_of_its_rows(aws_engine, monkeypatch):
    """The first screen reads every chunk of a small index, and evenly spread rows of a large
    one (which parses a row as it is read); an answer's next questions read only the cited
    note's rows."""
    from dataclasses import replace

    from rag.answer.pipeline import ask
    from rag.web import page

    own = list(aws_engine.chunks)
    small = _CountedRows(own)
    whole = page.intro(_Shown(small), "notes", None)
    assert small.read == set(range(len(own))) and re.search(r" and \d+ more$", whole)
    monkeypatch.setattr(page, "FIRST_SCREEN_CHUNKS", len(own) // 3)
    large = _CountedRows(own)
    spread = page.intro(_Shown(large), "notes", None)
    assert len(large.read) <= len(own) // 3 and max(large.read) > len(own) * 0.9
    assert spread.endswith(" and more") and spread.split("**Topics:**")[1].startswith(
        whole.split("**Topics:**")[1].split(" · ")[0]
    )

    answer = ask(aws_engine, SQS_QUESTION)
    others = [replace(c, path="other.md") for c in own]  # a second note, the same headings
    both = _CountedRows(own + others)
    offered = page.next_questions(_Shown(both), answer)
    assert offered == page.next_questions(aws_engine, answer)
    assert both.read and max(both.read) < len(own)  # the other note's rows were not read


def test_only_re_index_shows_progress_over_the_page(aws_settings):
    """Gradio's default progress lays a fading overlay over an event's outputs: on the panel
    at every click in the chat, on the status line at every tick. Caught mid-fade it failed
    the contrast audit once (text at 70% opacity); every update but a re-index is instant."""
    from rag.search.live import LiveIndex
    from rag.web.app import build_ui

    config = build_ui(LiveIndex(aws_settings, None), aws_settings).get_config_file()
    labels = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    shown = {
        labels.get(target[0]): d["show_progress"]
        for d in config["dependencies"]
        for target in d["targets"]
        if d["show_progress"] != "hidden"
    }
    assert shown == {"Re-index": "minimal"}
