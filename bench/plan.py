"""Scale past what the default run builds: the approximate chunk index alone at 1M chunks,
and the 1M-chunk memory target: what the index holds now, and what each way of storing its
vectors would need. Sizes are computed from the counts; the last measured figures are quoted
when this run did not build the 1M leg (it peaks near 22 GB on a 23.5 GB machine).
"""

from __future__ import annotations

from bench.measure import markdown_table

MIB = 2**20
DIM = 384
# The 1M-chunk leg as last measured (commit b6a6719, 2026-11-27 18:30 UTC, docs/benchmarks.json
# of that commit): synthetic counts are seeded, so the unit count is the same in every run.
LAST_1M = {
    "units": 7_643_986,
    "extra_peak_mb": 13_208,  # peak RSS after 100 questions, less the RSS before loading
    "anon_mb": 304,
    "file_mb": 12_866,
    "chunks_anon_mb": 1_369,  # Chunk objects of all 1M chunks, on top
    "build_peak_mb": 21_822,
    "commit": "b6a6719",
}
OPTIONS = (  # name, bytes per vector in RAM, re-scored from the float file
    ("float32 IVF lists, memory-mapped (now)", 4 * DIM, False),
    ("float16 (SQfp16)", 2 * DIM, False),
    ("8-bit scalar codes (SQ8)", DIM, True),
    ("4-bit scalar codes (SQ4)", DIM // 2, True),
    ("IVF-PQ, 96 bytes (PQ96x8)", 96, True),
    ("IVF-PQ, 48 bytes (PQ48x8)", 48, True),
)
IDS = 8  # bytes per vector: IVF list ids (int64)
RESCORE_ROWS = 1_000  # float rows a query re-scores exactly: 100 chunks, 800 units, ...


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
        now["chunks_anon_mb"] = load["after_chunks"]["anon_mb"] - load["after_queries"]["anon_mb"]
        measured = "measured in this run"
    except (KeyError, TypeError):
        measured = f"last measured at {LAST_1M['commit']}; this run did not build the 1M leg"
    units = now["units"]
    pq = (results.get("chunk_index") or {}).get("1000000", {}).get("pq") or {}
    depths = sorted((int(k), v["recall@10"]) for k, v in pq.items() if isinstance(v, dict))
    if depths:
        recall = (
            f"On the 1M synthetic chunk vectors, PQ{pq['bytes']} candidates re-scored exactly "
            f"gave recall@10 {depths[0][1]:.3f} with the top {depths[0][0]} re-scored and "
            f"{depths[-1][1]:.3f} with the top {depths[-1][0]} (above); real embeddings cluster "
            "less cleanly than these, so the depth needs checking on real vectors."
        )
    else:
        recall = (
            "How many candidates must be re-scored to keep recall@10 >= 0.95 is not measured "
            "in this run (`--chunk-index-sizes 1000000` measures it)."
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
                "yes" if total + now["anon_mb"] <= 2048 else "no",
            )
        )
    headers = ["vectors held as", "unit codes MiB", "chunk codes MiB", "dense total MiB",
               "float pages per query", "within 2 GB"]  # fmt: skip
    return [
        "## 1M chunks in 2 GB: why not yet, and what would",
        "",
        f"At 1M chunks ({measured}) answering 100 questions leaves "
        f"{now['anon_mb']:,.0f} MiB anonymous and {now['file_mb']:,.0f} MiB of memory-mapped "
        f"file pages resident, and building peaks at {now['build_peak_mb']:,.0f} MiB. The file "
        f"pages are the IVF lists of the {units:,} unit (line) vectors, float32: each question "
        "scans 1/16 of the lists (about 700 MiB), so a hundred questions touch nearly all of "
        "the 11 GiB. The kernel may drop those pages, but a machine short of memory then reads "
        "them from disk on every question. The build holds the whole float32 unit index in RAM "
        "until it is written (11 GiB, more while its lists grow), beside the chunk vectors.",
        "",
        "What fits: small codes in RAM for candidate generation, then an exact re-score of the "
        "candidates' rows from a memory-mapped float32 file (about 1,000 rows a question). "
        "Sizes for 1M chunks and their unit vectors, with 8-byte list ids and the int64 "
        "unit-to-chunk array, on top of the "
        f"{now['anon_mb']:,.0f} MiB the rest of the engine held:",
        "",
        markdown_table(headers, rows),
        "",
        "IVF-PQ48 or PQ96 with re-scoring meets the target for the two legs. "
        + recall
        + " Building it needs only "
        "the PQ training sample and the codes in RAM, the floats written block by block to a "
        ".npy file: a peak of about 3 GB instead of "
        f"{now['build_peak_mb'] / 1024:.0f} GB. Loading all 1M `Chunk` objects adds "
        f"{now['chunks_anon_mb']:,.0f} MiB more: within 2 GB they would have to be read on "
        "demand (an 8 MiB offsets array into chunks.jsonl, only the hits parsed). Both change "
        "the index format (a version bump and a rebuild).",
        "",
    ]


def chunk_index_section(legs: dict) -> list[str]:
    """The approximate chunk index alone at large sizes, and PQ codes with re-scoring."""
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
            f"The same groups holding {some['bytes']}-byte PQ codes instead of the vectors "
            "(what would fit 1M chunks in 2 GB, below): the top candidates by PQ score are "
            "re-scored from their float rows. Recall@10 against exact search:",
            "",
            markdown_table(["chunks", "candidates re-scored", "recall@10", "query"], pq),
            "",
        ]
    return out
