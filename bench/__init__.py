"""Benchmarks: `python bench/run.py` writes docs/benchmarks.md and docs/benchmarks.json."""
