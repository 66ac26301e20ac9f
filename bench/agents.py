"""What an agent or a script waits for: `rag mcp` over stdio (start to first answer, then
search and ask per call through a real MCP client session) and the JSON API's /api/ask on a
running `rag serve`, on the default notes.

    python bench/agents.py [WORK]   # prints JSON; WORK (default .bench/agents) holds the index

Every request goes to 127.0.0.1 only; the eval questions are asked once each, in order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import eval_questions, free_port, latency  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RAG = Path(sys.executable).parent / "rag"
QUESTIONS = 40


def main(work: Path) -> dict:
    notes, index = work / "notes", work / "index"
    if not notes.exists():
        shutil.copytree(ROOT / "notes", notes)
    subprocess.run([RAG, "index", "--notes", notes, "--index", index, "-q"], check=True)
    questions = eval_questions()[:QUESTIONS]
    return {"mcp_stdio": _mcp(notes, index, questions), "api": _api(notes, index, questions)}


def _mcp(notes: Path, index: Path, questions: list[str]) -> dict:
    import anyio
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=str(RAG), args=["mcp", "--notes", str(notes), "--index", str(index), "-q"]
    )
    out: dict = {}

    async def run() -> None:
        started = time.perf_counter()
        async with Client(params, read_timeout_seconds=120) as client:
            await client.call_tool("ask", {"question": questions[0]})
            out["start_to_first_answer_s"] = round(time.perf_counter() - started, 2)
            for tool, key in (("search", "query"), ("ask", "question")):
                times = []
                for q in questions:
                    t = time.perf_counter()
                    result = await client.call_tool(tool, {key: q})
                    times.append(time.perf_counter() - t)
                    assert not result.is_error, result.content
                out[tool] = latency(times)

    anyio.run(run)
    return out


def _api(notes: Path, index: Path, questions: list[str]) -> dict:
    import httpx

    port = free_port()
    cmd = [RAG, "serve", "--notes", notes, "--index", index, "--port", str(port), "-q"]
    started = time.perf_counter()
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/api/ask"
        while True:
            try:
                httpx.post(url, json={"question": questions[0]}, timeout=60).raise_for_status()
                break
            except httpx.TransportError:
                if server.poll() is not None or time.perf_counter() - started > 180:
                    raise RuntimeError("rag serve did not answer") from None
                time.sleep(0.2)
        out = {"start_to_first_answer_s": round(time.perf_counter() - started, 2)}
        times = []
        with httpx.Client(timeout=60) as h:
            for q in questions:
                t = time.perf_counter()
                h.post(url, json={"question": q}).raise_for_status()
                times.append(time.perf_counter() - t)
        out["ask"] = latency(times)
        return out
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".bench" / "agents"
    print(json.dumps(main(work), indent=2))
