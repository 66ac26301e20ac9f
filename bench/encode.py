"""Encoding options for all-MiniLM-L6-v2 on this CPU: threads, batch size, length sorting, and
ONNX Runtime (fp32 and int8), each checked against the top-10 of every eval question.

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


def main(work: Path) -> dict:
    import torch

    from rag.index.build import vector_texts
    from rag.index.embedding import SentenceTransformerEmbedder
    from rag.index.store import load_index
    from rag.search.engine import Engine
    from rag.settings import Settings

    embedder = SentenceTransformerEmbedder(Settings().model)
    index = load_index(work / "index", embedder.name, embedder.dim, 200)
    chunk_items, unit_items = vector_texts(index.chunks)
    texts = [t for _, t in chunk_items + unit_items][
        :: max(1, (len(chunk_items) + len(unit_items)) // SAMPLE)
    ]
    questions = eval_questions()
    out: dict = {"sample_texts": len(texts), "torch_threads": torch.get_num_threads(), "runs": []}
    model = embedder._model
    reference = embedder.embed_torch(texts)

    def bulk(name: str, fn) -> None:
        start = time.perf_counter()
        vectors = fn(texts)
        seconds = time.perf_counter() - start
        diff = float(np.abs(vectors - reference).max())
        out["runs"].append({"option": name, "texts_per_s": len(texts) / seconds, "max_diff": diff})

    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        for batch in (16, 32, 64, 128):
            bulk(
                f"torch, {threads} thread(s), batch {batch}",
                lambda t, b=batch: model.encode(t, batch_size=b, normalize_embeddings=True),
            )
    torch.set_num_threads(default_threads)
    bulk("torch, in pieces of 256 in note order", lambda t: _pieces(model, t, False))
    bulk("torch, longest first, pieces of 256 (the indexer)", lambda t: _pieces(model, t, True))
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
        out["onnx"] = _onnx(embedder, texts, reference, questions, engine, baseline, work)
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


class OnnxEmbedder:
    """The same model through ONNX Runtime: tokenizer, BERT, mean pooling, L2 norm."""

    def __init__(self, path: Path, embedder, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = embedder._model.tokenizer
        self.name, self.dim = embedder.name, embedder.dim
        self.count_tokens = embedder.count_tokens

    def embed(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            texts, padding=True, truncation=True, max_length=256, return_tensors="np"
        )
        feeds = {
            k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")
        }
        hidden = self.session.run(None, feeds)[0]
        mask = enc["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def _onnx(embedder, texts, reference, questions, engine, baseline, work: Path) -> dict:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class Bert(torch.nn.Module):  # positional inputs in, last hidden state out
        def __init__(self, model) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            out = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state

    bert = Bert(embedder._model[0].auto_model.eval())
    fp32, int8 = work / "minilm.onnx", work / "minilm-int8.onnx"
    enc = embedder._model.tokenizer(["an example"], return_tensors="pt")
    args = (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"])
    axes = {n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
    start = time.perf_counter()
    torch.onnx.export(
        bert,
        args,
        str(fp32),
        input_names=list(axes),
        output_names=["hidden"],
        dynamic_axes={**axes, "hidden": {0: "batch", 1: "tokens"}},
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    out: dict = {"export_s": time.perf_counter() - start}
    for name, path in (("fp32", fp32), ("int8", int8)):
        one = OnnxEmbedder(path, embedder, threads=1)
        two = OnnxEmbedder(path, embedder, threads=torch.get_num_threads())
        start = time.perf_counter()
        vectors = np.concatenate([two.embed(texts[a : a + 16]) for a in range(0, len(texts), 16)])
        seconds = time.perf_counter() - start
        engine.embedder = one  # queries only: the index keeps the torch vectors
        same = sum(
            [h.chunk.id for h in engine.search(q, k=10)] == b
            for q, b in zip(questions, baseline, strict=True)
        )
        engine.embedder = None
        out[name] = {
            "texts_per_s": len(texts) / seconds,
            "max_diff": float(np.abs(vectors - reference).max()),
            "query": latency(timed_calls(lambda x, e=one: e.embed([x]), questions[:QUERIES])),
            "same_top10": same,
            "questions": len(questions),
        }
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
