"""Encoding options for all-MiniLM-L6-v2 on this CPU: threads, batch size, length sorting, and
ONNX Runtime (fp32 and the shipped int8 copy), each checked against the top-10 of every eval
question embedded that way.

    python bench/encode.py /tmp/work   # prints JSON; needs bench/core.py's index in /tmp/work
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.measure import eval_questions, latency, timed_calls  # noqa: E402

SAMPLE = 192  # texts (chunks and units of the default notes) per bulk run
QUERIES = 60


def index_texts(chunks) -> list[str]:
    """The texts a full build embeds, in index row order: every chunk's indexed text, then
    the units' of every chunk that has unit vectors."""
    from rag.index.store import unit_counts

    counts = unit_counts(chunks)
    units = (
        c.unit_indexed_text(u)
        for c, n in zip(chunks, counts, strict=True)
        if n
        for u in c.vector_units
    )
    return [c.indexed_text for c in chunks] + list(units)


def main(work: Path) -> dict:
    import torch

    from rag.index.embedding import SentenceTransformerEmbedder, warm_up
    from rag.index.onnx import BULK_BATCH
    from rag.index.store import load_index
    from rag.search.engine import Engine
    from rag.settings import Settings

    cores = torch.get_num_threads()  # before any small call sets torch to one thread
    embedder = SentenceTransformerEmbedder(Settings().model)
    out_problem = warm_up(embedder)  # as the app ships: questions through ONNX Runtime
    index = load_index(work / "index", embedder.name, embedder.dim, 200)
    every = index_texts(index.chunks)
    texts = every[:: max(1, len(every) // SAMPLE)]
    questions = eval_questions()
    out: dict = {"sample_texts": len(texts), "torch_threads": cores, "runs": []}
    out["fast_path_problem"] = out_problem
    model = embedder.model
    reference = embedder.embed_torch(texts)

    def bulk(name: str, fn) -> None:
        start = time.perf_counter()
        vectors = fn(texts)
        seconds = time.perf_counter() - start
        diff = float(np.abs(vectors - reference).max())
        out["runs"].append({"option": name, "texts_per_s": len(texts) / seconds, "max_diff": diff})

    default_threads = cores
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        for batch in (16, 32, 64, 128):
            bulk(
                f"torch, {threads} thread(s), batch {batch}",
                lambda t, b=batch: model.encode(t, batch_size=b, normalize_embeddings=True),
            )
    torch.set_num_threads(default_threads)
    bulk("torch, in pieces of 256 in note order", lambda t: _pieces(model, t, False))
    bulk(
        "torch, longest first, pieces of 256 (the indexer before)",
        lambda t: _pieces(model, t, True),
    )
    if embedder.bulk_path() is not None:
        bulk(
            f"rag embedder as shipped for notes (its int8 copy, batches of {BULK_BATCH}, "
            f"{default_threads} at once)",
            embedder.embed_documents,
        )
    out["query"] = {}
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        q = latency(
            timed_calls(lambda x: model.encode([x], normalize_embeddings=True), questions[:QUERIES])
        )
        out["query"][f"torch, {threads} thread(s)"] = q
    torch.set_num_threads(default_threads)
    out["query"]["rag embedder, torch path"] = latency(
        timed_calls(lambda x: embedder.embed_torch([x]), questions[:QUERIES])
    )
    out["query"]["rag embedder (as shipped: ONNX fast path)"] = latency(
        timed_calls(lambda x: embedder.embed([x]), questions[:QUERIES])
    )
    engine = Engine(index, _TorchPath(embedder))
    baseline = [[h.chunk.id for h in engine.search(q, k=10)] for q in questions]
    engine.embedder = embedder  # as shipped: questions through the ONNX fast path
    out["shipped_same_top10"] = sum(
        [h.chunk.id for h in engine.search(q, k=10)] == b
        for q, b in zip(questions, baseline, strict=True)
    )
    try:
        out["onnx"] = _onnx(
            embedder, texts, reference, questions, engine, baseline, work, bulk, cores
        )
    except Exception as e:  # not installed, or the export failed: say so in the table
        out["onnx"] = {"error": f"{type(e).__name__}: {e}"[:300]}
    return out


class _TorchPath:
    """The shipped embedder with its fast path left out: the reference for the top-10s."""

    def __init__(self, embedder) -> None:
        self.name, self.dim, self.embed = embedder.name, embedder.dim, embedder.embed_torch


def _pieces(model, texts: list[str], by_length: bool) -> np.ndarray:
    order = (
        sorted(range(len(texts)), key=lambda i: len(texts[i]))
        if by_length
        else list(range(len(texts)))
    )
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for a in range(0, len(texts), 256):
        rows = order[a : a + 256]
        out[rows] = model.encode([texts[i] for i in rows], batch_size=16, normalize_embeddings=True)
    return out


def _onnx(embedder, texts, reference, questions, engine, baseline, work: Path, bulk, cores) -> dict:
    """The product's ONNX export (rag.index.onnx) and its int8 copy (`quantize_onnx`, what
    note text goes through): in batches of 16 with every thread, and as `embed_many` runs them
    (rows added by `bulk`). Their quality on the eval's tune split: bench/quantize.py."""
    from rag.index.onnx import OnnxEncoder, export_onnx, model_head, quantize_onnx

    fp32, int8 = work / "minilm.onnx", work / "minilm-int8.onnx"
    start = time.perf_counter()
    export_onnx(embedder, fp32)
    quantize_onnx(fp32, int8)
    out: dict = {"export_s": time.perf_counter() - start}
    head = model_head(embedder.path)
    for name, path in (("fp32", fp32), ("int8", int8)):
        one = OnnxEncoder(path, embedder, head)
        many = OnnxEncoder(path, embedder, head, threads=cores)
        start = time.perf_counter()
        vectors = np.concatenate([many.embed(texts[a : a + 16]) for a in range(0, len(texts), 16)])
        seconds = time.perf_counter() - start
        workers = cores
        for batch in (1, 4, 16):  # as `embed_many` runs them: one-thread runs, side by side
            bulk(
                f"ONNX Runtime {name}, batches of {batch} by length, {workers} one-thread runs",
                lambda t, b=batch, e=one, w=workers: e.embed_many(t, w, b),
            )
        engine.embedder = _Questions(embedder, one)  # the index keeps the torch vectors
        same = sum(
            [h.chunk.id for h in engine.search(q, k=10)] == b
            for q, b in zip(questions, baseline, strict=True)
        )
        out[name] = {
            "texts_per_s": len(texts) / seconds,
            "max_diff": float(np.abs(vectors - reference).max()),
            "query": latency(timed_calls(lambda x, e=one: e.embed([x]), questions[:QUERIES])),
            "same_top10": same,
            "questions": len(questions),
        }
    return out


class _Questions:
    """The shipped embedder's name and size, with questions embedded by `encoder`."""

    def __init__(self, embedder, encoder) -> None:
        self.name, self.dim, self.embed = embedder.name, embedder.dim, encoder.embed


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
