"""Late chunking, measured: each line (unit) vector pooled from its chunk's own forward pass
instead of embedding the unit's text on its own, which is about three quarters of a full
build's model work. Scored on the eval's tune split only: this decides a design.

    python bench/late_chunking.py      # prints a markdown table (about 2 minutes here)

Result and decision: docs/chunking.md ("Why each line is embedded on its own").
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import markdown_table  # noqa: E402


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from rag.index.dense import DenseIndex
    from rag.quality.evaluate import evaluate, load_cases
    from rag.search.engine import Engine
    from rag.search.live import open_engine
    from rag.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="rag-late-"))
    try:
        shutil.copytree(ROOT / "notes", work / "notes")
        settings = Settings.from_env(env={}, notes_dir=work / "notes", index_dir=work / "index")
        engine = open_engine(settings)
        cases = [c for c in load_cases(ROOT / "eval/questions.jsonl") if c.split == "tune"]
        cases += load_cases(ROOT / "eval/tune_extra.jsonl")
        index, embedder = engine.index, engine.embedder
        rows = [_row("each unit embedded on its own (as shipped)", None, evaluate(engine, cases))]
        for with_context in (True, False):
            start = time.perf_counter()
            late = _late_vectors(index, embedder, with_context)
            seconds = time.perf_counter() - start
            index.units = DenseIndex.build(late)
            report = evaluate(Engine(index, embedder, engine.tuning), cases)
            how = "the context's and the unit's tokens" if with_context else "the unit's tokens"
            rows.append(_row(f"late chunking: mean of {how}", seconds, report))
        headers = ["unit vectors", "pooling s", "R@1", "MRR@10", "nDCG@10", "first citation"]
        print(f"{len(cases)} tune questions, hybrid, the default notes\n")
        print(markdown_table(headers, rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _row(name: str, seconds: float | None, report: dict) -> tuple:
    r = report["retrieval"]["hybrid"]["overall"]
    first = report["answers"]["first_citation_accuracy"]
    took = "–" if seconds is None else f"{seconds:.1f}"
    return (
        name,
        took,
        f"{r['R@1']:.3f}",
        f"{r['MRR@10']:.3f}",
        f"{r['nDCG@10']:.3f}",
        f"{first:.3f}",
    )


def _late_vectors(index, embedder, with_context: bool) -> np.ndarray:
    """A vector per unit, in the unit index's row order, from one forward pass of its chunk's
    indexed text (the ONNX export's token states, mean-pooled over the unit's tokens). A unit
    past the model's token limit is embedded on its own."""
    from rag.index.obsidian import visible_text

    encoder = embedder.fast_path()
    session, tokenizer = encoder._session, embedder.model.tokenizer
    names = [i.name for i in session.get_inputs()]
    out = []
    for row, chunk in enumerate(index.chunks):
        if not index.unit_counts[row]:
            continue
        body = visible_text(chunk.text)
        features = tokenizer(
            f"{chunk.context}\n{body}",
            return_offsets_mapping=True,
            truncation=True,
            max_length=embedder.max_tokens,
            return_tensors="np",
        )
        states = session.run(None, {n: features[n].astype(np.int64) for n in names})[0][0]
        spans = features["offset_mapping"][0]
        context = [t for t, (a, b) in enumerate(spans) if a < b <= len(chunk.context)]
        starts = np.cumsum([0] + [len(line) + 1 for line in body.split("\n")])
        base = len(chunk.context) + 1
        for unit in chunk.vector_units:
            first = base + starts[unit.start_line - chunk.start_line]
            end = base + starts[unit.end_line - chunk.start_line + 1] - 1
            own = [t for t, (a, b) in enumerate(spans) if a < b and first <= a and b <= end]
            if not own:
                out.append(embedder.embed([chunk.unit_indexed_text(unit)])[0])
                continue
            vector = states[(context + own) if with_context else own].mean(axis=0)
            out.append(vector / np.linalg.norm(vector))
    return np.asarray(out, dtype=np.float32)


if __name__ == "__main__":
    main()
