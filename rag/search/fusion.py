"""Stage 5b: fuse the lexical and dense rankings into one.

Pure functions over row numbers, checkable by hand:

    max_blend([{7: 4.0, 3: 2.0}, {3: 0.9, 9: 0.45}], [0.3, 0.7])
    # {7: 0.3, 3: 0.3 * 0.5 + 0.7, 9: 0.35}: each leg divided by its best score, then weighed
    ranked({7: 0.3, 3: 0.85, 9: 0.35})   # [(3, 0.85), (9, 0.35), (7, 0.3)]

Reciprocal rank fusion, the usual recipe, was measured against this blend and lost
(eval/README.md, experiments 2-3): ranks throw away how far ahead the best hit is.
"""

from __future__ import annotations

from collections.abc import Sequence


def max_blend(scored: Sequence[dict[int, float]], weights: Sequence[float]) -> dict[int, float]:
    """Blend of scores divided by each leg's best score (0 stays 0: BM25 and cosine floors).

    Unlike min-max, the result does not depend on how deep each leg was cut.
    """
    blended: dict[int, float] = {}
    for leg, weight in zip(scored, weights, strict=True):
        top = max(leg.values(), default=0.0)
        for row, score in leg.items():
            norm = score / top if top > 0 else 0.0
            blended[row] = blended.get(row, 0.0) + weight * norm
    return blended


def ranked(scores: dict[int, float]) -> list[tuple[int, float]]:
    """(row, score) best first; ties broken by row number so results are deterministic."""
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
