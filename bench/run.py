"""Run every benchmark and write docs/benchmarks.md and docs/benchmarks.json.

    python bench/run.py                                # default notes, then 10k and 100k chunks
    python bench/run.py --sizes 10000,100000,1000000   # add the 1M-chunk leg (about 65 min more)
    python bench/run.py --skip served,encode --sizes 10000
    python bench/run.py --chunk-index-sizes 1000000    # add the 1M chunk index alone (~6 min)

Each part runs in its own process, so its memory figures are its own. Figures are medians
(p50) and 95th percentiles over many calls: the machine is shared, expect noise.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import render  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("core", "served", "encode", "scale")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    out = Path(args.out)
    if args.report_only:  # after a change to the report's wording: no measuring
        markdown = render(json.loads((out / "benchmarks.json").read_text()))
        (out / "benchmarks.md").write_text(markdown)
        print(markdown)
        return 0
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()] if args.sizes else []
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(PARTS):
        raise SystemExit(f"--skip takes {', '.join(PARTS)}; not {', '.join(skip - set(PARTS))}")
    work = Path(args.work or tempfile.mkdtemp(prefix="rag-bench-"))
    command = " ".join(["python bench/run.py", *(sys.argv[1:] if argv is None else argv)])
    results: dict = {"machine": _machine(), "sizes": sizes, "command": command}
    started = time.perf_counter()
    results["core"] = _part("core", work / "core")  # also builds the index the next two use
    if "served" not in skip:
        results["served"] = _part("served", work / "core")
    if "encode" not in skip:
        results["encode"] = _part("encode", work / "core")
    if "scale" not in skip:
        results["scale"] = {}
        for size in sizes:
            folder = work / f"scale-{size}"
            results["scale"][str(size)] = {
                "build": _part("scale", "build", str(size), folder),
                "load": _part("scale", "load", folder),
                "edit": _part("scale", "edit", folder),
            }
            subprocess.run(["rm", "-rf", str(folder)], check=False)
    chunk_sizes = [int(s) for s in args.chunk_index_sizes.split(",") if s.strip()]
    if chunk_sizes:
        results["chunk_index"] = {
            str(n): _part("scale", "chunk-index", str(n)) for n in chunk_sizes
        }
    results["seconds"] = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = render(results)
    (out / "benchmarks.md").write_text(markdown)
    print(markdown)
    return 0


def _part(name: str, *args) -> dict:
    """Run bench/<name>.py in a fresh process; its last stdout line is its JSON."""
    script = ROOT / "bench" / f"{'scale' if name == 'scale' else name}.py"
    print(f"bench: {name} {' '.join(map(str, args))} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(script), *map(str, args)], cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if proc.returncode != 0 or not proc.stdout.strip():
        tail = (proc.stderr or "").strip().splitlines()[-5:]
        print(f"bench: {name} failed: {' | '.join(tail)}", file=sys.stderr)
        return {"error": " | ".join(tail)[-600:], "wall_s": seconds}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = seconds
    return result


def _machine() -> dict:
    import faiss
    import numpy
    import torch

    info = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((x.split(":", 1)[1].strip() for x in info if x.startswith("model name")), "?")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    mem = int(next(x for x in meminfo if x.startswith("MemTotal")).split()[1])
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem / 2**20, 1),
        "load_average": os.getloadavg()[0],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "numpy": numpy.__version__,
        "commit": commit,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/run.py",
        description="Speed, memory and scale of rag; writes docs/benchmarks.md and .json.",
        epilog=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        default="10000,100000",
        help="synthetic note sizes, in chunks, comma-separated (default 10000,100000)",
    )
    parser.add_argument(
        "--chunk-index-sizes",
        default="",
        help="sizes at which to build and measure the approximate chunk index alone",
    )
    parser.add_argument("--skip", default="", help=f"parts to leave out: {', '.join(PARTS[1:])}")
    parser.add_argument("--work", help="scratch folder (default: a new temporary folder)")
    parser.add_argument(
        "--report-only", action="store_true", help="re-write benchmarks.md from benchmarks.json"
    )
    parser.add_argument("--out", default=str(ROOT / "docs"), help="where the report goes")
    return parser


if __name__ == "__main__":
    sys.exit(main())
