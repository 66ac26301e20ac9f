"""The chat app as users run it: start to first answer, then concurrent chat sessions.

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
        out["load"] = _load(Client, url)
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


def _load(Client, url: str) -> dict:
    """SESSIONS threads, each its own client, each asking QUESTIONS_EACH questions in turn."""
    questions = eval_questions()
    times: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + LOAD_CAP_S

    def session(n: int) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as e:  # counted, not raised: the report says how many failed
            with lock:
                failures.append(f"connect: {e}")
            return
        for i in range(QUESTIONS_EACH):
            if time.perf_counter() > deadline:
                with lock:
                    failures.append("not asked: time cap reached")
                continue
            q = questions[(n * QUESTIONS_EACH + i) % len(questions)]
            start = time.perf_counter()
            try:
                client.predict(q, api_name="/ask")
                with lock:
                    times.append(time.perf_counter() - start)
            except Exception as e:
                with lock:
                    failures.append(f"{type(e).__name__}: {e}"[:200])

    started = time.perf_counter()
    threads = [threading.Thread(target=session, args=(n,), daemon=True) for n in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.perf_counter()) + 10)
    wall = time.perf_counter() - started
    out = {"sessions": SESSIONS, "requests": SESSIONS * QUESTIONS_EACH, "ok": len(times)}
    out.update(failed=len(failures), failures=failures[:5], wall_s=wall)
    out["per_s"] = len(times) / wall
    if times:
        out.update(latency(times))
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
