"""Ranking metrics, one implementation for the eval set and BEIR.

dcg([1, 0, 1])                         # 1/log2(2) + 1/log2(4) = 1.5
ndcg([1, 0, 1], ideal=[1, 1])          # 1.5 / (1 + 1/log2(3))
reciprocal_rank([False, True])         # 0.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain: the gain at rank r counts 1 / log2(r + 1)."""
    return sum(g / math.log2(r + 1) for r, g in enumerate(gains, 1) if g)


def ndcg(gains: Sequence[float], ideal: Sequence[float], k: int = 10) -> float:
    """DCG of the top k, over the DCG of the best possible order of `ideal` (the gains of
    every relevant item); 0 when nothing is relevant."""
    best = dcg(sorted(ideal, reverse=True)[:k])
    return dcg(gains[:k]) / best if best else 0.0


def reciprocal_rank(relevant: Sequence[bool]) -> float:
    """1 / the rank of the first relevant item; 0 if there is none."""
    return next((1.0 / r for r, hit in enumerate(relevant, 1) if hit), 0.0)
