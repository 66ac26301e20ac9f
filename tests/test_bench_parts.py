"""The benchmark's pure parts: percentiles, memory lines, tables, and seeded synthetic notes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/ is not installed

from bench import plan, scale, synth  # noqa: E402
from bench.measure import latency, markdown_table, parse_status, percentile  # noqa: E402
from bench.report import render  # noqa: E402


def test_percentile_by_hand():
    values = [0.040, 0.010, 0.020, 0.030]  # sorted: 10 20 30 40
    assert percentile(values, 50) == pytest.approx(0.025)  # halfway between 20 and 30
    assert percentile(values, 95) == pytest.approx(0.0385)  # 30 + 0.85 * 10
    assert percentile(values, 0) == 0.010 and percentile(values, 100) == 0.040
    assert percentile([7.0], 95) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    assert latency([0.010, 0.020, 0.030]) == {
        "n": 3,
        "p50_ms": 20.0,
        "p95_ms": 29.0,
        "max_ms": 30.0,
    }


def test_rows_gathered_from_blocks_as_from_the_whole():
    whole = np.random.default_rng(0).normal(size=(23, 4)).astype(np.float32)
    blocks = [(a, whole[a : a + 5]) for a in range(0, 23, 5)]  # the last block is short
    wanted = (np.array([22, 0, 7, 7]), np.array([], dtype=np.int64), np.arange(23)[::-3])
    for got, rows in zip(scale._rows_of(blocks, wanted), wanted, strict=True):
        np.testing.assert_array_equal(got, whole[rows])


def test_exact_top_over_blocks_is_the_top_of_the_whole():
    rng = np.random.default_rng(1)
    whole, queries = rng.normal(size=(50, 8)), rng.normal(size=(6, 8))
    blocks = [(a, whole[a : a + 7]) for a in range(0, 50, 7)]
    top = scale._exact_top(blocks, queries, 4)
    np.testing.assert_array_equal(top, np.argsort(-(queries @ whole.T), axis=1)[:, :4])


def test_memory_lines_of_proc_status():
    status = "Name:\tpython\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nRssAnon:\t 51200 kB\n"
    status += "RssFile:\t   51200 kB\nThreads:\t3\n"
    assert parse_status(status) == {
        "peak_mb": 200.0,
        "rss_mb": 100.0,
        "anon_mb": 50.0,
        "file_mb": 50.0,
    }


def test_markdown_table():
    assert markdown_table(["a", "b"], [("x", 1234), (None, 0.5), ("y", 1234.5)]) == (
        "| a | b |\n|---|---|\n| x | 1,234 |\n| – | 0.50 |\n| y | 1,234 |"
    )


def test_synthetic_notes_are_the_same_for_the_same_seed():
    assert synth.notes(30, seed=3) == synth.notes(30, seed=3)
    assert synth.notes(30, seed=3) != synth.notes(30, seed=4)


def test_synthetic_chunks_come_in_the_size_asked_with_real_line_spans():
    chunks = synth.synthetic_chunks(2500)
    assert len(chunks) == 2500
    files = dict(synth.notes(2500))
    for chunk in chunks[::97]:
        lines = files[chunk.path].split("\n")
        assert chunk.text == "\n".join(lines[chunk.start_line - 1 : chunk.end_line])
    # sections are shaped like the default notes': a handful of bullet lines, 2-4 headings deep
    sizes = [c.end_line - c.start_line + 1 for c in chunks]
    assert 4 <= np.median(sizes) <= 14
    assert {len(c.heading) for c in chunks} <= {2, 3, 4}


def test_synthetic_vectors_cluster_by_topic_and_repeat_by_block():
    model = synth.VectorModel(seed=0, dim=384)
    rows = np.arange(200)
    v = model.chunk_block(rows, synth.topic_of(rows))
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    same, other = float(v[0] @ v[1]), float(v[0] @ v[120])  # topics 0, 0 and 2
    assert 0.35 < same < 0.65 and abs(other) < 0.2
    assert np.array_equal(v, model.chunk_block(rows, synth.topic_of(rows)))
    near = model.near(v[:50], 0.7, salt=1)
    assert 0.75 < float(np.mean(np.sum(near * v[:50], axis=1))) < 0.9


def test_memory_plan_sizes_by_hand():
    lines = "\n".join(plan.section({})).splitlines()
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines}
    pq48 = rows["IVF-PQ, 48 bytes (PQ48x8)"]
    # 7,643,986 units x (48 + 8) bytes = 408.2 MiB; 1M chunks x 56 bytes = 53.4 MiB;
    # + 7,643,986 x 8 bytes owner array = 58.3 MiB: 520 MiB, + 304 MiB of the engine: fits
    assert pq48[1:4] == ["408", "53", "520"] and pq48[-1] == "yes |"
    assert rows["8-bit scalar codes (SQ8)"][-1] == "no |"  # 2,858 + 374 + 58 + 304 > 2,048


def test_report_states_recall_targets_and_the_1m_memory_target():
    results = {
        "machine": {k: "?" for k in ("cpu", "cores", "memory_gb", "python", "torch", "faiss")}
        | {"numpy": "?", "commit": "abc1234", "date": "today", "load_average": 1.0},
        "scale": {"100000": {"build": {"dense": {"recall@10": {"chunk_index": 0.97}}}}},
        "chunk_index": {
            "1000000": {
                "recall@10": 0.94,
                "probed": 512,
                "lists": 8192,
                "build_s": 300.0,
                "query": {"p50_ms": 5.0, "p95_ms": 7.0},
                "peak": {"peak_mb": 4000.0},
            }
        },
    }
    text = render(results)
    assert (
        "| recall@10 of the approximate chunk index, 100,000 chunks | 0.970 | >= 0.95 | yes" in text
    )
    assert (
        "| recall@10 of the approximate chunk index, 1,000,000 chunks | 0.940 | >= 0.95 | no"
        in text
    )
    # Not built in this run: the 1M targets as last measured, each judged against its goal.
    last = plan.LAST_1M
    for name, key, goal, unit, commit in [
        ("answer 100 questions, 1M chunks", "extra_peak_mb", 2048, "MiB", "commit"),
        ("hybrid query p95 at 1M chunks", "hybrid_p95_ms", 100, "ms", "commit"),
        ("peak RSS of the 1M-chunk build", "build_peak_mb", 8192, "MiB", "build_commit"),
    ]:
        row = next(line for line in text.splitlines() if name in line)
        met = "yes" if last[key] <= goal else "no"
        expected = f"| {last[key]:,.2f} {unit} | <= {goal} {unit} | {met} | at {last[commit]}"
        assert expected in row
    results["scale"]["1000000"] = {
        "build": {"peak": {"peak_mb": 9000.0}},
        "load": {
            "base": {"rss_mb": 100.0, "anon_mb": 90.0, "file_mb": 10.0},
            "after_queries": {"peak_mb": 1600.0, "anon_mb": 600.0, "file_mb": 900.0},
            "hybrid": {"p95_ms": 40.0},
        },
    }
    text = render(results)
    assert "answer 100 questions, 1M chunks | 1,500.00 MiB | <= 2048 MiB | yes" in text
    assert "| peak RSS of the 1M-chunk build | 9,000.00 MiB | <= 8192 MiB | no |" in text
