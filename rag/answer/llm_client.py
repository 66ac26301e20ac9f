"""Talking to an OpenAI-compatible server: the streamed request and its SSE events.

    for piece in within(llm.timeout, lambda stop: chat_stream(llm, messages, stop)):
        ...                      # content strings, then one Finished; LLMError on a fault

`within` runs the request in a worker thread, so the caller gets LLMError at the deadline even
while a read is blocked. `why_failed` says in a few words what went wrong. `rag.answer.llm`
builds the prompt, checks the citations and falls back to the extractive answer.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import httpx

from rag.errors import LLMError
from rag.settings import LLMSettings

BUFFERED = 256  # stream items read ahead of the caller, at most


@dataclass(frozen=True)
class Finished:
    reason: str  # the server's finish_reason: "stop", "length", ...


def parse_sse(lines: Iterable[str]) -> Iterator[str | Finished]:
    """The content pieces of a `/chat/completions` event stream, then its Finished."""
    data: list[str] = []
    reason = None
    seen = False
    for line in itertools.chain(lines, [""]):
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
            continue
        if line or not data:  # comments, event: and id: fields; a blank line ends an event
            continue
        payload, data, seen = "\n".join(data), [], True
        if payload.strip() == "[DONE]":
            yield Finished(reason or "stop")
            return
        content, finish = _delta(payload)
        if content:
            yield content
        reason = finish or reason
    if reason is None:
        raise LLMError("the stream ended early" if seen else "the server sent no event stream")
    yield Finished(reason)


def _delta(payload: str) -> tuple[str | None, str | None]:
    """(content, finish_reason) of one stream event; LLMError if it is not one."""
    try:
        event = json.loads(payload)
        if "error" in event:
            raise LLMError(f"the server reported: {_short(json.dumps(event['error']))}")
        if not event["choices"]:  # e.g. a closing usage event
            return None, None
        choice = event["choices"][0]
        content = (choice.get("delta") or {}).get("content")
        if content is not None and not isinstance(content, str):
            raise TypeError
        return content, choice.get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise LLMError("the server sent a malformed stream") from None


def chat_stream(
    llm: LLMSettings,
    messages: list[dict],
    stop: threading.Event,
    client: httpx.Client | None = None,
) -> Iterator[str | Finished]:
    """POST the messages to `/chat/completions` and yield the answer as it streams in.

    `client`, if given, sends the request (its transport decides where: a test seam); the
    timeouts and the API key come from `llm` either way."""
    body = {
        "messages": messages,
        "stream": True,
        "max_tokens": llm.max_tokens,
        "temperature": llm.temperature,
    }
    if llm.model:
        body["model"] = llm.model
    headers = {"Authorization": f"Bearer {llm.api_key}"} if llm.api_key else {}
    connect = min(llm.connect_timeout, llm.timeout)
    timeout = httpx.Timeout(connect, read=min(llm.read_timeout, llm.timeout))
    url = llm.request_url.rstrip("/") + "/chat/completions"
    with contextlib.ExitStack() as stack:
        if client is None:
            client = stack.enter_context(httpx.Client())
        r = stack.enter_context(
            client.stream("POST", url, json=body, headers=headers, timeout=timeout)
        )
        if r.status_code != 200:
            r.read()
            said = _short(llm.redact(r.text))
            raise LLMError(f"the server answered HTTP {r.status_code}: {said}")
        # Stop reading once the caller has gone (a server may trickle keep-alives forever).
        yield from parse_sse(itertools.takewhile(lambda _: not stop.is_set(), r.iter_lines()))


def within(seconds: float, items: Callable[[threading.Event], Iterator]) -> Iterator:
    """Pass on `items(stop)` from a worker thread; LLMError once `seconds` have passed.

    The deadline is hard: nothing is handed out after it, however fast the server sends. The
    worker holds at most BUFFERED items, so a server that sends faster than the caller takes
    waits on the socket instead of filling memory. A read in progress cannot be interrupted:
    the caller moves on at the deadline, and the worker, told by `stop`, ends after its next
    read or at the read timeout.
    """
    inbox: queue.Queue = queue.Queue(maxsize=BUFFERED)  # (True, item) | (False, None | error)
    stop = threading.Event()

    def put(entry: tuple) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                inbox.put(entry, timeout=0.1)
                return True
        return False

    def work() -> None:
        try:
            with contextlib.closing(items(stop)) as stream:
                for item in stream:
                    if not put((True, item)):
                        return
            put((False, None))
        except Exception as e:
            put((False, e))

    threading.Thread(target=work, name="rag-llm", daemon=True).start()
    deadline = time.monotonic() + seconds
    try:
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise queue.Empty
                ok, item = inbox.get(timeout=left)
            except queue.Empty:
                raise LLMError(f"no complete answer within {seconds:g}s") from None
            if not ok:
                if item is None:
                    return
                raise item
            yield item
    finally:
        stop.set()


def why_failed(e: Exception, llm: LLMSettings) -> str:
    """A few words on what went wrong, with no secret in them (`LLMSettings.redact`)."""
    if isinstance(e, LLMError):
        return llm.redact(str(e))
    if isinstance(e, httpx.ConnectTimeout):
        return f"no connection to {llm.shown_url} within {llm.connect_timeout:g}s"
    if isinstance(e, httpx.ConnectError):
        return f"cannot reach {llm.shown_url}"
    if isinstance(e, httpx.ReadTimeout):
        return f"the server was silent for {min(llm.read_timeout, llm.timeout):g}s"
    return f"{type(e).__name__}: {_short(llm.redact(str(e)))}"


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
