"""The web app's guard (rag.web.guard): Host allow-list, security headers, no uploads, and
sign-in throttling; first as pure rules, then on app.py as a real server, and in Chromium
(a DNS-rebinding page, and the chat page working under the Content-Security-Policy).

The servers are tests/test_app.py's (`run_app` over `app_files`); the browsers are
tests/conftest.py's, one of them (`launch_browser`) resolving attacker.example to 127.0.0.1.
"""

from __future__ import annotations

import re
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from test_app import SQS_QUESTION, Server, app_files, run_app

from rag.web import guard
from rag.web.guard import Guard, Throttle, host_allowed, host_name

NAMES = frozenset({"localhost", "notes.lan"})
ATTACKER = "attacker.example"
NOTE_TEXT = "Max message size (256KB"

# --- the rules, without a server -----------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("127.0.0.1:7860", "127.0.0.1"),
        ("[::1]:7860", "::1"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("LocalHost:80", "localhost"),
        ("notes.lan.", "notes.lan"),
        (" Attacker.Example:7860 ", ATTACKER),
    ],
)
def test_host_name_drops_port_brackets_case_and_final_dot(host: str, name: str):
    assert host_name(host) == name


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:7860", True),
        ("192.168.1.20", True),  # any IP literal: rebinding needs a DNS name
        ("[::1]:7860", True),
        ("[fe80::1%eth0]:7860", True),
        ("localhost:7860", True),
        ("NOTES.LAN", True),
        ("attacker.example:7860", False),
        ("127.0.0.1.nip.io", False),  # a name that merely starts like an address
        ("[attacker.example]:80", False),
        ("localhost.attacker.example", False),
        ("", False),
        (None, False),  # no Host header at all
    ],
)
def test_host_allowed_takes_ip_literals_and_the_named_hosts(host: str | None, allowed: bool):
    assert host_allowed(host, NAMES) is allowed


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_backs_off_after_five_failures_doubling_to_the_cap():
    clock = FakeClock()
    t = Throttle(clock)
    for _ in range(4):
        t.failed("a")
    assert t.wait("a") == 0  # 4 failures: still free
    t.failed("a")
    assert t.wait("a") == 4.0  # the 5th: wait FIRST_WAIT
    clock.now += 1
    assert t.wait("a") == 3.0
    assert t.wait("b") == 0  # per client
    waits = []
    for _ in range(8):
        clock.now += t.wait("a")
        assert t.wait("a") == 0
        t.failed("a")
        waits.append(t.wait("a"))
    assert waits == [8, 16, 32, 64, 128, 256, 300, 300]


def test_throttle_forgets_after_a_success_or_a_quiet_window():
    clock = FakeClock()
    t = Throttle(clock)
    for _ in range(5):
        t.failed("a")
    t.succeeded("a")
    assert t.wait("a") == 0 and "a" not in t.failures
    for _ in range(5):
        t.failed("a")
    clock.now += guard.WINDOW + 1
    assert t.wait("a") == 0
    t.failed("a")
    assert t.failures["a"] == (1, clock.now)  # the count started again


def test_throttle_state_is_bounded(monkeypatch):
    monkeypatch.setattr(guard, "MAX_CLIENTS", 3)
    clock = FakeClock()
    t = Throttle(clock)
    for n in range(10):
        t.failed(f"10.0.0.{n}")
        clock.now += 1
    assert list(t.failures) == ["10.0.0.7", "10.0.0.8", "10.0.0.9"]  # the newest
    clock.now += guard.WINDOW + 1
    t.failed("10.0.0.99")
    assert list(t.failures) == ["10.0.0.99"]  # the quiet ones dropped


def _asgi_app() -> Guard:
    async def own_csp(request):
        return PlainTextResponse("x", headers={"Content-Security-Policy": "default-src 'none'"})

    async def socket(ws):
        await ws.accept()
        await ws.send_text("hi")
        await ws.close()

    inner = Starlette(routes=[Route("/own", own_csp), WebSocketRoute("/ws", socket)])
    return Guard(inner, NAMES)


def test_a_routes_own_csp_is_kept_and_gains_frame_ancestors():
    with TestClient(_asgi_app(), base_url="http://localhost") as client:
        r = client.get("/own")
    csp = r.headers["content-security-policy"]
    assert csp == "default-src 'none'; frame-ancestors 'none'"
    assert r.headers["x-frame-options"] == "DENY"


def test_a_websocket_with_a_foreign_host_is_refused():
    with TestClient(_asgi_app(), base_url="http://localhost") as client:
        with client.websocket_connect("/ws", headers={"Host": "localhost"}) as ws:
            assert ws.receive_text() == "hi"
        with (
            pytest.raises(WebSocketDenialResponse) as refused,
            client.websocket_connect("/ws", headers={"Host": ATTACKER}),
        ):
            pass
    assert refused.value.status_code == 400


# --- the real server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory, aws_settings, embedder):
    files = app_files(tmp_path_factory, aws_settings, embedder)
    workdir = tmp_path_factory.mktemp("guard")
    with run_app(files, workdir, "--allowed-hosts", "notes.lan") as running:
        yield running


@pytest.fixture(scope="module")
def auth_server(server: Server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("guard-auth")
    env = {"RAG_AUTH": "ann:s3cret"}
    with run_app(server.notes.parent, workdir, env=env) as running:
        yield running


def _get(server: Server, path: str, host: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", headers={"Host": host}, timeout=30)


@pytest.mark.parametrize("path", ["", "note/aws-notes.md", "gradio_api/info", "config"])
def test_a_foreign_host_is_refused_with_the_way_out(server: Server, path: str):
    r = _get(server, path, f"{ATTACKER}:{server.port}")
    assert r.status_code == 400
    assert f"'{ATTACKER}'" in r.text and f"--allowed-hosts {ATTACKER}" in r.text
    assert NOTE_TEXT not in r.text


def test_a_foreign_host_cannot_ask(server: Server):
    url = f"{server.url}gradio_api/call/ask_json"
    body = {"data": [SQS_QUESTION]}
    r = httpx.post(url, json=body, headers={"Host": f"{ATTACKER}:{server.port}"}, timeout=30)
    assert r.status_code == 400 and "event_id" not in r.text
    assert httpx.post(url, json=body, timeout=30).json()["event_id"]  # the same, from 127.0.0.1


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "notes.lan:{port}"])
def test_the_allowed_hosts_get_the_page_and_the_note(server: Server, host: str):
    host = host.format(port=server.port)
    assert _get(server, "", host).status_code == 200
    note = _get(server, "note/aws-notes.md", host)
    assert note.status_code == 200 and NOTE_TEXT in note.text


def test_the_page_carries_the_security_headers(server: Server):
    headers = _get(server, "", f"127.0.0.1:{server.port}").headers
    csp = headers["content-security-policy"]
    for directive in ["frame-ancestors 'none'", "object-src 'none'", "base-uri 'self'"]:
        assert directive in csp
    assert re.search(r"default-src 'self'(;|$)", csp)
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"


def test_the_viewer_keeps_its_stricter_policy(server: Server):
    headers = _get(server, "note/aws-notes.md", f"127.0.0.1:{server.port}").headers
    csp = headers["content-security-policy"]
    assert csp.startswith("default-src 'none';") and "frame-ancestors 'self'" in csp
    assert "script-src" not in csp  # not widened to the chat page's policy
    assert headers["x-frame-options"] == "SAMEORIGIN"  # the chat's sheet frames it, no other site
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["gradio_api/upload", "gradio_api/upload/"])
def test_uploads_are_refused(server: Server, path: str):
    files = {"files": ("x.html", b"<script>alert(1)</script>", "text/html")}
    headers = {"Origin": "http://evil.example"}
    r = httpx.post(f"{server.url}{path}", files=files, headers=headers, timeout=30)
    assert r.status_code == 403 and "Uploads are off" in r.text


def test_sign_in_is_throttled_after_five_failures(auth_server: Server):
    wrong = {"username": "ann", "password": "nope"}
    right = {"username": "ann", "password": "s3cret"}
    with httpx.Client(base_url=auth_server.url, timeout=30) as browser:
        codes = [browser.post("login", data=wrong).status_code for _ in range(6)]
        assert codes == [400] * 5 + [429]
        refused = browser.post("login", data=right)
        assert refused.status_code == 429
        wait = int(refused.headers["retry-after"])
        assert 0 < wait <= guard.FIRST_WAIT and "try again in" in refused.text
        time.sleep(wait)
        assert browser.post("login", data=right).status_code == 200  # and that resets it
        assert browser.post("login", data=wrong).status_code == 400


# --- in Chromium -------------------------------------------------------------------------------

CSP_WATCH = """document.addEventListener('securitypolicyviolation',
  (e) => console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))"""
REBIND_JS = """async () => {
  const note = await fetch('/note/aws-notes.md');
  const asked = await fetch('/gradio_api/call/ask_json', {method: 'POST',
    headers: {'Content-Type': 'application/json'}, body: JSON.stringify({data: ['sqs size']})});
  return {note: note.status, text: await note.text(), ask: asked.status, body: await asked.text()};
}"""


@pytest.fixture
def rebinding_browser(launch_browser):
    """A second Chromium whose DNS says attacker.example is 127.0.0.1, as after a rebinding."""
    return launch_browser(f"--host-resolver-rules=MAP {ATTACKER} 127.0.0.1")


def test_a_rebinding_page_cannot_read_the_notes(rebinding_browser, server: Server):
    page = rebinding_browser.new_page()
    r = page.goto(f"http://{ATTACKER}:{server.port}/", wait_until="domcontentloaded")
    assert r.status == 400 and "gradio" not in page.content().lower()
    seen = page.evaluate(REBIND_JS)  # script in the origin http://attacker.example:PORT
    assert (seen["note"], seen["ask"]) == (400, 400)
    assert NOTE_TEXT not in seen["text"] and "event_id" not in seen["body"]


def test_the_chat_works_under_the_csp(browser, server: Server):
    context = browser.new_context()
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    response = page.goto(server.url)
    assert "script-src" in response.headers["content-security-policy"]  # under the policy
    page.fill("#question textarea", SQS_QUESTION)
    page.press("#question textarea", "Enter")
    page.wait_for_function(  # a function, not a string: a string is eval'd in the page
        "() => /\\nSources\\n/.test(document.querySelector('#chat')?.innerText ?? '')",
        timeout=30_000,
    )
    assert "256KB" in page.locator("#chat .bot").last.inner_text()
    panel = page.locator("#sources")  # gr.HTML: its template is compiled in the page
    assert panel.locator(".rag-card").count() >= 1 and "Error rendering" not in panel.inner_text()
    context.close()
    violations = [m for m in console if "Content Security Policy" in m or "CSP violation" in m]
    assert violations == []
