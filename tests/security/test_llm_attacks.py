"""Attacks from the LLM server and on the secrets that reach it (review rows #72, #74-#77):
an endless fast stream, a server that echoes the key, credentials in the URL, a password on
the command line."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from llm_server import FakeLLM, echo_key, endless

from rag.answer.base import Done, Token
from rag.answer.llm import LLMWriter
from rag.answer.llm_client import BUFFERED, why_failed, within
from rag.cli import main
from rag.errors import BadInput, LLMError
from rag.search.live import LiveIndex
from rag.settings import Settings
from rag.web.handlers import REDRAW, Handlers
from rag.web.page import llm_name

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What is the maximum size of an SQS message?"
KEY = "sk-LLMKEY-must-not-leak-98765"


def llm_settings(url: str, **kw):
    values = {"llm_timeout": 2.0, "llm_connect_timeout": 1.0, "llm_read_timeout": 1.0} | kw
    return Settings.from_env(env={}, llm_url=url, **values).llm


def test_the_deadline_holds_however_fast_items_come_and_the_buffer_is_bounded():
    made, taken = [0], 0

    def items(stop: threading.Event):
        for n in itertools.count():
            made[0] = n + 1
            yield n

    started = time.monotonic()
    with pytest.raises(LLMError, match="no complete answer within 1s"):
        for _ in within(1.0, items):
            taken += 1
            assert made[0] <= taken + BUFFERED + 1  # read ahead of the consumer: bounded
            time.sleep(0.002)  # a consumer slower than the producer
            assert time.monotonic() - started < 5, "items were handed out past the deadline"
    assert time.monotonic() - started < 1.5


def test_an_endless_fast_stream_is_cut_at_the_longest_answer(aws_engine):
    hits = aws_engine.search(QUESTION, k=5)
    with FakeLLM(endless()) as fake:
        llm = llm_settings(fake.url, llm_timeout=10.0, llm_max_tokens=100)
        started = time.monotonic()
        *tokens, done = LLMWriter(llm).write(QUESTION, hits, aws_engine.words)
    assert time.monotonic() - started < 10
    assert isinstance(done, Done) and all(isinstance(t, Token) for t in tokens)
    answer = done.answer
    assert answer.generator == "llm" and len(answer.text) <= 100 * 10
    assert "the LLM's answer was cut at 100 tokens" in answer.notices


def test_the_chat_ends_by_the_deadline_in_a_bounded_number_of_redraws(aws_settings, aws_engine):
    with FakeLLM(endless("a", every=0.001)) as fake:
        settings = Settings.from_env(
            env={},
            notes_dir=aws_settings.notes_dir,
            index_dir=aws_settings.index_dir,
            llm_url=fake.url,
            llm_timeout=2.0,
            llm_read_timeout=1.0,
        )
        handlers = Handlers(LiveIndex(settings, aws_engine), settings)
        started = time.monotonic()
        steps = list(handlers.chat(QUESTION, [], [], 5, "hybrid", False, True))
    seconds = time.monotonic() - started
    assert seconds < 2.0 + 1.5
    assert len(steps) <= seconds / REDRAW + 5  # not one redraw per token
    last = steps[-1][1][-1]["content"]
    assert "no complete answer within 2s" in last and "256" in last  # the extractive fallback


def test_a_key_echoed_by_the_server_is_not_shown(aws_engine):
    hits = aws_engine.search(QUESTION, k=5)
    with FakeLLM(echo_key()) as fake:
        llm = Settings.from_env(env={"RAG_LLM_API_KEY": KEY}, llm_url=fake.url).llm
        *_, done = LLMWriter(llm).write(QUESTION, hits, aws_engine.words)
    (notice,) = done.answer.notices
    assert "HTTP 401" in notice and "Incorrect API key" in notice
    assert KEY not in notice and "LLMKEY" not in notice


def test_credentials_in_the_llm_url_are_never_shown():
    llm = llm_settings("http://user:urlsecret@127.0.0.1:9/v1")
    assert "urlsecret" not in llm_name(llm) and "127.0.0.1:9" in llm_name(llm)
    request = httpx.Request("POST", llm.url)
    for e in (httpx.ConnectError("refused", request=request), LLMError(f"bad {llm.url}")):
        said = why_failed(e, llm)
        assert "urlsecret" not in said and "user" not in said


def test_with_a_key_the_url_credentials_are_not_sent_in_its_place(aws_engine):
    hits = aws_engine.search(QUESTION, k=5)
    with FakeLLM(echo_key()) as fake:
        url = fake.url.replace("http://", "http://user:urlsecret@")
        llm = Settings.from_env(env={"RAG_LLM_API_KEY": KEY, "RAG_LLM_URL": url}).llm
        list(LLMWriter(llm).write(QUESTION, hits, aws_engine.words))
    assert [r["headers"]["Authorization"] for r in fake.requests] == [f"Bearer {KEY}"]


def test_credentials_in_the_llm_url_flag_are_refused(capsys):
    argv = ["ask", "--llm-url", "http://user:urlsecret@127.0.0.1:9/v1", "sqs"]
    assert main(argv) == 2
    said = capsys.readouterr().err
    assert "RAG_LLM_URL" in said and "urlsecret" not in said


def test_the_password_is_refused_as_a_flag(tmp_path):
    app = [sys.executable, str(ROOT / "app.py"), "--auth", "ann:S3cretPassw0rd", "--notes", "x"]
    done = subprocess.run(app, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--auth-file" in done.stderr
    assert "S3cretPassw0rd" not in done.stderr


def test_the_password_comes_from_a_file(tmp_path):
    secret = tmp_path / "auth"
    secret.write_text("ann:s3cret\n")
    assert Settings.from_env(env={"RAG_AUTH_FILE": str(secret)}).sign_in == ("ann", "s3cret")
    secret.write_text("no-colon\n")
    with pytest.raises(BadInput, match="auth file .* must hold user:password"):
        Settings.from_env(env={"RAG_AUTH_FILE": str(secret)})
    with pytest.raises(BadInput, match="cannot read the auth file"):
        Settings.from_env(env={"RAG_AUTH_FILE": str(tmp_path / "missing")})
