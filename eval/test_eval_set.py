"""The eval set itself: well-formed, with tight gold ranges inside the notes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVAL = ROOT / "eval"

NOTES = (ROOT / "notes" / "aws-notes.md").read_text(encoding="utf-8").split("\n")
TYPES = {"paraphrase", "keyword", "fact", "comparison", "howto", "unanswerable"}
TEST_IDS = "5af02ee0bbe4"  # sha256 of the test part's ids: the split never moves
BLIND_TYPES = {"fact", "paraphrase", "keyword", "comparison", "howto", "typo", "near_miss"}


def _items(name):
    return [json.loads(line) for line in (EVAL / name).read_text().splitlines() if line.strip()]


def _check_gold(item):
    for g in item["gold"]:
        assert g["path"] == "aws-notes.md", item["id"]
        assert 1 <= g["start_line"] <= g["end_line"] <= len(NOTES), item["id"]
        assert g["end_line"] - g["start_line"] < 4, f"{item['id']}: gold range over 4 lines"
        assert NOTES[g["start_line"] - 1].strip(), f"{item['id']}: gold starts on a blank line"
        assert NOTES[g["end_line"] - 1].strip(), f"{item['id']}: gold ends on a blank line"


@pytest.mark.parametrize("name", ["questions.jsonl", "tune_extra.jsonl"])
def test_questions_are_well_formed(name):
    items = _items(name)
    assert len(items) >= 150
    assert len({i["id"] for i in items}) == len(items), "ids must be unique"
    for item in items:
        assert set(item) == {"id", "question", "gold", "type", "answer", "split"}, item["id"]
        assert item["type"] in TYPES, item["id"]
        assert item["question"].strip(), item["id"]
        assert bool(item["gold"]) == (item["type"] != "unanswerable"), item["id"]
        _check_gold(item)
    assert name != "tune_extra.jsonl" or {i["split"] for i in items} == {"tune"}


def test_the_split_is_two_to_one_by_type_and_frozen():
    items = _items("questions.jsonl")
    by_type = Counter((i["type"], i["split"]) for i in items)
    for t in TYPES:
        test, tune = by_type[(t, "test")], by_type[(t, "tune")]
        assert abs(tune - 2 * test) <= 2, (t, tune, test)
    # frozen: the 133 test questions are exactly these (ids hashed, in file order)
    test_ids = "".join(i["id"] for i in items if i["split"] == "test")
    assert hashlib.sha256(test_ids.encode()).hexdigest()[:12] == TEST_IDS


def test_the_blind_set_is_well_formed():
    items = _items("blind/questions.jsonl")
    keys = {"id", "question", "gold", "type", "answer", "correct", "absent"}
    assert len({i["id"] for i in items}) == len(items) >= 150
    for item in items:
        assert set(item) == keys and item["type"] in BLIND_TYPES, item["id"]
        assert bool(item["gold"]) == (item["type"] != "near_miss"), item["id"]
        assert bool(item["correct"]) == (item["type"] == "typo"), item["id"]
        assert item["correct"] != item["question"], item["id"]
        assert bool(item["absent"]) == (item["type"] == "near_miss"), item["id"]
        _check_gold(item)
    types = Counter(i["type"] for i in items)
    assert types["near_miss"] >= 40 and types["typo"] >= 30 and types["comparison"] >= 20


def test_question_mix():
    types = Counter(i["type"] for i in _items("questions.jsonl"))
    total = sum(types.values())
    assert types["unanswerable"] >= 20
    assert 0.30 <= types["paraphrase"] / total <= 0.40
    assert types["keyword"] / total >= 0.15 and types["fact"] / total >= 0.15


def test_every_top_level_section_is_covered():
    sections = [n for n, line in enumerate(NOTES, 1) if line.startswith("## ")]
    bounds = list(zip(sections, [*sections[1:], len(NOTES) + 1], strict=True))
    covered = Counter()
    for item in _items("questions.jsonl"):
        for g in item["gold"]:
            for start, end in bounds:
                if start <= g["start_line"] < end:
                    covered[start] += 1
    missing = [NOTES[s - 1] for s, _ in bounds if covered[s] < 2]
    assert not missing, f"sections with fewer than 2 questions: {missing}"


@pytest.mark.parametrize("name", ["followups.jsonl", "blind/followups.jsonl"])
def test_followups_are_well_formed(name):
    items = _items(name)
    assert len(items) >= 20
    assert len({i["id"] for i in items}) == len(items)
    for item in items:
        assert item["first"].strip() and item["followup"].strip() and item["gold"], item["id"]
        _check_gold(item)
