"""The web app's door: who may ask (the Host), what every answer carries (security headers),
what is never taken (uploads) and how fast a password may be guessed (sign-in throttle).

    throttle = Throttle() if settings.sign_in else None
    app.add_middleware(Guard, names=settings.host_names, throttle=throttle)

One pure-ASGI middleware in front of everything `serve` mounts (the Gradio page and its API,
the /note/ viewer):
- The Host header must be an IP address or one of `names`: a page on a DNS name re-pointed
  at 127.0.0.1 (DNS rebinding) would otherwise be same-origin with the app and read the notes.
- Every HTTP response gets a Content-Security-Policy (unless the route set one: then it only
  gains `frame-ancestors 'none'` if it lacks frame-ancestors) and the usual companions.
- POSTs to Gradio's upload routes get 403: the page has no upload, so none is legitimate.
- With sign-in on, failed POST /login per client address are counted: after `FREE_TRIES`
  within `WINDOW`, 429 with Retry-After, doubling per further failure up to `MAX_WAIT`.

`BasicAuth` is the door of what programs call (the JSON API, MCP over HTTP): the same sign-in,
sent as HTTP Basic auth, its failures counted by the same kind of `Throttle`.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import math
import time
from collections.abc import Awaitable, Callable, Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Gradio 6 needs: its inline boot scripts ('unsafe-inline' script), gr.HTML's templates, which
# it compiles with new Function ('unsafe-eval': without it the sources panel shows an error),
# inline style attributes and <style> elements it writes at run time ('unsafe-inline' style),
# data: images (icons) and blob: images, data: fonts; everything else comes from this origin.
CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
UPLOADS = frozenset({"/gradio_api/upload", "/gradio_api/process_recording"})  # Gradio 6 routes
LOGIN = "/login"  # Gradio's sign-in form posts here (and to /login/)
FREE_TRIES, WINDOW, FIRST_WAIT, MAX_WAIT = 5, 900.0, 4.0, 300.0  # seconds
MAX_CLIENTS = 10_000


def host_name(host: str) -> str:
    """The name in a Host header, lower-case, without port, brackets or a final dot."""
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:7860
        host = host[1:].partition("]")[0]
    elif host.count(":") == 1:  # name:port; more colons: a bare IPv6 address
        host = host.partition(":")[0]
    return host.removesuffix(".")


def host_allowed(host: str | None, names: Iterable[str]) -> bool:
    """True for an IP address literal (rebinding needs a DNS name) or one of `names`."""
    if host is None:
        return False
    name = host_name(host)
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return bool(name) and name in names


class Throttle:
    """Failed sign-ins per client: `wait(client)` is how long it must wait before trying again.

    throttle = Throttle(clock=fake); throttle.failed("1.2.3.4"); throttle.wait("1.2.3.4")
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.failures: dict[str, tuple[int, float]] = {}  # client -> (count, time of last)

    def wait(self, client: str) -> float:
        count, last = self.failures.get(client, (0, 0.0))
        now = self.clock()
        if count < FREE_TRIES or now - last > WINDOW:
            return 0.0
        backoff = min(MAX_WAIT, FIRST_WAIT * 2 ** (count - FREE_TRIES))
        return max(0.0, last + backoff - now)

    def failed(self, client: str) -> None:
        now = self.clock()
        count, last = self.failures.pop(client, (0, now))
        self.failures[client] = (count + 1 if now - last <= WINDOW else 1, now)
        self._forget(now)

    def succeeded(self, client: str) -> None:
        self.failures.pop(client, None)

    def _forget(self, now: float) -> None:
        """Drop clients quiet for a window, and the oldest ones past MAX_CLIENTS."""
        for client, (_, last) in list(self.failures.items()):  # oldest first
            if now - last <= WINDOW and len(self.failures) <= MAX_CLIENTS:
                break
            del self.failures[client]


class Guard:
    """The ASGI middleware; `names` are the host names allowed besides IP addresses."""

    def __init__(
        self, app: ASGIApp, names: Iterable[str], throttle: Throttle | None = None
    ) -> None:
        self.app, self.names, self.throttle = app, frozenset(names), throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        host = Headers(scope=scope).get("host")
        if not host_allowed(host, self.names):
            name = host_name(host or "")[:100]
            text = (
                f"Refused host name {name!r}: this server answers to IP addresses and "
                f"{', '.join(sorted(self.names))}. If you reach it by this name, start it with "
                f"--allowed-hosts {name or 'NAME'} (or RAG_ALLOWED_HOSTS)."
            )
            await PlainTextResponse(text, 400)(scope, receive, send)
            return
        post = scope["type"] == "http" and scope["method"] == "POST"
        path = scope["path"].rstrip("/") or "/"
        if post and path in UPLOADS:
            await PlainTextResponse("Uploads are off: this page takes none.", 403)(
                scope, receive, send
            )
            return
        if post and path == LOGIN and self.throttle is not None:
            await self._sign_in(scope, receive, send, self.throttle)
            return
        await self.app(scope, receive, send)

    async def _sign_in(self, scope: Scope, receive: Receive, send: Send, t: Throttle) -> None:
        client = scope["client"][0] if scope.get("client") else "?"
        wait = t.wait(client)
        if wait > 0:
            seconds = math.ceil(wait)
            text = f"Too many failed sign-ins: try again in {seconds} s."
            headers = {"Retry-After": str(seconds)}
            await PlainTextResponse(text, 429, headers)(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status == 200:
            t.succeeded(client)
        else:
            t.failed(client)


class BasicAuth:
    """ASGI middleware: a request passes with `sign_in` as HTTP Basic auth, or when `also`
    lets it through (the chat page's session cookie); else 401 JSON. Wrong credentials are
    counted per client: past the throttle's free tries, 429 with Retry-After."""

    def __init__(
        self,
        app: ASGIApp,
        sign_in: tuple[str, str],
        throttle: Throttle,
        also: Callable[[Request], Awaitable[bool]] | None = None,
    ) -> None:
        self.app, self.throttle, self.also = app, throttle, also
        self.expected = "Basic " + base64.b64encode(":".join(sign_in).encode()).decode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope["client"][0] if scope.get("client") else "?"
        wait = self.throttle.wait(client)
        if wait > 0:
            seconds = math.ceil(wait)
            body = {"detail": f"Too many failed sign-ins: try again in {seconds} s."}
            await JSONResponse(body, 429, {"Retry-After": str(seconds)})(scope, receive, send)
            return
        given = Headers(scope=scope).get("authorization")
        if given is not None and _same(given, self.expected):
            self.throttle.succeeded(client)
            await self.app(scope, receive, send)
            return
        if self.also is not None and scope["type"] == "http" and await self.also(Request(scope)):
            await self.app(scope, receive, send)
            return
        if given is not None:
            self.throttle.failed(client)
        body = {"detail": "Sign in: send the chat page's user:password as HTTP Basic auth."}
        headers = {"WWW-Authenticate": 'Basic realm="rag", charset="UTF-8"'}
        await JSONResponse(body, 401, headers)(scope, receive, send)


def _same(given: str, expected: str) -> bool:
    """Whether an Authorization header carries the expected Basic credentials (the scheme
    name in any case), compared in constant time."""
    scheme, _, token = given.strip().partition(" ")
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    want = base64.b64decode(expected.partition(" ")[2])
    return scheme.lower() == "basic" and hmac.compare_digest(decoded, want)


def _with_headers(send: Send) -> Send:
    """`send` adding HEADERS to a response that lacks them; a route's own CSP is kept."""

    async def wrapped(message: Message) -> None:
        if message["type"] in ("http.response.start", "websocket.http.response.start"):
            message.setdefault("headers", [])
            headers = MutableHeaders(scope=message)
            csp = headers.get("content-security-policy")
            if csp is not None and "frame-ancestors" not in csp:
                headers["content-security-policy"] = f"{csp.rstrip('; ')}; frame-ancestors 'none'"
            for key, value in HEADERS.items():
                headers.setdefault(key, value)
        await send(message)

    return wrapped
