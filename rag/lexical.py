"""Stage 4b: the lexical leg, BM25 over a tokenizer that keeps technical tokens.

tokenize("iam:PassRole on gp3, 256KB")
-> ['iam:passrole', 'iam', 'passrole', 'pass', 'role', 'gp3', '256kb', '256', 'kb']
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
from rank_bm25 import BM25Okapi

# Words joined by : . _ / - stay one token too (iam:PassRole, s3.amazonaws.com, x-amz-date).
_WORD = re.compile(r"[^\W_]+(?:[:._/\-][^\W_]+)*")
_JOINER = re.compile(r"[:._/\-]")
# Case changes split camelCase (ChangeMessageVisibility); a digit run splits off the front of a
# number with a unit (256KB, 12h) but not from a name (s3, gp3, ec2).
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+")
_NUMBER_UNIT = re.compile(r"^([0-9]+)([a-z]+)$")

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    whats hows s t""".split()
)


def tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _WORD.finditer(text):
        word = match.group()
        parts = [p for p in _JOINER.split(word) if p]
        if len(parts) > 1:
            tokens.append(word.lower())
        for part in parts:
            tokens.extend(_part_tokens(part))
    return tokens


def _part_tokens(part: str) -> list[str]:
    low = part.lower()
    if low in STOPWORDS:
        return []
    out = [_stem(low)]
    pieces = _CAMEL.findall(part) if part.isascii() else []
    number_unit = _NUMBER_UNIT.match(low)
    if number_unit:
        pieces = [number_unit.group(1), number_unit.group(2)]
    if len(pieces) > 1:
        out.extend(_stem(p.lower()) for p in pieces if len(p) > 1 or p.isdigit())
    return out


def _stem(word: str) -> str:
    """Fold plain English plurals, the commonest mismatch between questions and notes."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("sses"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is", "os")):
        return word[:-1]
    return word


class LexicalIndex:
    """Okapi BM25 over pre-tokenized documents (rank-bm25's scoring)."""

    def __init__(self, docs: list[list[str]], k1: float = 1.5, b: float = 0.75) -> None:
        self.size = len(docs)
        self._df = Counter(t for doc in docs for t in set(doc))  # token -> documents with it
        # rank-bm25 divides by the corpus size and vocabulary: without tokens there is no model.
        self._bm25 = BM25Okapi(docs, k1=k1, b=b) if any(docs) else None

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        if self._bm25 is None or not query_tokens:
            return np.zeros(self.size, dtype=np.float64)
        return np.asarray(self._bm25.get_scores(query_tokens), dtype=np.float64)

    def idf(self, token: str) -> float | None:
        """How rare a token is (Lucene's always-positive idf); None if no document has it.

        This weighs question terms against each other; scoring keeps rank-bm25's own idf.
        """
        n = self._df.get(token, 0)
        return math.log(1 + (self.size - n + 0.5) / (n + 0.5)) if n else None

    def search(self, query_tokens: list[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the k best-scoring documents with a positive score, best first."""
        scores = self.scores(query_tokens)
        k = min(k, self.size)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        top = top[scores[top] > 0]
        return top, scores[top]
