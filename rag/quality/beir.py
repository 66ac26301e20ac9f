"""Generalisation check on a BEIR-format benchmark, through the normal notes -> index path.

    rag beir ../shared/bench/scifact        # nDCG@10 and Recall@100 per leg

Each corpus document becomes a note `<id>.md` ("# title", blank line, text); the notes are
indexed like any others (incrementally, so a second run embeds nothing) and every test query is
searched. Chunk hits are folded into documents by their best-ranked chunk.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from rag.errors import BadInput
from rag.quality.metrics import ndcg
from rag.search.engine import Engine
from rag.settings import MODES, Mode

DEPTH = 100  # documents ranked per query: enough for Recall@100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def convert(beir_dir: Path, notes_dir: Path) -> int:
    """Write one note per corpus document; files already holding the same text are left alone."""
    corpus = Path(beir_dir) / "corpus.jsonl"
    if not corpus.is_file():
        raise BadInput(f"{beir_dir} is not a BEIR folder: no corpus.jsonl")
    notes_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            title = " ".join(str(doc.get("title") or "").split())
            body = str(doc.get("text") or "").strip()
            text = (f"# {title}\n\n{body}\n" if title else f"{body}\n") if body or title else ""
            if not text:
                continue
            path = notes_dir / f"{note_name(str(doc['_id']))}.md"
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                path.write_text(text, encoding="utf-8")
            count += 1
    return count


def note_name(doc_id: str) -> str:
    return _UNSAFE.sub("_", doc_id)


def load_queries(beir_dir: Path, split: str = "test") -> tuple[dict[str, str], dict[str, dict]]:
    """(query id -> text, query id -> {note name: relevance}) for the queries with qrels."""
    beir_dir = Path(beir_dir)
    qrels_path = beir_dir / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        qrels_path = beir_dir / "qrels.tsv"
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            if int(row["score"]) > 0:
                qrels.setdefault(row["query-id"], {})[note_name(row["corpus-id"])] = int(
                    row["score"]
                )
    queries = {}
    with open(beir_dir / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if str(q["_id"]) in qrels:
                queries[str(q["_id"])] = str(q["text"])
    return queries, qrels


def doc_ranking(engine: Engine, question: str, mode: Mode) -> list[str]:
    """Note names, best first, each at the rank of its best chunk."""
    seen: dict[str, None] = {}
    for hit in engine.search(question, k=DEPTH * 2, mode=mode):
        seen.setdefault(hit.chunk.path.removesuffix(".md"), None)
    return list(seen)[:DEPTH]


def ndcg_at_10(ranking: list[str], relevant: dict[str, int]) -> float:
    """Graded: each document counts its qrels score."""
    return ndcg([relevant.get(d, 0) for d in ranking[:10]], list(relevant.values()))


def recall_at_100(ranking: list[str], relevant: dict[str, int]) -> float:
    return len(set(ranking[:100]) & set(relevant)) / len(relevant)


def evaluate_beir(
    engine: Engine, queries: dict, qrels: dict, modes: tuple[Mode, ...] = MODES
) -> dict:
    report = {}
    for mode in modes:
        ndcg = recall = 0.0
        for qid, text in queries.items():
            ranking = doc_ranking(engine, text, mode)
            ndcg += ndcg_at_10(ranking, qrels[qid])
            recall += recall_at_100(ranking, qrels[qid])
        n = max(len(queries), 1)
        report[mode] = {"nDCG@10": round(ndcg / n, 4), "R@100": round(recall / n, 4)}
    return report


def format_table(report: dict) -> str:
    lines = [f"{'mode':<8} {'nDCG@10':>8} {'R@100':>8}"]
    lines += [f"{m:<8} {r['nDCG@10']:>8.4f} {r['R@100']:>8.4f}" for m, r in report.items()]
    return "\n".join(lines)
