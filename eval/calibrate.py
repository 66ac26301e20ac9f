"""Fit the decline rule of `rag ask` on an eval file and print its trade-off curve.

    .venv/bin/python eval/calibrate.py [eval/questions.jsonl]

A class-balanced logistic regression over the `Evidence` signals (rag/answer/extractive.py); the
curve lists, per threshold, the share of unanswerable and of answerable questions declined. Copy
the weights and the chosen threshold into rag/answer/extractive.py (WEIGHTS, THRESHOLD).
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

from rag.answer.extractive import Evidence, gather_evidence
from rag.quality.evaluate import load_cases
from rag.search.live import open_engine
from rag.settings import Settings


def features(engine, cases) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for case in cases:
        evidence = gather_evidence(case.question, engine.search(case.question, k=5), engine.idf)
        rows.append(list(evidence.features()))
        labels.append(1.0 if case.gold else 0.0)
    return np.array(rows), np.array(labels)


def fit(x: np.ndarray, y: np.ndarray, steps: int = 20000) -> tuple[np.ndarray, float]:
    w, b = np.zeros(x.shape[1]), 0.0
    balance = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w + b)))
        g = (p - y) * balance
        w -= 0.5 * (x.T @ g) / len(y)
        b -= 0.5 * g.mean()
    return w, b


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "eval/questions.jsonl")
    engine = open_engine(Settings.from_env())
    x, y = features(engine, load_cases(path))
    w, _ = fit(x, y)
    names = [f.name for f in fields(Evidence)]
    print("WEIGHTS =", tuple(round(float(v), 3) for v in w), "# for", ", ".join(names))
    z = x @ w
    print(f"{'threshold':>9}  declined unanswerable  declined answerable")
    for t in np.quantile(z, np.linspace(0.0, 0.3, 31)):
        print(f"{t:9.3f}  {(z[y == 0] < t).mean():>21.1%}  {(z[y == 1] < t).mean():>19.1%}")


if __name__ == "__main__":
    main()
