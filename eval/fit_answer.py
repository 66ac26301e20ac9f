"""Fit the extractive answer's two rules on the TUNING part of the eval set, never the test.

    .venv/bin/python eval/fit_answer.py            # prints the weights and their figures
    .venv/bin/python eval/fit_answer.py --write    # and writes them into rag/answer/evidence.py

1. Line choice: a softmax over each answerable question's candidate units (the units of its
   top five hits), fitted so that a unit overlapping the gold lines scores highest.
2. The verdict: a class-balanced logistic rule over the best candidate's evidence, answerable
   (1) or not (0); its threshold is the highest that declines at most DECLINE_BUDGET of the
   tuning part's answerable questions.

The tuning part is `eval/questions.jsonl` lines with "split": "tune", plus
`eval/tune_extra.jsonl`. The test part and the blind set (`eval/blind/`) are only measured.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.answer import evidence  # noqa: E402
from rag.answer.pipeline import Searched, stream_ask  # noqa: E402
from rag.quality.evaluate import load_cases, relevance  # noqa: E402
from rag.search.live import open_engine  # noqa: E402
from rag.settings import Settings  # noqa: E402

DECLINE_BUDGET = 0.03  # of the tuning part's answerable questions the verdict may decline
L2 = 0.01


def tuning_cases() -> list:
    cases = [c for c in load_cases(ROOT / "eval" / "questions.jsonl") if c.split == "tune"]
    extra = ROOT / "eval" / "tune_extra.jsonl"
    return cases + (load_cases(extra) if extra.is_file() else [])


def searched(engine, case) -> tuple[evidence.Question, list]:
    """The question as the pipeline searches it (cleaned, spelling corrected) and its hits."""
    first = next(stream_ask(engine, case.question))
    assert isinstance(first, Searched)
    return evidence.read_question(first.searched, engine.words), first.hits


def fit_units(data: list) -> dict[str, float]:
    """Softmax weights: the gold units of each question ranked first."""
    rows = [(np.array([c.features for c in cands]), y) for cands, y in data if y.any()]
    every = np.concatenate([x for x, _ in rows])
    mu, sd = every.mean(0), every.std(0) + 1e-9
    w = np.zeros(every.shape[1])
    for _ in range(3000):
        grad = L2 * w
        for x, y in rows:
            s = ((x - mu) / sd) @ w
            p = np.exp(s - s.max())
            p /= p.sum()
            target = p * y / (p * y).sum()
            grad += ((x - mu) / sd).T @ (p - target) / len(rows)
        w -= 0.2 * grad
    raw = w / sd  # the same ranking on unscaled features (the offset is the same for all)
    return {name: round(float(v), 4) for name, v in zip(evidence.FEATURES, raw, strict=True)}


def fit_verdict(x: np.ndarray, y: np.ndarray) -> tuple[dict[str, float], float, float]:
    mu, sd = x.mean(0), x.std(0) + 1e-9
    xs = (x - mu) / sd
    balance = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(20000):
        p = 1 / (1 + np.exp(-(xs @ w + b)))
        g = (p - y) * balance
        w -= 0.5 * (xs.T @ g / len(y) + L2 * w)
        b -= 0.5 * g.mean()
    raw_w, raw_b = w / sd, b - float((w / sd) @ mu)
    z = x @ raw_w + raw_b
    answerable = np.sort(z[y == 1])
    cut = answerable[int(np.floor(DECLINE_BUDGET * len(answerable)))]  # at most the budget
    threshold = float(1 / (1 + np.exp(-cut)))
    weights = {n: round(float(v), 4) for n, v in zip(evidence.VERDICT_FEATURES, raw_w, strict=True)}
    return weights, round(raw_b, 4), round(threshold - 1e-4, 4)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="rag-fit-"))
    shutil.copytree(ROOT / "notes", work / "notes")
    engine = open_engine(Settings.from_env(env={}, notes_dir=work / "notes", index_dir=work / "i"))
    cases = tuning_cases()
    questions = [(c, *searched(engine, c)) for c in cases]

    def units_of(q, hits):
        return evidence.rank_units(q, hits)

    data = []
    for case, q, hits in questions:
        if case.gold:
            cands = units_of(q, hits)
            y = np.array([bool(relevance(case.gold, c.hit.chunk.path, *c.span)) for c in cands])
            data.append((cands, y.astype(float)))
    evidence.UNIT_WEIGHTS.update(fit_units(data))
    rows, labels, right = [], [], 0
    for case, q, hits in questions:
        ranked = units_of(q, hits)
        rows.append(evidence.verdict_features(q, ranked, hits))
        labels.append(1.0 if case.gold else 0.0)
        if case.gold and ranked:
            right += bool(relevance(case.gold, ranked[0].hit.chunk.path, *ranked[0].span))
    weights, bias, threshold = fit_verdict(np.array(rows), np.array(labels))
    z = np.array(rows) @ np.array(list(weights.values())) + bias
    y = np.array(labels)
    print("trade-off on the tuning part: threshold, share declined of unanswerable / answerable")
    for t in np.quantile(z[y == 1], [0.0, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3]):
        shares = f"{(z[y == 0] < t).mean():.2f} / {(z[y == 1] < t).mean():.2f}"
        print(f"  {1 / (1 + np.exp(-t)):.3f}  {shares}")
    answerable = sum(1 for c in cases if c.gold)
    print(f"tuning part: {len(cases)} questions, {answerable} answerable")
    print(f"first line on gold (before any decline): {right / answerable:.3f}")
    units = f"UNIT_WEIGHTS = {literal(evidence.UNIT_WEIGHTS)}\n"
    verdict = f"VERDICT_WEIGHTS = {literal(weights)}\n"
    verdict += f"VERDICT_BIAS = {bias}\nTHRESHOLD = {threshold}\n"
    print(units + verdict)
    if "--write" in sys.argv:
        write_block("units", units)
        write_block("verdict", verdict)


def literal(weights: dict[str, float]) -> str:
    """A dict as ruff formats it: one item a line, each with a trailing comma."""
    return "{\n" + "".join(f'    "{k}": {v},\n' for k, v in weights.items()) + "}"


def write_block(name: str, code: str) -> None:
    """Replace the lines between "# fitted: NAME" and "# end" in rag/answer/evidence.py."""
    path = ROOT / "rag" / "answer" / "evidence.py"
    text = path.read_text(encoding="utf-8")
    start = text.index(f"# fitted: {name}\n") + len(f"# fitted: {name}\n")
    end = text.index("# end\n", start)
    path.write_text(text[:start] + code + text[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
