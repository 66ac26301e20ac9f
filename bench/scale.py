"""The scale legs on synthetic notes: build (one process), then load and query (a fresh one).

    python bench/scale.py build 100000 /tmp/scale-100k   # prints JSON
    python bench/scale.py load /tmp/scale-100k           # prints JSON
    python bench/scale.py edit /tmp/scale-100k           # one-line edits, as a server takes them
    python bench/scale.py chunk-index 1000000            # the chunk index alone; JSON

Dense vectors are synthetic (bench/synth.py), so nothing is embedded. The build writes a real
index generation (rag.index.store.write_generation); the load reads it with `load_index` and
searches with the product's `Engine` and `Tuning`, a question's vector looked up instead of
embedded (the core benchmark measures embedding on the real model). Each leg is timed alone
(BM25, dense, fusion), then as `Engine.search`. The notes are written as files too, so the edit
leg can change a line and time what a server does with it (`LiveIndex.reindex`).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import synth  # noqa: E402
from bench.measure import latency, reset_peak, rss, timed_calls, timer  # noqa: E402
from rag.index import dense  # noqa: E402
from rag.index.dense import DenseIndex, MultiVectorIndex, train_size  # noqa: E402
from rag.index.lexical import Postings, tokenize  # noqa: E402
from rag.index.store import (  # noqa: E402
    Manifest,
    chunker_settings,
    load_index,
    unit_counts,
    write_generation,
)
from rag.search.engine import Engine, Tuning  # noqa: E402
from rag.search.fusion import max_blend, ranked  # noqa: E402

QUESTIONS = 100
TUNING = Tuning()  # the engine's own settings: BM25 k1/b, blend weight, depth
DEPTH = TUNING.depth
MODEL, DIM = "synthetic@bench", 384  # the manifest's model: nothing here is embedded
UNIT_SPREAD, QUESTION_SPREAD = 0.7, 0.8  # cosine about 0.82 to its chunk; 0.78
BLOCK = 50_000  # chunks per block of vectors
UNIT_BLOCK = 5_000  # chunks per block of unit vectors (about 38k units, 0.5 GB while made)
RESCORE = (10, 25, 50, 100, 200)  # candidates re-scored exactly, by the chunk-index leg
EXACT_CHECK_LIMIT = 2_000_000  # unit vectors up to which the exact dense leg is built to compare


def build(size: int, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    out: dict = {"chunks": size, "base": rss()}
    with timer() as t:
        notes = synth.notes(size)
        chunks = synth.chunks_of(notes)[:size]  # synth.synthetic_chunks
    out["generate_s"] = t.seconds
    files = _write_notes(notes, chunks, folder)
    del notes  # about 1 GB at 1M chunks: not held through the build
    out["bm25"], postings = _build_lexical(chunks)
    counts = unit_counts(chunks)
    out["units"] = int(counts.sum())
    questions = _questions(chunks)
    chunk_index, unit_index, out["dense"], recall = _build_dense(size, counts, questions, folder)
    (folder / "questions.json").write_text(json.dumps([q for q, _ in questions]))
    manifest = Manifest(
        model=MODEL,
        dim=DIM,
        chunker=chunker_settings(200),
        files=files,
        chunks=len(chunks),
        units=out["units"],
        created="synthetic",
    )
    with timer() as t:
        gen = write_generation(
            folder / "index", chunks, chunk_index, unit_index, manifest, postings=postings
        )
    out["write_s"] = t.seconds  # chunks.jsonl, FAISS files and rows, BM25, checksums, fsync
    out["disk_mb"] = sum(f.stat().st_size for f in gen.iterdir()) / 2**20
    out["dense"]["disk_mb"] = sum((gen / n).stat().st_size for n in ("dense.faiss", "units.faiss"))
    out["dense"]["disk_mb"] /= 2**20
    out["bm25"]["disk_mb"] = sum(f.stat().st_size for f in gen.glob("bm25.*")) / 2**20
    out["peak"] = rss()  # the build's: the check below builds exact indexes to compare with
    del chunks
    out["dense"]["recall@10"] = recall()
    return out


def _write_notes(notes, chunks, folder: Path) -> dict[str, str]:
    """The notes as files, each up to its last chunk in the index (`size` chunks end within
    a note; the notes after it are left out): path -> sha256, for the manifest."""
    files, ends = {}, {}
    for chunk in chunks:
        ends[chunk.path] = chunk.end_line
    (folder / "notes").mkdir(exist_ok=True)
    for path, text in notes:
        if path in ends:
            text = "\n".join(text.split("\n")[: ends[path]]) + "\n"
            (folder / "notes" / path).write_text(text, encoding="utf-8")
            files[path] = hashlib.sha256(text.encode()).hexdigest()
    return files


def _build_lexical(chunks) -> tuple[dict, Postings]:
    """BM25 build times, and the postings (for write_generation)."""
    out = {}
    if len(chunks) > 100_000:  # tokens of 1M chunks take about 5 GB: never all held
        with timer() as t:
            for c in chunks:
                tokenize(c.indexed_text)
        out["tokenize_s"] = t.seconds
        with timer() as t:
            postings = Postings.of_texts(c.indexed_text for c in chunks)
        out["build_s"] = t.seconds - out["tokenize_s"]  # tokenized again as it goes
        out["postings"] = len(postings.docs)
        return out, postings
    with timer() as t:
        docs = [tokenize(c.indexed_text) for c in chunks]
    out["tokenize_s"] = t.seconds
    with timer() as t:
        postings = Postings.from_docs(docs)
    out["build_s"] = t.seconds
    out["postings"] = len(postings.docs)
    # rank-bm25, the "before": its build and its query time
    from rank_bm25 import BM25Okapi

    with timer() as t:
        reference = BM25Okapi(docs, k1=TUNING.k1, b=TUNING.b)
    out["rank_bm25_build_s"] = t.seconds
    queries = [tokenize(q) for q, _ in _questions(chunks)[:20]]
    out["rank_bm25_query"] = latency(timed_calls(reference.get_scores, queries, warmup=1))
    return out, postings


def _questions(chunks) -> list[tuple[str, int]]:
    """(question, the chunk it is about): a few of the chunk's own words, seeded."""
    rng = np.random.default_rng(11)
    out = []
    for row in rng.choice(len(chunks), size=min(QUESTIONS, len(chunks)), replace=False):
        words = [w for w in chunks[row].text.split() if w.isalpha() and len(w) > 3]
        picks = rng.choice(words, size=min(4, len(words)), replace=False) if words else []
        out.append(("what about " + " ".join(picks) + "?", int(row)))
    return out


def _build_dense(size: int, counts: np.ndarray, questions, folder: Path):
    """(chunk index, unit index, figures, recall: a function that measures recall@10 against
    exact search). Vectors are made block by block and written to the rows files as they come:
    an approximate index never holds them all (1M chunks' are 1.5 GB, their units' 11 GB)."""
    model = synth.VectorModel(seed=0)
    topics = synth.topic_of(np.arange(size))
    out: dict = {}

    def chunk_blocks():  # (first row, vectors)
        for a in range(0, size, BLOCK):
            rows = np.arange(a, min(a + BLOCK, size))
            yield a, model.chunk_block(rows, topics[rows])

    def unit_blocks():  # UNIT_BLOCK chunks' units at a time: `near` works in float64
        for n, block in chunk_blocks():
            for b in range(0, len(block), UNIT_BLOCK):
                a = n + b
                part = block[b : b + UNIT_BLOCK]
                repeated = np.repeat(part, counts[a : a + len(part)], axis=0)
                yield model.near(repeated, UNIT_SPREAD, salt=a)

    n_units = int(counts.sum())
    approximate = size >= dense.APPROX_MIN
    q_rows = np.array([row for _, row in questions])
    train_rows = np.arange(0, size, max(1, size // train_size(size)))  # as DenseIndex.build
    unit_rows = np.random.default_rng(5).choice(size, min(size, train_size(n_units)), False)
    with timer() as t:
        if approximate:  # only the rows needed first: the questions' and the samples'
            q_base, train, unit_base = _rows_of(chunk_blocks(), (q_rows, train_rows, unit_rows))
        else:
            chunk_vectors = np.concatenate([block for _, block in chunk_blocks()])
            q_base, unit_base = chunk_vectors[q_rows], chunk_vectors[unit_rows]
    out["vectors_s"] = t.seconds
    q_vectors = model.near(q_base, QUESTION_SPREAD, salt=10**6)
    np.save(folder / "question_vectors.npy", q_vectors, allow_pickle=False)
    with timer() as t:
        if approximate:
            blocks = (block for _, block in chunk_blocks())
            chunk_index = DenseIndex.build_approximate(
                train, blocks, size, folder / "chunk-rows.npy"
            )
            del train  # not held through the unit index's build (about 0.5 GB at 1M)
        else:
            chunk_index = DenseIndex.build(chunk_vectors)
    out["chunk_index"] = "IVF" if chunk_index.approximate else "flat"
    out["chunk_build_s"] = t.seconds
    with timer() as t:
        if n_units >= 400_000:  # do not hold every unit vector in memory at once
            sample = np.concatenate(  # units, spread out; in blocks, as `near` is float64
                [
                    model.near(unit_base[a : a + BLOCK], UNIT_SPREAD, salt=10**6 + 1 + a)
                    for a in range(0, len(unit_base), BLOCK)
                ]
            )
            del unit_base  # only the sample made from it is needed
            unit_index = DenseIndex.build_approximate(
                sample, unit_blocks(), n_units, folder / "unit-rows.npy"
            )
            del sample
        else:
            unit_index = DenseIndex.build(np.concatenate(list(unit_blocks())))
    out["unit_index"] = "IVF" if unit_index.approximate else "flat"
    out["unit_build_s"] = t.seconds

    def recall() -> dict:
        """Recall@10 of an approximate chunk index, and of the whole dense leg, against exact."""
        found = {}
        if chunk_index.approximate:  # exact top 10 by numpy, block by block
            exact = _exact_top(chunk_blocks(), q_vectors, 10)
            hits = [
                len(set(truth.tolist()) & set(chunk_index.search(q, 10)[0].tolist()))
                for q, truth in zip(q_vectors, exact, strict=True)
            ]
            found["chunk_index"] = round(float(np.mean(hits)) / 10, 4)
        if (chunk_index.approximate or unit_index.approximate) and n_units <= EXACT_CHECK_LIMIT:
            exact = MultiVectorIndex(
                DenseIndex.build(np.concatenate([b for _, b in chunk_blocks()]), False),
                DenseIndex.build(np.concatenate(list(unit_blocks())), approximate=False),
                counts,
            )
            approx = MultiVectorIndex(chunk_index, unit_index, counts)
            found["dense_leg"] = _mean_recall(exact, approx, q_vectors)
        return found

    return chunk_index, unit_index, out, recall


def _rows_of(blocks, wanted: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """The vectors of each array of rows in `wanted`, gathered from (first row, block)s."""
    found: list[np.ndarray | None] = [None] * len(wanted)
    for a, block in blocks:
        for i, rows in enumerate(wanted):
            if found[i] is None:
                found[i] = np.zeros((len(rows), block.shape[1]), dtype=block.dtype)
            here = (rows >= a) & (rows < a + len(block))
            found[i][here] = block[rows[here] - a]
    return found


def _exact_top(blocks, queries: np.ndarray, k: int) -> np.ndarray:
    """The rows of each query's k best inner products over (first row, block)s: exact."""
    rows = np.zeros((len(queries), 0), dtype=np.int64)
    scores = np.zeros((len(queries), 0), dtype=np.float32)
    for a, block in blocks:
        rows = np.hstack(
            [rows, np.broadcast_to(np.arange(a, a + len(block)), (len(queries), len(block)))]
        )
        scores = np.hstack([scores, queries @ block.T])
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        rows, scores = np.take_along_axis(rows, top, 1), np.take_along_axis(scores, top, 1)
    return rows


def _mean_recall(exact, approx, q_vectors) -> float:
    hits = [
        len(set(exact.search(q, 10)[0].tolist()) & set(approx.search(q, 10)[0].tolist()))
        for q in q_vectors
    ]
    return round(float(np.mean(hits)) / 10, 4)


def chunk_index(size: int) -> dict:
    """The approximate chunk index alone, on the vectors and questions `build` makes: recall@10
    against exact search and query time, where the whole leg takes too long (or too much
    memory) to build on a shared machine."""
    model = synth.VectorModel(seed=0)
    out: dict = {"chunks": size, "base": rss()}
    with timer() as t:
        vectors = np.concatenate(
            [
                model.chunk_block(rows, synth.topic_of(rows))
                for rows in (np.arange(a, min(a + BLOCK, size)) for a in range(0, size, BLOCK))
            ]
        )
    out["vectors_s"] = t.seconds
    rows = np.random.default_rng(11).choice(size, size=min(QUESTIONS, size), replace=False)
    q_vectors = model.near(vectors[rows], QUESTION_SPREAD, salt=10**6)  # as _questions picks
    with timer() as t:
        index = DenseIndex.build(vectors, approximate=True)
    out["build_s"] = t.seconds
    out["probed"], out["lists"] = index.probes
    out["query"] = latency(timed_calls(lambda v: index.search(v, DEPTH), list(q_vectors)))
    exact = DenseIndex.build(vectors, approximate=False)
    out["recall@10"] = _mean_recall(exact, index, q_vectors)
    truths = [exact.search(q, 10)[0] for q in q_vectors]
    del exact
    out["pq"] = _by_rescore(index, q_vectors, truths)
    out["peak"] = rss()
    return out


def _by_rescore(index: DenseIndex, q_vectors, truths) -> dict:
    """Recall@10 against exact search, and query time, by how many of the candidates that the
    PQ codes rank first are re-scored from their float rows (the product re-scores the top
    k + dense.RESCORE)."""
    out: dict = {"bytes": index._index.pq.M, "codes_mb": index.size * index._index.pq.M / 2**20}
    before = dense.RESCORE
    try:
        for depth in RESCORE:
            dense.RESCORE = depth - 10
            hits = [
                len(set(index.search(q, 10)[0].tolist()) & set(t.tolist()))
                for q, t in zip(q_vectors, truths, strict=True)
            ]
            out[str(depth)] = {
                "recall@10": round(float(np.mean(hits)) / 10, 4),
                "query": latency(timed_calls(lambda q: index.search(q, 10), list(q_vectors))),
            }
    finally:
        dense.RESCORE = before
    return out


def load(folder: Path) -> dict:
    """Load what `build` wrote as the product does, then answer the questions leg by leg and
    through `Engine.search`."""
    out: dict = {"base": rss()}
    with timer() as t:
        index = load_index(folder / "index", MODEL, DIM, 200)
    out["load_s"] = t.seconds  # sizes checked, chunks parsed, vectors and BM25 memory-mapped
    out["chunks_loaded"] = len(index.chunks)
    questions = json.loads((folder / "questions.json").read_text())
    q_vectors = np.load(folder / "question_vectors.npy", allow_pickle=False)
    engine = Engine(index, _LookedUp(dict(zip(questions, q_vectors, strict=True))), TUNING)
    out["after_load"] = rss()
    q_tokens = [tokenize(q) for q in questions]
    out["bm25"] = latency(timed_calls(lambda q: engine.lexical.search(q, DEPTH), q_tokens))
    out["dense"] = latency(timed_calls(lambda v: engine.dense.search(v, DEPTH), list(q_vectors)))
    legs = [
        (_scored(*engine.lexical.search(t, DEPTH)), _scored(*engine.dense.search(v, DEPTH)))
        for t, v in zip(q_tokens, q_vectors, strict=True)
    ]
    weights = [TUNING.bm25_weight, 1 - TUNING.bm25_weight]
    out["fusion"] = latency(timed_calls(lambda ls: ranked(max_blend(ls, weights)), legs))
    out["hybrid"] = latency(timed_calls(lambda q: engine.search(q, k=5), questions))
    out["after_queries"] = rss()
    return out


EDITS = 3  # one-line edits timed, each in another note


def edit(folder: Path) -> dict:
    """One-line edits, each as a server takes it: `update_index` given the index it answers
    from, the new generation loaded beside it (`load_index`, its base re-used), a new Engine;
    then the edited line is searched for. New text is embedded by a hash of itself. Last, one
    more edit rewritten whole, as the update does once the deltas outgrow their bound."""
    from rag.index import build
    from rag.index.build import update_index

    embedder = _Hashed()
    engine = Engine(load_index(folder / "index", MODEL, DIM, 200), embedder, TUNING)
    engine.search("what about the notes", k=5)  # as a server that has answered a question
    notes = sorted((folder / "notes").iterdir())
    runs = []
    for n in range(EDITS):
        note = notes[(n + 1) * len(notes) // (EDITS + 1)]
        text = note.read_text(encoding="utf-8")
        line = f"- quokka{n} zanzibar{n} tamarind{n}"
        heading = next(x for x in text.splitlines() if x.startswith("##"))
        note.write_text(text.replace(heading + "\n", f"{heading}\n\n{line}\n", 1))
        with timer() as whole:
            with timer() as t:
                report = update_index(
                    folder / "notes", folder / "index", embedder, 200, live=engine.index
                )
            update_s = t.seconds
            with timer() as t:
                index = load_index(folder / "index", MODEL, DIM, 200, engine.index)
                engine = Engine(index, embedder, TUNING)
            swap_s = t.seconds
            hit = engine.search(f"quokka{n} zanzibar{n}", k=1, mode="bm25")[0]
        assert hit.chunk.path == note.name and line[2:] in hit.chunk.text, hit.chunk
        runs.append(
            {
                "seconds": whole.seconds,
                "update_s": update_s,
                "swap_s": swap_s,
                "embedded": report.embedded,
                "deltas": len(index.manifest.deltas),
                "delta_chunks": sum(d["chunks"] for d in index.manifest.deltas),
            }
        )
    out = {"runs": runs, "chunks": len(engine.chunks)}
    out["seconds"] = statistics.median(r["seconds"] for r in runs)
    q_vectors = np.load(folder / "question_vectors.npy", allow_pickle=False)
    before = _top_ids(engine, q_vectors)
    note = notes[-1]
    note.write_text(note.read_text(encoding="utf-8") + "\n- quokka zanzibar tamarind\n")
    build.DELTA_MIN_CHUNKS = 10**9  # no delta: the whole index is written again
    peak_reset = reset_peak()
    with timer() as t:
        update_index(folder / "notes", folder / "index", embedder, 200, live=engine.index)
    out["rewrite_s"] = t.seconds  # vectors, groups, PQ codes and postings of the rest re-used
    if peak_reset:  # the rewrite's own peak (the process's RSS before it included)
        out["rewrite_peak_mb"] = rss()["peak_mb"]
    index = load_index(folder / "index", MODEL, DIM, 200)
    out["rewrite_deltas"] = len(index.manifest.deltas)
    after = _top_ids(Engine(index, embedder, TUNING), q_vectors)  # its codes copied, or not
    same = [len(a & b) for a, b in zip(before, after, strict=True)]
    out["rewrite_same_top10"] = float(np.mean(same)) / 10
    out["peak"] = rss()
    return out


def _top_ids(engine: Engine, q_vectors: np.ndarray) -> list[set[str]]:
    """The chunk ids of the dense leg's top 10 for each question vector."""
    found = (engine.dense.search(v, 10)[0] for v in q_vectors)
    return [{engine.chunks[int(r)].id for r in rows} for rows in found]


class _Hashed:
    """An Embedder for new synthetic text: a unit vector seeded by the text's hash."""

    name, dim, documents_encoder = MODEL, DIM, "float32"

    def embed(self, texts: list[str]) -> np.ndarray:
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts]
        vectors = np.stack([np.random.default_rng(s).normal(size=DIM) for s in seeds])
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    embed_documents = embed

    def count_tokens(self, texts: list[str]) -> list[int]:
        return synth.word_tokens(texts)


class _LookedUp:
    """An Embedder for the synthetic questions: each one's vector was made with the notes."""

    name, dim = MODEL, DIM

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors

    documents_encoder = "float32"

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts]).astype(np.float32)

    embed_documents = embed

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def _scored(rows, scores) -> dict[int, float]:
    return dict(zip(rows.tolist(), scores.tolist(), strict=True))


if __name__ == "__main__":
    if sys.argv[1] == "build":
        result = build(int(sys.argv[2]), Path(sys.argv[3]))
    elif sys.argv[1] == "edit":
        result = edit(Path(sys.argv[2]))
    elif sys.argv[1] == "chunk-index":
        result = chunk_index(int(sys.argv[2]))
    else:
        result = load(Path(sys.argv[2]))
    print(json.dumps(result))
