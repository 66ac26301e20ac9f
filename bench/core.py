"""The default notes, in process: model load, index build, one-line re-index, query latency.

python bench/core.py /tmp/work    # prints JSON; builds its index in /tmp/work
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import eval_questions, latency, rss, timed_calls, timer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EDITS = 3  # one-line edits, each re-indexed


def main(work: Path) -> dict:
    out: dict = {"base": rss()}
    with timer() as t:
        from rag.index.build import update_index
        from rag.index.embedding import SentenceTransformerEmbedder
        from rag.settings import Settings
    out["import_s"] = t.seconds
    with timer() as t:
        embedder = SentenceTransformerEmbedder(Settings().model)
    out["model_load_s"] = t.seconds
    cached = any(embedder.cache_dir.glob("*.onnx"))
    with timer() as t:  # the ONNX fast path for small calls, opened on the first one
        fast = embedder.fast_path()
    out["fast_path"] = {
        "s": t.seconds,
        "on": fast is not None,
        "cached": cached,
        "problem": embedder.fast_problem,
    }
    notes, index = work / "notes", work / "index"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ROOT / "notes", notes)
    with timer() as t:  # what a server builds before it serves (rag.search.live.open_engine)
        report = update_index(notes, work / "first-pass", embedder, 200, lines=False)
    out["first_pass"] = {"s": t.seconds, "chunks": report.chunks, "embedded": report.embedded}
    with timer() as t:
        report = update_index(notes, index, embedder, 200, full=True)
    out["build"] = {"s": t.seconds, "chunks": report.chunks, "embedded": report.embedded}
    out["build"]["chunks_per_s"] = report.chunks / t.seconds
    out["reindex_one_line"] = _edits(notes, index, embedder)
    out.update(_queries(index, embedder))
    out["peak"] = rss()
    return out


def _edits(notes: Path, index: Path, embedder) -> dict:
    """Change one bullet line (a different one each time) and bring the index up to date."""
    from rag.index.build import update_index

    note = notes / "aws-notes.md"
    lines = note.read_text(encoding="utf-8").split("\n")
    bullets = [i for i, line in enumerate(lines) if line.lstrip().startswith("- ")]
    times, embedded = [], []
    for n in range(EDITS):
        i = bullets[(n + 1) * len(bullets) // (EDITS + 1)]
        lines[i] += f" (edited {n})"
        note.write_text("\n".join(lines), encoding="utf-8")
        with timer() as t:
            report = update_index(notes, index, embedder, 200)
        times.append(t.seconds)
        embedded.append(report.embedded)
    return {"median_s": sorted(times)[len(times) // 2], "all_s": times, "embedded": embedded}


def _queries(index: Path, embedder) -> dict:
    from rag.answer.pipeline import ask
    from rag.index.store import load_index
    from rag.search.engine import Engine

    out = {}
    with timer() as t:
        engine = Engine(load_index(index, embedder.name, embedder.dim, 200), embedder)
    out["engine_load_s"] = t.seconds
    questions = eval_questions()
    out["embed"] = latency(timed_calls(lambda q: embedder.embed([q]), questions))
    out["embed_torch"] = latency(timed_calls(lambda q: embedder.embed_torch([q]), questions))
    out["search"] = latency(timed_calls(lambda q: engine.search(q, k=5), questions))
    out["ask"] = latency(timed_calls(lambda q: ask(engine, q), questions))
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
