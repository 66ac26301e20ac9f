"""The JSON API beside the chat page, for scripts and tools: the same fields as
`rag search/ask --json` (`rag.answer.schema`), the same sign-in as the page.

    POST /api/search   {"question": "max sqs message size", "k": 3}     -> SearchOut
    POST /api/search   {"question": "backoff", "filters": {"where": ["tag:infra"]}}
    POST /api/ask      {"question": "and the default?", "history": [{"question": "..."}]}
    GET  /api/notes/aws-notes.md?start=1691&end=1693                   -> NoteOut
    GET  /api/status                                                   -> StatusOut
    POST /api/reindex                                                  -> ReindexOut
    GET  /api/docs     the routes and schemas as a page (no script, nothing from a CDN)
    GET  /api/openapi.json

    curl -s localhost:7860/api/ask -H 'content-type: application/json' \\
         -d '{"question": "max sqs message size?"}'

With sign-in on, a request carries the page's session cookie, or the user:password as HTTP
Basic auth (`curl -u me:secret`). A bad argument is 400, a path that names no note 404, an
index that cannot be read 503; each with {"detail": "what is wrong"}.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from rag.answer.base import Exchange
from rag.answer.schema import (
    AnswerOut,
    AskIn,
    NoteOut,
    ReindexOut,
    SearchIn,
    SearchOut,
    StatusOut,
)
from rag.errors import BadInput, NoteRefused, RagError
from rag.settings import Settings
from rag.web.guard import BasicAuth, Throttle
from rag.web.service import Service

PREFIX = "/api"


def api_app(service: Service) -> FastAPI:
    """The API as its own app, to be mounted at PREFIX."""
    app = FastAPI(
        title="rag: your notes, with citations",
        summary="Search and ask your markdown notes; every answer cites exact lines.",
        version="1",
        docs_url=None,  # FastAPI's pages load their script from a CDN: ours below
        redoc_url=None,
    )

    @app.exception_handler(RagError)
    async def rag_error(request: Request, e: RagError) -> JSONResponse:
        status = 404 if isinstance(e, NoteRefused) else 400 if isinstance(e, BadInput) else 503
        return JSONResponse({"detail": str(e)}, status)

    @app.post("/search", response_model_exclude_unset=True)
    def search(body: SearchIn) -> SearchOut:
        """The note sections that best match a question, best first."""
        return service.search(body.question, body.k, body.mode, body.as_typed, body.filters)

    @app.post("/ask", response_model_exclude_unset=True)
    def ask(body: AskIn) -> AnswerOut:
        """An answer made of cited lines: answered, partial or not_found."""
        history = [Exchange(t.question, t.answer) for t in body.history]
        return service.ask(body.question, history, body.k, body.mode, body.as_typed, body.filters)

    @app.get("/notes/{path:path}")
    def note(path: str, start: int | None = None, end: int | None = None) -> NoteOut:
        """Lines start..end of a note (all of it without them), exactly as on disk."""
        return service.note(path, start, end)

    @app.get("/status")
    def status() -> StatusOut:
        """The live index: files, sections, model, when it was built, whether it is stale."""
        return service.status()

    @app.post("/reindex")
    def reindex() -> ReindexOut:
        """Bring the index up to date with the notes now (busy: one is running already)."""
        return service.reindex()

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(docs_page(app.openapi()))

    return app


def add_api(
    app: FastAPI,
    service: Service,
    settings: Settings,
    signed_in: Callable[[Request], Awaitable[bool]],
) -> None:
    """Mount the API at /api on `app`; with sign-in on, behind `BasicAuth` (or the cookie)."""
    api = api_app(service)
    if settings.sign_in:
        api.add_middleware(BasicAuth, sign_in=settings.sign_in, throttle=Throttle(), also=signed_in)
    app.mount(PREFIX, api)


def docs_page(spec: dict) -> str:
    """The OpenAPI document as one readable page: each route, then each schema's fields."""
    e = html.escape
    parts = [f"<h1>{e(spec['info']['title'])}</h1><p>{e(spec['info'].get('summary', ''))}</p>"]
    parts.append(f'<p><a href="{PREFIX}/openapi.json">openapi.json</a></p>')
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            params = ", ".join(p["name"] for p in op.get("parameters", []))
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
            out = op["responses"].get("200", {}).get("content", {}).get("application/json", {})
            parts.append(
                f"<h2><code>{e(method.upper())} {e(PREFIX + path)}</code></h2>"
                f"<p>{e(op.get('description') or op.get('summary', ''))}</p><ul>"
                + (f"<li>parameters: <code>{e(params)}</code></li>" if params else "")
                + (f"<li>body: {_ref(body.get('schema', {}))}</li>" if body else "")
                + (f"<li>returns: {_ref(out.get('schema', {}))}</li>" if out else "")
                + "</ul>"
            )
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        rows = "".join(
            f"<tr><td><code>{e(field)}</code></td><td>{_ref(prop)}</td>"
            f"<td>{e(prop.get('description', ''))}</td></tr>"
            for field, prop in schema.get("properties", {}).items()
        )
        parts.append(f'<h3 id="{e(name)}">{e(name)}</h3><table>{rows}</table>')
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>rag API</title>'
        f"<style>{_CSS}</style></head><body><main>{''.join(parts)}</main></body></html>"
    )


def _ref(schema: dict) -> str:
    """A schema's type, linking to a named one."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#{html.escape(name)}">{html.escape(name)}</a>'
    if "anyOf" in schema:
        return " | ".join(_ref(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_ref(schema.get('items', {}))}"
    if "enum" in schema:
        return html.escape(" | ".join(json.dumps(v) for v in schema["enum"]))
    if "const" in schema:
        return html.escape(json.dumps(schema["const"]))
    return html.escape(str(schema.get("type", "any")))


_CSS = """
body { font: 15px/1.5 system-ui, sans-serif; color: #1f2328; margin: 0; }
main { max-width: 52rem; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
h2 { font-size: 1.05rem; margin-top: 2rem; } code { font-size: 0.95em; }
table { border-collapse: collapse; } td { border-top: 1px solid #d0d7de; padding: 4px 10px; }
a { color: #0550ae; }
"""
