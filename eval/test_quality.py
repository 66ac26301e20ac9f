"""Retrieval and answer quality on eval/questions.jsonl, against the floors in floors.json.

The table is printed at the end of the run and written to eval/results.json. When quality
improves, raise the floors (one place: eval/floors.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.quality.evaluate import evaluate, format_table

TABLE = pytest.StashKey[str]()

EVAL = Path(__file__).resolve().parent
FLOORS = json.loads((EVAL / "floors.json").read_text())
MARGIN = FLOORS["margin"]


@pytest.fixture(scope="module")
def report(engine, cases, request):
    result = evaluate(engine, cases)
    (EVAL / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    request.config.stash[TABLE] = format_table(result)  # printed by conftest at the end
    return result


@pytest.mark.parametrize("metric", ["R@5", "MRR@10"])
def test_hybrid_is_no_worse_than_either_leg(report, metric):
    r = report["retrieval"]
    hybrid = r["hybrid"]["overall"][metric]
    assert hybrid >= r["bm25"]["overall"][metric], f"hybrid {metric} below bm25"
    assert hybrid >= r["dense"]["overall"][metric], f"hybrid {metric} below dense"


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_retrieval_floors(report, mode):
    got = report["retrieval"][mode]["overall"]
    low = {m: (got[m], floor) for m, floor in FLOORS[mode].items() if got[m] < floor - MARGIN}
    assert not low, f"{mode} fell below its floors (value, floor): {low}"


def test_answer_floors(report):
    got, floors = report["answers"], FLOORS["answers"]
    assert got["first_citation_accuracy"] >= floors["first_citation_accuracy"] - MARGIN
    assert got["decline_rate_unanswerable"] >= floors["decline_rate_unanswerable"] - MARGIN
    assert got["decline_rate_answerable"] <= floors["max_decline_rate_answerable"] + MARGIN
