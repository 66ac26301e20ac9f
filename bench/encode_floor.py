"""Where a full build's encoding time goes, per operator: the least time the int8 copy of the
network needs for the default notes' texts on this CPU.

    python bench/encode_floor.py    # prints a markdown table (about 70 s here)

Every text of a full build (451 chunks, 2,973 units) goes through the int8 copy one run at a
time: on one thread, then as a build sends them (two runs at once). ONNX Runtime's profiler,
on every fourth text (it keeps at most a million events), splits the time by operator. The
matrix products by stored weights cannot be skipped: their share of the one-thread time,
halved for two cores, is the least a build can take without fewer tokens.
Result: docs/chunking.md ("How far the full build is from 10 s").
"""

from __future__ import annotations

import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.encode import index_texts  # noqa: E402
from bench.measure import markdown_table  # noqa: E402

# The int8 products in the graph ONNX Runtime runs (a product by a stored int8 weight, with its
# activations quantised in the same kernel or just before it).
PRODUCTS = ("DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger")


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import onnxruntime as ort

    from rag.index.cutting import chunk_note
    from rag.index.embedding import SentenceTransformerEmbedder
    from rag.notes import load_notes
    from rag.settings import Settings

    settings = Settings.from_env(env={}, notes_dir=ROOT / "notes")
    embedder = SentenceTransformerEmbedder(settings.model)
    bulk = embedder.bulk_path()
    if bulk is None:
        sys.exit(f"no int8 copy of the network: {embedder.bulk_problem}")
    notes, _ = load_notes(settings.folders)
    chunks = [
        c for n in notes for c in chunk_note(n, embedder.count_tokens, settings.max_chunk_tokens)
    ]
    texts = list(dict.fromkeys(index_texts(chunks)))  # each distinct text once
    tokens = int(bulk._tokenize(texts)["attention_mask"].sum())  # as truncated for the model

    def one_thread(texts: list[str], profile: bool):
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.log_severity_level = 3
        options.enable_profiling = profile
        options.profile_file_prefix = str(Path(tempfile.mkdtemp(prefix="rag-floor-")) / "ort")
        session = ort.InferenceSession(str(bulk.file), options, providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        started = time.perf_counter()
        for text in texts:
            features = bulk._tokenize([text])
            session.run(None, {n: features[n].numpy().astype("int64") for n in names})
        return time.perf_counter() - started, session

    alone, _ = one_thread(texts, profile=False)
    _, profiled = one_thread(texts[::4], profile=True)
    trace = Path(profiled.end_profiling())
    spent: collections.Counter[str] = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            spent[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    share = {op: t / sum(spent.values()) for op, t in spent.items()}
    products = alone * sum(share.get(op, 0.0) for op in PRODUCTS)

    bulk.embed_many(texts[:50], 2)  # warm
    started = time.perf_counter()
    bulk.embed_many(texts, 2)
    as_built = time.perf_counter() - started

    macs = tokens * _weighted_macs(bulk.file)
    rows = [
        ("texts (chunks and units, each once)", f"{len(texts):,}"),
        ("model tokens, with [CLS] and [SEP]", f"{tokens:,}"),
        ("multiply-adds in the weighted products", f"{macs / 1e12:.2f} T"),
        ("one thread, each text a run (tokenizing too), s", f"{alone:.1f}"),
        (
            "one thread, the int8 products (by their share), s",
            f"{products:.1f} ({macs / products / 1e9:.0f} G/s)",
        ),
        ("one thread, everything else, s", f"{alone - products:.1f}"),
        ("the int8 products alone on 2 cores, s", f"{products / 2:.1f}"),
        ("as a build sends them (2 runs at once), s", f"{as_built:.1f}"),
    ]
    for op, _ in spent.most_common(6):
        rows.append((f"  {op}, share of the one-thread time", f"{share[op]:.0%}"))
    print(f"load average {os.getloadavg()[0]:.1f}; {_cpu()}\n")
    print(markdown_table(["what", "measured"], rows))


def _weighted_macs(file: Path) -> int:
    """Multiply-adds a token in the products by a stored weight (rows x columns of each)."""
    import onnx

    graph = onnx.load(str(file), load_external_data=False).graph
    shapes = {w.name: tuple(w.dims) for w in graph.initializer}
    total = 0
    for node in graph.node:
        if node.op_type in ("MatMul", *PRODUCTS) and len(node.input) > 1:
            shape = shapes.get(node.input[1], ())
            if len(shape) == 2:
                total += shape[0] * shape[1]
    return total


def _cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), ""
    )
    flags = next(
        (ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []
    )
    vnni = any("vnni" in f for f in flags)
    return f"{model or 'CPU'}, {os.cpu_count()} cores, {'VNNI' if vnni else 'no VNNI'}"


if __name__ == "__main__":
    main()
