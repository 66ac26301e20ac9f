"""`rag mcp`: a real MCP client session from the `mcp` SDK against the real server, started as
a subprocess over stdio, then over streamable HTTP with sign-in off and on.

The notes and index are the chat app's (tests/test_app.py `app_files`): the default notes
plus a hostile one; filters are tried over the small vault (tests/test_vault.py `vault_files`).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from test_app import SQS_QUESTION, _clean_env, _free_port, _wait_for_port, app_files
from test_vault import QUEUE_PROPERTIES, vault_files

RAG = Path(sys.executable).parent / "rag"
TOOLS = {"search", "ask", "get_note", "status", "reindex"}


@pytest.fixture(scope="module")
def files(tmp_path_factory, aws_settings, embedder) -> Path:
    return app_files(tmp_path_factory, aws_settings, embedder)


def _args(files: Path, *more: str) -> list[str]:
    notes, index = files / "notes", files / "index"
    return ["mcp", "--notes", str(notes), "--index", str(index), *more]


def session(server, check):
    """Run `check(client)` in a client session with `server` (stdio params or a transport),
    in a thread of its own: the browser tests' Playwright keeps an event loop in this one."""

    async def main():
        async with Client(server, read_timeout_seconds=120) as client:
            await check(client)

    with ThreadPoolExecutor(1) as pool:
        pool.submit(anyio.run, main).result()


def test_stdio_tools_answer_with_exact_lines_and_editor_uris(files: Path, tmp_path: Path):
    params = StdioServerParameters(
        command=str(RAG), args=_args(files), env=_clean_env(), cwd=str(tmp_path)
    )
    notes = files / "notes" / "aws-notes.md"
    lines = notes.read_text(encoding="utf-8").split("\n")

    async def check(client: Client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        assert all(t.output_schema for t in tools.values())  # structured output, typed
        assert tools["search"].input_schema["properties"]["k"]["anyOf"][0]["maximum"] == 50

        found = await client.call_tool("search", {"query": "max sqs message size", "k": 3})
        assert not found.is_error
        hits = found.structured_content["hits"]
        assert len(hits) == 3 and hits[0]["path"] == "aws-notes.md"
        top = hits[0]
        assert top["uri"] == f"vscode://file{notes.resolve()}:{top['start_line']}"

        asked = await client.call_tool("ask", {"question": SQS_QUESTION})
        answer = asked.structured_content
        assert answer["status"] == "answered" and "256KB" in answer["answer"]
        for c in answer["citations"]:  # each uri opens the line that holds the cited text
            line = int(c["uri"].rsplit(":", 1)[1])
            assert line == c["start_line"]
            assert lines[line - 1].strip() in c["text"]

        follow = await client.call_tool(
            "ask", {"question": "and the default?", "history": [{"question": SQS_QUESTION}]}
        )
        assert "searched" in follow.structured_content  # read as a follow-up

        start = answer["citations"][0]["start_line"]
        got = await client.call_tool(
            "get_note", {"path": "aws-notes.md", "start_line": start, "end_line": start + 2}
        )
        assert got.structured_content["text"] == "\n".join(lines[start - 1 : start + 2])
        assert got.structured_content["total_lines"] == len(lines)

        for bad in ("../outside.md", "/etc/passwd", "aws-notes.md/../../x.md", "notes.txt"):
            refused = await client.call_tool("get_note", {"path": bad})
            assert refused.is_error, bad
            assert "note" in refused.content[0].text
        empty = await client.call_tool("ask", {"question": "   "})
        assert empty.is_error and "empty" in empty.content[0].text
        too_many = await client.call_tool("search", {"query": "sqs", "k": 0})
        assert too_many.is_error
        past_end = await client.call_tool("get_note", {"path": "aws-notes.md", "start_line": 10**6})
        assert past_end.is_error and "outside" in past_end.content[0].text

        status = (await client.call_tool("status", {})).structured_content  # still serving
        assert status["files"] == 2 and status["chunks"] > 400 and not status["stale"]
        reindexed = (await client.call_tool("reindex", {})).structured_content
        assert reindexed["state"] == "done" and reindexed["report"]["embedded"] == 0

        note = await client.read_resource("rag://notes/aws-notes.md")
        assert note.contents[0].text.split("\n")[:3] == lines[:3]
        with pytest.raises(Exception, match="note|security|traversal"):
            await client.read_resource("rag://notes/../outside.md")

    session(params, check)


RETRIES = "what happens to a message when retries fail"


def test_search_and_ask_take_the_clis_filters_over_a_vault(tmp_path_factory, embedder, tmp_path):
    files = vault_files(tmp_path_factory, embedder)
    params = StdioServerParameters(
        command=str(RAG), args=_args(files), env=_clean_env(), cwd=str(tmp_path)
    )

    async def check(client: Client):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        for name in ("search", "ask"):
            assert "filters" in tools[name].input_schema["properties"], name

        txt = {"where": ["folder:projects/*.txt"]}
        found = await client.call_tool("search", {"query": "retries", "k": 2, "filters": txt})
        hits = found.structured_content["hits"]
        assert [(h["path"], h["start_line"], h["end_line"]) for h in hits] == [
            ("projects/standup.txt", 4, 5),
            ("projects/standup.txt", 1, 2),
        ]  # as `rag search --where folder:projects/*.txt` finds them
        # a note without tags: left out, as in the API's JSON (not the SDK's null), in both forms
        assert not any({"tags", "properties"} & h.keys() for h in hits)
        assert json.loads(found.content[0].text) == found.structured_content

        tagged = {"where": ["tag:architecture"], "since": "2000-01-01"}
        found = await client.call_tool("search", {"query": RETRIES, "k": 2, "filters": tagged})
        hits = found.structured_content["hits"]
        assert sorted((h["start_line"], tuple(h["tags"])) for h in hits) == [
            (10, ("architecture", "infra/queues", "retention")),
            (15, ("architecture", "infra/queues", "infra/consumers")),
        ]
        assert {h["path"] for h in hits} == {"projects/queue-design.md"}
        assert all(h["properties"] == QUEUE_PROPERTIES for h in hits)

        asked = await client.call_tool("ask", {"question": RETRIES, "filters": tagged})
        answer = asked.structured_content
        cited = answer["citations"] or answer["candidates"]
        assert cited and {c["path"] for c in cited} == {"projects/queue-design.md"}
        assert all("architecture" in c["tags"] for c in cited)

        for filters, says in [
            ({"where": ["tag"]}, "--where takes NAME:VALUE (tag:infra, folder:projects/*, "),
            ({"since": "01/02/2026"}, "--since takes a date as YYYY-MM-DD, not '01/02/2026'"),
            ({"where": ["tag:nowhere"]}, f"no note in {files / 'notes'} matches tag:nowhere"),
        ]:
            for tool, args in (("search", {"query": "retries"}), ("ask", {"question": "retries"})):
                refused = await client.call_tool(tool, {**args, "filters": filters})
                assert refused.is_error, (tool, filters)
                said = refused.content[0].text
                assert said.startswith(f"Error executing tool {tool}: {says}"), said
        everywhere = await client.call_tool("search", {"query": RETRIES, "k": 3})
        assert len({h["path"] for h in everywhere.structured_content["hits"]}) > 1  # unscoped

    session(params, check)


def test_stdio_answers_at_once_while_the_first_index_is_built(aws_settings, tmp_path, capsys):
    """No index yet: the handshake does not wait for it; status says it is being built, and a
    search waits for the first pass, then answers."""
    shutil.copytree(aws_settings.notes_dir, tmp_path / "files" / "notes")  # and no index/
    params = StdioServerParameters(
        command=str(RAG), args=_args(tmp_path / "files"), env=_clean_env(), cwd=str(tmp_path)
    )
    times: dict[str, float] = {}
    started = time.monotonic()

    async def check(client: Client):
        times["handshake"] = time.monotonic() - started
        status = (await client.call_tool("status", {})).structured_content
        assert status["indexing"] and status["chunks"] == 0, status  # building, not yet in
        found = await client.call_tool("search", {"query": "max sqs message size", "k": 3})
        times["first search"] = time.monotonic() - started
        assert not found.is_error and found.structured_content["hits"][0]["path"] == "aws-notes.md"
        status = (await client.call_tool("status", {})).structured_content
        assert status["chunks"] > 400 and status["files"] == 1, status

    session(params, check)
    with capsys.disabled():
        print("\nrag mcp, no index: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    assert (tmp_path / "files" / "index").is_dir()


def test_a_client_that_leaves_during_the_first_build_ends_the_server_cleanly(
    aws_settings, tmp_path
):
    shutil.copytree(aws_settings.notes_dir, tmp_path / "files" / "notes")  # and no index/
    log = tmp_path / "mcp.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(RAG), *_args(tmp_path / "files")],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=out,
            env=_clean_env(),
            cwd=tmp_path,
        )
    try:
        deadline = time.monotonic() + 60
        while "building it from" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        time.sleep(3)  # into the model's load or its first batch
        proc.stdin.close()  # the client is gone: the server ends, the build with it
        assert proc.wait(timeout=120) == 0, log.read_text()
    finally:
        proc.kill()
    said = log.read_text()
    assert "terminate called" not in said and "Traceback" not in said, said


@contextlib.contextmanager
def mcp_http(files: Path, workdir: Path, env: dict[str, str] | None = None):
    """`rag mcp --http` on a free port; yields its /mcp URL."""
    port, log = _free_port(), workdir / "mcp.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(RAG), *_args(files, "--http", "--mcp-port", str(port))],
            cwd=workdir,
            env={**_clean_env(), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(proc, port, log)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def _asks(client: Client) -> None:
    asked = await client.call_tool("ask", {"question": SQS_QUESTION})
    assert asked.structured_content["status"] == "answered"


def test_http_without_sign_in(files: Path, tmp_path: Path):
    with mcp_http(files, tmp_path) as url:
        session(url, _asks)
        with httpx2.Client() as h:  # another site's name for 127.0.0.1 (DNS rebinding)
            assert h.post(url, headers={"Host": "evil.example"}, json={}).status_code == 400


def test_http_with_sign_in_needs_the_password(files: Path, tmp_path: Path):
    with mcp_http(files, tmp_path, env={"RAG_AUTH": "ann:s3cret"}) as url:
        with httpx2.Client() as h:
            assert h.post(url, json={}).status_code == 401
            assert h.post(url, json={}, auth=("ann", "nope")).status_code == 401

        def signed(auth):
            return streamable_http_client(url, http_client=httpx2.AsyncClient(auth=auth))

        session(signed(("ann", "s3cret")), _asks)
        with pytest.raises(Exception):  # noqa: B017  (the SDK's error for a 401 varies)
            session(signed(("ann", "wrong")), _asks)
