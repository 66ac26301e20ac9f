"""The chat app as users run it: start to first answer, then concurrent sessions, twice: as
API calls (`/ask`) and as chat sessions driving the chat page's own streamed event (`/chat`,
with its follow-up memory and paced reveal), timing the first update and the whole answer.

    python bench/served.py /tmp/work   # prints JSON; needs bench/core.py's index in /tmp/work

Every request goes to 127.0.0.1 only, and the load is bounded in count and time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import eval_questions, free_port, latency, rss  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 120.0
SESSIONS, QUESTIONS_EACH, LOAD_CAP_S = 20, 5, 120.0


def main(work: Path) -> dict:
    from gradio_client import Client

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, str(ROOT / "app.py"), "--notes", str(work / "notes")]
    cmd += ["--index", str(work / "index"), "--port", str(port), "--host", "127.0.0.1"]
    started = time.perf_counter()
    app = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out: dict = {}
    try:
        client = _connect(Client, url, app, started)
        reply = client.predict("What is the maximum size of an SQS message?", api_name="/ask")
        out["first_answer_s"] = time.perf_counter() - started
        out["first_answer"] = str(reply)[:200]
        out["load"] = _load(Client, url, _api_session)
        out["chat"] = _load(Client, url, _chat_session)
        out["app_rss"] = rss(app.pid)
    finally:
        app.terminate()
        try:
            app.wait(timeout=20)
        except subprocess.TimeoutExpired:
            app.kill()
    return out


def _connect(Client, url: str, app: subprocess.Popen, started: float):
    while time.perf_counter() - started < START_TIMEOUT:
        if app.poll() is not None:
            raise RuntimeError(f"app.py exited: {app.stderr.read().decode()[-2000:]}")
        try:
            return Client(url, verbose=False)
        except Exception:  # not listening yet
            time.sleep(0.1)
    raise TimeoutError(f"app.py did not answer within {START_TIMEOUT}s")


def _api_session(client, questions: list[str], record, deadline: float) -> None:
    for q in questions:
        if time.perf_counter() > deadline:
            return
        start = time.perf_counter()
        client.predict(q, api_name="/ask")
        record(time.perf_counter() - start, None)


def _chat_session(client, questions: list[str], record, deadline: float) -> None:
    """One browser tab's worth: each question sent with the chat so far, as the page sends it."""
    history: list = []
    for q in questions:
        if time.perf_counter() > deadline:
            return
        start, first = time.perf_counter(), None
        # the page's inputs in order: k, mode, why, write, spelling, "Only notes matching"
        job = client.submit(q, history, 5, "hybrid", False, False, True, "", api_name="/chat")
        for _ in job:  # each streamed update of the answer
            first = first or time.perf_counter() - start
        history = job.result()[1]
        record(time.perf_counter() - start, first)


def _load(Client, url: str, session) -> dict:
    """SESSIONS threads, each its own client, each asking QUESTIONS_EACH questions in turn."""
    questions = eval_questions()
    times: list[float] = []
    firsts: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + LOAD_CAP_S

    def record(seconds: float, first: float | None) -> None:
        with lock:
            times.append(seconds)
            if first is not None:
                firsts.append(first)

    def run(n: int) -> None:
        mine = [questions[(n * QUESTIONS_EACH + i) % len(questions)] for i in range(QUESTIONS_EACH)]
        try:
            session(Client(url, verbose=False), mine, record, deadline)
        except Exception as e:  # counted, not raised: the report says how many failed
            with lock:
                failures.append(f"{type(e).__name__}: {e}"[:200])

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.perf_counter()) + 10)
    wall = time.perf_counter() - started
    out = {"sessions": SESSIONS, "requests": SESSIONS * QUESTIONS_EACH, "ok": len(times)}
    out.update(failed=out["requests"] - len(times), failures=failures[:5], wall_s=wall)
    out["per_s"] = len(times) / wall
    if times:
        out.update(latency(times))
    if firsts:
        out["first"] = latency(firsts)
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
