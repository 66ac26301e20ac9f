"""Quality where nobody tuned: the frozen test part and the blind set, against eval/floors.json.

Every part is measured and printed at the end of the run (the tuning part too, to compare),
and written to eval/results.json. The floors are counts of questions, set a few questions below
what was measured (above, for wrong declines), so that a drop of one question is noise and a
real loss is not. They apply to the test part and the blind set only: the tuning part is what
`eval/fit_answer.py` fits on, so its figures say little about what users will see.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.quality.evaluate import answer_report, decline_report, evaluate, format_table

TABLE = pytest.StashKey[str]()
EVAL = Path(__file__).resolve().parent
FLOORS = json.loads((EVAL / "floors.json").read_text())


@pytest.fixture(scope="module")
def report(engine, parts, request):
    result = {name: evaluate(engine, cases) for name, cases in parts.items()}
    (EVAL / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    request.config.stash[TABLE] = "\n\n".join(
        f"{name} ({len(parts[name])} questions)\n{format_table(r)}" for name, r in result.items()
    )
    return result


@pytest.mark.parametrize("metric", ["R@5", "MRR@10"])
def test_hybrid_is_no_worse_than_either_leg(report, metric):
    r = report["test"]["retrieval"]
    hybrid = r["hybrid"]["overall"][metric]
    assert hybrid >= r["bm25"]["overall"][metric], f"hybrid {metric} below bm25"
    assert hybrid >= r["dense"]["overall"][metric], f"hybrid {metric} below dense"


@pytest.mark.parametrize("part", ["test", "blind"])
def test_retrieval_floors(report, part):
    got, floors = report[part]["retrieval"]["hybrid"], FLOORS[part]["retrieval"]
    slack = FLOORS["slack_questions"] / got["n"]
    low = {m: (got["overall"][m], f) for m, f in floors.items() if got["overall"][m] < f - slack}
    assert not low, f"{part}: hybrid fell below its floors (value, floor): {low}"


@pytest.mark.parametrize("part", ["test", "blind"])
def test_answer_floors(report, part):
    got, floors = report[part]["answers"]["counts"], FLOORS[part]["answers"]
    assert got["first_citation_correct"] >= floors["first_citation_correct"], got
    assert got["declined_unanswerable"] >= floors["declined_unanswerable"], got
    assert got["declined_answerable"] <= floors["max_declined_answerable"], got
    if "typo_same_lines" in floors:
        assert got["typo_same_lines"] >= floors["typo_same_lines"], got


@pytest.mark.parametrize("part", ["test", "blind"])
def test_answers_during_a_first_pass_cite_as_the_whole_index_does(
    first_pass, report, parts, part, capsys
):
    """A new index answers from its section vectors before its line vectors are in; the lines
    of the sections a question finds are embedded then (`Engine._embed_pending_units`), so
    its answers should cite what the whole index's cite, give or take slack_questions."""
    got = answer_report(first_pass, parts[part])
    whole = report[part]["answers"]
    with capsys.disabled():
        print(
            f"\n{part}, during a first pass: first-citation accuracy "
            f"{got['first_citation_accuracy']:.3f} (whole index "
            f"{whole['first_citation_accuracy']:.3f}), declined "
            f"{got['decline_rate_unanswerable']:.1%} of {got['unanswerable']} unanswerable and "
            f"{got['decline_rate_answerable']:.1%} of {got['answerable']} answerable"
        )
    got, whole, slack = got["counts"], whole["counts"], FLOORS["slack_questions"]
    assert got["first_citation_correct"] >= whole["first_citation_correct"] - slack, got
    assert got["declined_answerable"] <= whole["declined_answerable"] + slack, got


def test_questions_asked_of_the_wrong_notes_are_declined(engine, scifact, parts, capsys):
    """SciFact's claims asked of these notes, and these notes' questions asked of SciFact."""
    scifact_engine, claims = scifact
    claims_here = decline_report(engine, claims)
    answerable = [c.question for c in parts["test"] + parts["blind"] if c.gold]
    ours_there = decline_report(scifact_engine, answerable)
    with capsys.disabled():
        print(
            f"\nSciFact claims asked of the notes: declined {claims_here['declined']} of "
            f"{claims_here['questions']}; the notes' questions asked of SciFact: declined "
            f"{ours_there['declined']} of {ours_there['questions']}"
        )
    floors = FLOORS["wrong_notes"]
    assert claims_here["declined"] >= floors["scifact_claims_declined"], claims_here
    assert ours_there["declined"] >= floors["questions_asked_of_scifact_declined"], ours_there
