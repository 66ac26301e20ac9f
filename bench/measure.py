"""Small measuring helpers: latency percentiles, resident memory, free ports, tables.

with timer() as t: work()
t.seconds                         # wall time
latency([0.010, 0.012, 0.050])    # {"n": 3, "p50_ms": 12.0, "p95_ms": 46.2, ...}
rss()                             # {"rss_mb": ..., "peak_mb": ..., "anon_mb": ..., ...}
reset_peak()                      # peak_mb from now on is the peak of what follows
"""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default): p in [0, 100]."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency(seconds: Sequence[float]) -> dict:
    """p50 / p95 / max of per-call wall times, in milliseconds."""
    return {
        "n": len(seconds),
        "p50_ms": round(1000 * percentile(seconds, 50), 2),
        "p95_ms": round(1000 * percentile(seconds, 95), 2),
        "max_ms": round(1000 * max(seconds), 2),
    }


@dataclass
class Timer:
    seconds: float = 0.0


@contextmanager
def timer() -> Iterator[Timer]:
    t = Timer()
    start = time.perf_counter()
    try:
        yield t
    finally:
        t.seconds = time.perf_counter() - start


def timed_calls(fn, items, warmup: int = 3) -> list[float]:
    """Wall time of fn(item) for each item, after a few untimed calls."""
    for item in list(items)[:warmup]:
        fn(item)
    out = []
    for item in items:
        start = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - start)
    return out


STATUS_FIELDS = {"VmRSS": "rss_mb", "VmHWM": "peak_mb", "RssAnon": "anon_mb", "RssFile": "file_mb"}


def parse_status(text: str) -> dict:
    """Memory lines of /proc/<pid>/status ("VmRSS:  1024 kB") in MiB."""
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name in STATUS_FIELDS:
            out[STATUS_FIELDS[name]] = round(int(value.split()[0]) / 1024, 1)
    return out


def rss(pid: int | str = "self") -> dict:
    """Resident memory now and at its peak; file_mb is memory-mapped file pages (reclaimable)."""
    return parse_status(Path(f"/proc/{pid}/status").read_text())


def reset_peak() -> bool:
    """Start this process's peak RSS (VmHWM) again from its RSS now, so that a later peak_mb
    is the peak of what ran in between (Linux: clear_refs 5); False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A GitHub markdown table; None shows as an en dash."""

    def cell(v) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def eval_questions() -> list[str]:
    """The questions of eval/questions.jsonl, in file order."""
    path = Path(__file__).resolve().parent.parent / "eval" / "questions.jsonl"
    return [json.loads(line)["question"] for line in path.read_text().splitlines() if line]
