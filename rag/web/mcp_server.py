"""`rag mcp`: your notes as an MCP server for AI agents (Claude, Cursor, VS Code), on the
official `mcp` SDK; over stdio by default, or streamable HTTP on 127.0.0.1 with `--http`.

    rag mcp --notes ~/vault                 # stdio: the agent starts it as a subprocess
    rag mcp --http --mcp-port 7861          # http://127.0.0.1:7861/mcp

Tools (typed input schemas; structured output in the models of `rag.answer.schema`):
search, ask, get_note, status, reindex; search and ask take `filters`, the strings of
`rag search --where/--since`: {"where": ["tag:infra", "folder:projects/*"], "since":
"2026-01-01"}. Resources: `rag://notes/{path}`, a whole note. A bad argument or filter, a path
outside the notes or a missing index comes back as a tool error with its message; the server
keeps running. Over HTTP, the Host rule of the chat page applies (`rag.web.guard`), and with
sign-in on, the same user:password as HTTP Basic auth.
"""

from __future__ import annotations

import json
import logging
from functools import partial
from typing import Annotated

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from rag.answer.base import Exchange
from rag.answer.schema import (
    MAX_K,
    AnswerOut,
    FiltersIn,
    NoteOut,
    ReindexOut,
    SearchOut,
    StatusOut,
    TurnIn,
)
from rag.errors import RagError
from rag.notes import read_note_text
from rag.settings import Mode, Settings
from rag.web.service import Service

log = logging.getLogger(__name__)
INSTRUCTIONS = (
    "The user's own markdown notes. Use `ask` for an answer quoted from the notes with [n] "
    "citations (status answered, partial or not_found: do not answer beyond what it cites); "
    "`search` for the best-matching sections; `get_note` for exact lines around a citation. "
    "Every hit and citation has path, start_line and end_line, and a `uri` that opens that "
    "line in the user's editor."
)
READ_ONLY = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
NOTE_URI = "rag://notes/{+path}"

Question = Annotated[str, Field(description="the question, in the user's words")]
K = Annotated[int | None, Field(ge=1, le=MAX_K, description="hits; unset: the server's")]
Line = Annotated[int | None, Field(ge=1, description="1-based; unset: the first / the last")]
AsTyped = Annotated[bool, Field(description="search misspelled words as typed")]
Filters = Annotated[
    FiltersIn | None,
    Field(description='only notes these allow: {"where": ["tag:infra"], "since": "2026-01-01"}'),
]


def build_server(service: Service) -> MCPServer:
    server = MCPServer("rag", title="Your notes", instructions=INSTRUCTIONS)

    @server.tool(title="Search the notes", annotations=READ_ONLY)
    async def search(
        query: Question,
        k: K = None,
        mode: Mode = "hybrid",
        as_typed: AsTyped = False,
        filters: Filters = None,
    ) -> SearchOut:
        """The note sections that best match a query, best first, each with its exact lines."""
        return await _run(service.search, query, k, mode, as_typed, filters)

    @server.tool(title="Ask the notes", annotations=READ_ONLY)
    async def ask(
        question: Question,
        history: Annotated[
            list[TurnIn], Field(description="earlier turns, oldest first, for a follow-up")
        ] = [],  # noqa: B006  (the SDK reads the default into the schema; never mutated)
        k: K = None,
        as_typed: AsTyped = False,
        filters: Filters = None,
    ) -> AnswerOut:
        """An answer made of cited lines of the notes: status answered, partial (the topic is
        there, not the asked detail) or not_found (with the nearest sections)."""
        turns = [Exchange(t.question, t.answer) for t in history]
        return await _run(service.ask, question, turns, k, None, as_typed, filters)

    @server.tool(title="Read lines of a note", annotations=READ_ONLY)
    async def get_note(
        path: Annotated[str, Field(description="the note, relative to the notes folder")],
        start_line: Annotated[int | None, Field(ge=1, description="first line; unset: 1")] = None,
        end_line: Annotated[
            int | None, Field(ge=1, description="last line; unset: the end")
        ] = None,
    ) -> NoteOut:
        """Exact lines of a note, as they are on disk (the whole note without a range)."""
        return await _run(service.note, path, start_line, end_line)

    @server.tool(title="Index status", annotations=READ_ONLY)
    async def status() -> StatusOut:
        """Files, sections, model and build time of the index; whether the notes changed."""
        return await _run(service.status)

    @server.tool(
        title="Re-index the notes",
        annotations=ToolAnnotations(readOnlyHint=False, idempotentHint=True, openWorldHint=False),
    )
    async def reindex() -> ReindexOut:
        """Bring the index up to date with the notes now (only changed text is embedded)."""
        return await _run(service.reindex)

    @server.resource(NOTE_URI, name="note", title="A whole note", mime_type="text/markdown")
    async def note(path: str) -> str:
        """A note's text (the same folder rule as get_note)."""
        try:
            return await anyio.to_thread.run_sync(read_note_text, service.settings.folders, path)
        except RagError as e:
            raise ResourceError(str(e)) from None

    return server


async def _run(fn, *args) -> CallToolResult:
    """`fn(*args)` off the event loop; a RagError becomes a tool error with its message.

    The result goes out as the JSON API and `--json` write it: a key left unset (a note's
    `tags`, `uri`) is left out, not sent as null, which the SDK's own dump would do."""
    try:
        out = await anyio.to_thread.run_sync(partial(fn, *args))
    except RagError as e:
        raise ToolError(str(e)) from None
    data = out.model_dump(mode="json", exclude_unset=True)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def http_app(server: MCPServer, settings: Settings):
    """The streamable-HTTP app at /mcp, behind the chat page's Host rule and sign-in."""
    from rag.web.guard import BasicAuth, Guard, Throttle

    # The Host rule is Guard's (it knows --allowed-hosts); the SDK's own would refuse those.
    off = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = server.streamable_http_app(transport_security=off, host=settings.host)
    if settings.sign_in:
        app = BasicAuth(app, sign_in=settings.sign_in, throttle=Throttle())
    return Guard(app, names=settings.host_names)


def serve(service: Service, http: bool) -> None:
    """Run until the client closes stdin (stdio) or until interrupted (HTTP)."""
    server = build_server(service)
    if not http:
        server.run("stdio")
        return
    import uvicorn

    s = service.settings
    config = uvicorn.Config(http_app(server, s), host=s.host, port=s.mcp_port, log_level="warning")
    log.info("MCP over streamable HTTP: http://%s:%d/mcp", s.host, s.mcp_port)
    uvicorn.Server(config).run()
