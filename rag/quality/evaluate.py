"""Measure retrieval and answers against questions with gold line ranges.

    cases = load_cases(Path("eval/questions.jsonl"))
    report = evaluate(engine, cases)
    print(format_table(report))

A hit is relevant when it is in the gold file and its line span overlaps a gold range. Answers
are asked through the same pipeline as every other caller (`rag.answer.pipeline.ask`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.answer.base import Answer
from rag.answer.pipeline import ask, stream_ask
from rag.errors import BadInput
from rag.jsonl import numbered_lines
from rag.quality.metrics import ndcg, reciprocal_rank
from rag.search.engine import Engine
from rag.settings import MODES, Mode

CUTOFFS = (1, 5, 10)
METRICS = ("R@1", "R@5", "R@10", "MRR@10", "nDCG@10")


@dataclass(frozen=True)
class Span:
    path: str
    start_line: int
    end_line: int

    def overlaps(self, path: str, start: int, end: int) -> bool:
        return path == self.path and start <= self.end_line and self.start_line <= end


@dataclass(frozen=True)
class Case:
    id: str
    question: str
    gold: tuple[Span, ...]  # empty: the notes do not answer it
    type: str
    split: str = ""  # "tune" (settings may be fitted on it) or "test" (only measured)
    correct: str = ""  # for a misspelled question: the same question spelled right


def load_cases(path: Path) -> list[Case]:
    """Read an eval file: one {"id", "question", "gold": [{path, start_line, end_line}], "type"}
    per line. Bad lines are a ValueError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"eval file {path} does not exist")
    cases, seen = [], set()
    for n, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if "vote" in item and "gold" not in item:
                raise BadInput(
                    f"{path} line {n} is a feedback line, not an eval case: give it the gold "
                    "lines that answer it (`rag eval --feedback` re-asks the voted questions)"
                )
            gold = tuple(
                Span(str(g["path"]), int(g["start_line"]), int(g["end_line"]))
                for g in item.get("gold", [])
            )
            case = Case(
                str(item["id"]),
                str(item["question"]),
                gold,
                str(item.get("type", "")),
                str(item.get("split", "")),
                str(item.get("correct", "")),
            )
        except BadInput:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise BadInput(f"{path} line {n}: not a valid eval case ({e})") from None
        if case.id in seen:
            raise BadInput(f"{path} line {n}: duplicate id {case.id!r}")
        seen.add(case.id)
        cases.append(case)
    return cases


def relevance(gold: Iterable[Span], path: str, start: int, end: int) -> set[int]:
    """Indexes of the gold ranges that a span overlaps."""
    return {i for i, g in enumerate(gold) if g.overlaps(path, start, end)}


def score_ranking(gold: tuple[Span, ...], spans: list[tuple[str, int, int]]) -> dict[str, float]:
    """Recall@k (share of gold ranges found in the top k), MRR@10 and binary nDCG@10."""
    found_by_rank = [relevance(gold, *span) for span in spans[:10]]
    out: dict[str, float] = {}
    for k in CUTOFFS:
        found = set().union(*found_by_rank[:k]) if found_by_rank[:k] else set()
        out[f"R@{k}"] = len(found) / len(gold)
    out["MRR@10"] = reciprocal_rank([bool(f) for f in found_by_rank])
    # Binary gains; a gold range found by several chunks counts each time, hence the cap.
    gains = [1 if f else 0 for f in found_by_rank]
    out["nDCG@10"] = min(ndcg(gains, [1] * len(gold)), 1.0)
    return out


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    return {m: round(sum(r[m] for r in rows) / len(rows), 4) for m in rows[0]} if rows else {}


def retrieval_report(engine: Engine, cases: list[Case], modes: tuple[Mode, ...] = MODES) -> dict:
    """{mode: {"overall": {metric: value}, "by_type": {type: {...}}, "n": count}}"""
    answerable = [c for c in cases if c.gold]
    report = {}
    for mode in modes:
        rows_by_type: dict[str, list[dict[str, float]]] = defaultdict(list)
        for case in answerable:
            found = next(stream_ask(engine, case.question, k=10, mode=mode))  # as users search
            hits = found.hits
            spans = [(h.chunk.path, h.chunk.start_line, h.chunk.end_line) for h in hits]
            rows_by_type[case.type].append(score_ranking(case.gold, spans))
        all_rows = [r for rows in rows_by_type.values() for r in rows]
        report[mode] = {
            "n": len(all_rows),
            "overall": _mean(all_rows),
            "by_type": {t: _mean(rows) for t, rows in sorted(rows_by_type.items())},
        }
    return report


def answer_report(engine: Engine, cases: list[Case], mode: Mode = "hybrid", k: int = 5) -> dict:
    """How `rag ask` answers: the first citation on the gold lines, declines (a partial or
    not-found answer) of the questions the notes do and do not answer, and, for misspelled
    questions, whether they cite what the same question spelled right cites."""
    correct = answered_ok = declined_bad = declined_good = 0
    states = {"answered": 0, "partial": 0, "not_found": 0}
    typos = same = 0
    answerable = [c for c in cases if c.gold]
    unanswerable = [c for c in cases if not c.gold]
    for case in cases:
        answer = ask(engine, case.question, k=k, mode=mode)
        if case.correct:
            typos += 1
            same += _same_lines(answer, ask(engine, case.correct, k=k, mode=mode))
        if not case.gold:
            declined_good += not answer.answered
            states[answer.status] += 1
            continue
        if not answer.answered:
            declined_bad += 1
            continue
        answered_ok += 1
        first = answer.citations[0]
        correct += bool(relevance(case.gold, first.path, first.start_line, first.end_line))
    out = {
        "first_citation_accuracy": round(correct / max(len(answerable), 1), 4),
        "first_citation_accuracy_when_answered": round(correct / max(answered_ok, 1), 4),
        "decline_rate_unanswerable": round(declined_good / max(len(unanswerable), 1), 4),
        "decline_rate_answerable": round(declined_bad / max(len(answerable), 1), 4),
        "unanswerable_as": states,
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "counts": {  # what the floors are stated in: questions
            "first_citation_correct": correct,
            "declined_unanswerable": declined_good,
            "declined_answerable": declined_bad,
        },
    }
    if typos:
        out["typo_same_lines"] = round(same / typos, 4)
        out["typos"] = typos
        out["counts"]["typo_same_lines"] = same
    return out


def decline_report(engine: Engine, questions: list[str], k: int = 5) -> dict:
    """How many of these questions, asked of notes that do not cover them, are declined."""
    answers = [ask(engine, q, k=k) for q in questions]
    states = {"answered": 0, "partial": 0, "not_found": 0}
    for a in answers:
        states[a.status] += 1
    declined = len(answers) - states["answered"]
    return {
        "questions": len(answers),
        "declined": declined,
        "as": states,
        "decline_rate": round(declined / max(len(answers), 1), 4),
    }


def _same_lines(a: Answer, b: Answer) -> bool:
    """Both declined, or both answered with first citations on the same lines."""
    if a.answered != b.answered:
        return False
    if not a.answered:
        return True
    x, y = a.citations[0], b.citations[0]
    return x.path == y.path and x.start_line <= y.end_line and y.start_line <= x.end_line


def recheck_votes(engine: Engine, votes: list[dict]) -> list[dict]:
    """Each voted answer's question asked again: does today's answer cite what was voted on?
    "same": its first citation overlaps the voted first citation (or both declined);
    "changed": it cites other lines, or answers where it declined, or the other way round."""
    rows = []
    for vote in votes:
        now = ask(engine, str(vote.get("question", "")))
        cited = vote.get("citations") or []
        then = cited[0] if cited and str(vote.get("answer", "")) != "" else None
        first = now.citations[0] if now.answered and now.citations else None
        if then is None or first is None:
            same = then is None and first is None
        else:
            same = (
                first.path == then.get("path")
                and first.start_line <= int(then.get("end_line", 0))
                and int(then.get("start_line", 0)) <= first.end_line
            )
        rows.append(
            {
                "question": now.question,
                "vote": vote.get("vote"),
                "reason": vote.get("reason", ""),
                "then": _cited(then),
                "now": f"{first.path}:{first.start_line}-{first.end_line}" if first else now.status,
                "same": same,
            }
        )
    return rows


def format_votes(rows: list[dict]) -> str:
    """The re-checked votes, one a line, then how many down-voted answers changed."""
    lines = []
    for r in rows:
        mark = "same   " if r["same"] else "CHANGED"
        why = f" ({r['reason']})" if r["reason"] else ""
        lines.append(f"{mark} {r['vote']:<4} {r['then']} -> {r['now']}  {r['question']}{why}")
    down = [r for r in rows if r["vote"] == "down"]
    up = [r for r in rows if r["vote"] == "up"]
    lines.append(
        f"{len(rows)} votes: {sum(not r['same'] for r in down)} of {len(down)} down-voted "
        f"answers now cite other lines; {sum(not r['same'] for r in up)} of {len(up)} "
        "up-voted answers changed"
    )
    return "\n".join(lines)


def _cited(citation: dict | None) -> str:
    if not citation:
        return "declined"
    return f"{citation.get('path')}:{citation.get('start_line')}-{citation.get('end_line')}"


def evaluate(engine: Engine, cases: list[Case], modes: tuple[Mode, ...] = MODES) -> dict:
    return {
        "retrieval": retrieval_report(engine, cases, modes),
        "answers": answer_report(engine, cases),
    }


def format_table(report: dict) -> str:
    retrieval = report["retrieval"]
    lines = [f"{'mode':<8} {'type':<13} {'n':>4} " + " ".join(f"{m:>8}" for m in METRICS)]
    for mode, r in retrieval.items():
        rows = [("overall", r["n"], r["overall"])]
        rows += [(t, None, v) for t, v in r["by_type"].items()]
        for label, n, values in rows:
            count = f"{n:>4}" if n is not None else "    "
            cells = " ".join(f"{values[m]:>8.3f}" for m in METRICS)
            lines.append(f"{mode:<8} {label:<13} {count} {cells}")
    if "answers" in report:
        a = report["answers"]
        line = (
            f"answers: first-citation accuracy {a['first_citation_accuracy']:.3f} "
            f"({a['first_citation_accuracy_when_answered']:.3f} when answered), declined "
            f"{a['decline_rate_unanswerable']:.1%} of {a['unanswerable']} unanswerable and "
            f"{a['decline_rate_answerable']:.1%} of {a['answerable']} answerable"
        )
        if "typo_same_lines" in a:
            line += f"; {a['typo_same_lines']:.1%} of {a['typos']} misspelled cite the same lines"
        lines.append(line)
    return "\n".join(lines)
