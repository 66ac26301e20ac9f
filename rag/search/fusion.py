"""Stage 4c: fuse the lexical and dense rankings into one.

Pure functions over row numbers, checkable by hand:

    rrf([[7, 3], [3, 9]], k=60)  ->  {3: 1/62 + 1/61, 7: 1/61, 9: 1/62}
"""

from __future__ import annotations

from collections.abc import Sequence


def rrf(rankings: Sequence[Sequence[int]], k: float = 60.0) -> dict[int, float]:
    """Reciprocal rank fusion: each ranking adds 1 / (k + rank) for rank 1, 2, ..."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, row in enumerate(ranking, start=1):
            scores[row] = scores.get(row, 0.0) + 1.0 / (k + rank)
    return scores


def weighted_rrf(
    rankings: Sequence[Sequence[int]], weights: Sequence[float], k: float = 60.0
) -> dict[int, float]:
    """RRF where ranking i counts `weights[i]` times."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, row in enumerate(ranking, start=1):
            scores[row] = scores.get(row, 0.0) + weight / (k + rank)
    return scores


def minmax_blend(scored: Sequence[dict[int, float]], weights: Sequence[float]) -> dict[int, float]:
    """Blend of scores min-max normalised per leg to [0, 1]; a row a leg missed gets 0 there."""
    blended: dict[int, float] = {}
    for leg, weight in zip(scored, weights, strict=True):
        if not leg:
            continue
        lo, hi = min(leg.values()), max(leg.values())
        for row, score in leg.items():
            norm = (score - lo) / (hi - lo) if hi > lo else 1.0  # all tied: all are the best
            blended[row] = blended.get(row, 0.0) + weight * norm
    return blended


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
