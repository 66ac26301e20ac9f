"""Scale past what the default run builds: the approximate chunk index alone at 1M chunks,
and the 1M-chunk memory target: what the index holds, and what each way of storing its
vectors needs. Sizes are computed from the counts; the last measured figures are quoted when
this run did not build the 1M leg (`--sizes 10000,100000,1000000`: about 65 minutes more).
"""

from __future__ import annotations

from bench.measure import markdown_table

MIB = 2**20
DIM = 384
# The 1M-chunk leg as last measured (docs/benchmarks.json of that run): synthetic counts are
# seeded, so the unit count is the same in every run.
LAST_1M = {
    "units": 7_645_787,
    "extra_peak_mb": 1_048.5,  # peak RSS after 100 questions, less the RSS before loading
    "anon_mb": 264.2,
    "file_mb": 761.2,
    "build_peak_mb": 5_793.2,  # measured at build_commit (the build takes 63 minutes)
    "build_commit": "7826176",
    "hybrid_p95_ms": 78.05,  # the median run of three (69.0, 78.1, 83.2), load average 0.3-2
    "load_s": 1.33,
    "commit": "7826176",
    "date": "2026-12-07 07:45 UTC",
}
# Format 3 (float32 IVF lists, every chunk parsed at load), measured at b6a6719.
BEFORE_1M = {
    "extra_peak_mb": 13_208,
    "anon_mb": 304,  # without the Chunk objects, which added 1,369 MiB more
    "file_mb": 12_866,
    "chunks_anon_mb": 1_369,
    "build_peak_mb": 21_822,
    "commit": "b6a6719",
}
OPTIONS = (  # name, bytes per vector in RAM, re-scored from the float file
    ("float32 IVF lists, memory-mapped (format 3)", 4 * DIM, False),
    ("float16 (SQfp16)", 2 * DIM, False),
    ("8-bit scalar codes (SQ8)", DIM, True),
    ("4-bit scalar codes (SQ4)", DIM // 2, True),
    ("IVF-PQ, 96 bytes (PQ96x8)", 96, True),
    ("IVF-PQ, 48 bytes (PQ48x8)", 48, True),
)
IDS = 8  # bytes per vector: IVF list ids (int64)
RESCORE_ROWS = 1_000  # float rows a query re-scores exactly: 200 chunks, 900 units, ...


def lat(d: dict | None) -> str:
    if not d or "p50_ms" not in d:
        return "–"
    return f"p50 {d['p50_ms']:.1f} ms, p95 {d['p95_ms']:.1f} ms"


def section(results: dict) -> list[str]:
    leg = (results.get("scale") or {}).get("1000000") or {}
    now = dict(LAST_1M)
    try:  # this run's figures, when it built the 1M leg
        load, build = leg["load"], leg["build"]
        now["units"], now["build_peak_mb"] = build["units"], build["peak"]["peak_mb"]
        for key in ("anon_mb", "file_mb"):
            now[key] = load["after_queries"][key] - load["base"][key]
        now["extra_peak_mb"] = load["after_queries"]["peak_mb"] - load["base"]["rss_mb"]
        now["hybrid_p95_ms"], now["load_s"] = load["hybrid"]["p95_ms"], load["load_s"]
        measured = "measured in this run"
    except (KeyError, TypeError):
        measured = f"last measured at {LAST_1M['commit']}, {LAST_1M['date']}"
    units, before = now["units"], BEFORE_1M
    pq = (results.get("chunk_index") or {}).get("1000000", {}).get("pq") or {}
    depths = sorted((int(k), v["recall@10"]) for k, v in pq.items() if isinstance(v, dict))
    recall = ""
    if depths:
        recall = (
            f" On the 1M synthetic chunk vectors, re-scoring the top {depths[0][0]} by their "
            f"PQ{pq['bytes']} codes gave recall@10 {depths[0][1]:.3f}, the top "
            f"{depths[-1][0]} {depths[-1][1]:.3f} (above)."
        )
    chunks = 1_000_000
    rows = []
    for name, size, rescored in OPTIONS:
        unit_mb, chunk_mb = units * (size + IDS) / MIB, chunks * (size + IDS) / MIB
        total = unit_mb + chunk_mb + units * 8 / MIB  # + unit -> chunk owner array
        touched = f"{RESCORE_ROWS * 4096 / MIB:.0f} MiB (one page per row)" if rescored else "–"
        rows.append(
            (
                name,
                f"{unit_mb:,.0f}",
                f"{chunk_mb:,.0f}",
                f"{total:,.0f}",
                touched,
                "yes" if total + before["anon_mb"] <= 2048 else "no",
            )
        )
    headers = ["vectors held as", "unit codes MiB", "chunk codes MiB", "dense total MiB",
               "float pages per query", "within 2 GB"]  # fmt: skip
    return [
        "## 1M chunks in 2 GB",
        "",
        f"At 1M chunks and {units:,} unit (line) vectors ({measured}), loading and answering "
        f"100 questions raise the process's peak RSS by {now['extra_peak_mb']:,.0f} MiB: "
        f"{now['anon_mb']:,.0f} MiB anonymous and {now['file_mb']:,.0f} MiB of memory-mapped "
        f"file pages. Hybrid query p95 {now['hybrid_p95_ms']:.1f} ms; the load takes "
        f"{now['load_s']:.1f} s; building peaks at {now['build_peak_mb']:,.0f} MiB. Format 3 "
        f"(at {before['commit']}) took {before['extra_peak_mb']:,} MiB to answer, "
        f"{before['file_mb']:,} of them the float32 IVF lists of the unit vectors (each "
        "question scans 1/16 of them, so 100 questions touch nearly all 11 GiB), plus "
        f"{before['chunks_anon_mb']:,} MiB of parsed chunks, and its build peaked at "
        f"{before['build_peak_mb']:,} MiB.",
        "",
        "How format 4 fits:",
        "",
        "- an approximate FAISS index holds 48-byte PQ codes (IVF-PQ, memory-mapped: the file "
        "pages above are these codes and the BM25 arrays); a question scans the codes of 1/16 "
        "of its groups and re-scores its best k + 100 candidates exactly from a float32 `.npy` "
        "of the rows, read with pread (`rag.index.dense.RowFile`). Mapped, those rows grew the "
        "process by 500-900 MiB a question (10 GB after 100): Linux maps a whole cached folio, "
        "up to MBs, on each touch;" + recall,
        "- `chunks.jsonl` is not parsed at load: the reader keeps where each line starts (8 "
        "bytes a chunk) and parses a chunk when it is asked for (`rag.index.chunkfile`);",
        "- the build writes the chunk and unit rows to their `.npy` block by block as it adds "
        "them (no array of every vector is held), tokenizes the chunks for BM25 one at a time "
        "instead of holding every token list, and a chunk's units share their parent bullets "
        "and line numbers. Its peak is read before the bench's recall check, which builds exact "
        "indexes to compare with.",
        "",
        "Sizes of each way to hold the vectors, for 1M chunks and their unit vectors, with "
        "8-byte list ids and the int64 unit-to-chunk array, on top of the "
        f"{before['anon_mb']:,} MiB the rest of the engine held at {before['commit']}:",
        "",
        markdown_table(headers, rows),
        "",
    ]


def chunk_index_section(legs: dict) -> list[str]:
    """The approximate chunk index alone at large sizes, and how many candidates its PQ codes
    must give for exact re-scoring."""
    rows = []
    for size, c in sorted(legs.items(), key=lambda x: int(x[0])):
        if "error" in c:
            rows.append((f"{int(size):,}", f"failed: {c['error']}", "", "", "", ""))
            continue
        rows.append(
            (
                f"{int(size):,}",
                f"{c['probed']} of {c['lists']}",
                f"{c['build_s']:.1f}",
                f"{c['recall@10']:.3f}",
                lat(c["query"]),
                f"{c['peak']['peak_mb']:,.0f}",
            )
        )
    headers = ["chunks", "groups scanned", "build, s", "recall@10", "top-100 query", "peak MiB"]
    out = [
        "## The approximate chunk index alone",
        "",
        "The same synthetic chunk vectors and questions as the scale legs, without notes or "
        "line vectors (`python bench/scale.py chunk-index SIZE`): recall@10 against exact "
        "search, and the query time of the chunk index by itself.",
        "",
        markdown_table(headers, rows),
        "",
    ]
    pq = [
        (f"{int(size):,}", f"{depth}", f"{d['recall@10']:.3f}", lat(d["query"]))
        for size, c in sorted(legs.items(), key=lambda x: int(x[0]))
        for depth, d in (c.get("pq") or {}).items()
        if isinstance(d, dict)
    ]
    if pq:
        some = next(c["pq"] for c in legs.values() if c.get("pq"))
        out += [
            f"The index holds {some['bytes']}-byte PQ codes; a search re-scores the top "
            "candidates by their codes exactly from their float rows (the product takes "
            "k + 100). Recall@10 against exact search, and the time of a top-10 search, by "
            "how many are re-scored:",
            "",
            markdown_table(["chunks", "candidates re-scored", "recall@10", "query"], pq),
            "",
        ]
    return out
