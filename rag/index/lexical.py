"""Stage 4b: the lexical leg, BM25 over a tokenizer that keeps technical tokens.

tokenize("iam:PassRole on gp3, 256KB")
-> ['iam:passrole', 'iam', 'passrole', 'pass', 'role', 'gp3', '256kb', '256', 'kb']
tokenize("Café 東京タワー")  -> ['東京', '京タ', 'タワ', 'ワー', 'cafe']

Chinese, Japanese and Korean text has no spaces between words: a run of it becomes its
overlapping character bigrams (Lucene's CJKAnalyzer does the same), so a word inside a
sentence is found. A Latin word is matched without its accents (café = cafe).

BM25 scores only the documents that hold a query term, through an inverted index (`Postings`),
with rank-bm25's BM25Okapi formula (tests/test_lexical.py checks the two agree).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import regex

# Words joined by : . _ / - stay one token too (iam:PassRole, s3.amazonaws.com, x-amz-date).
# A word is letters and digits with their marks: in Devanagari, Bengali or Tamil a vowel sign
# is a mark (\p{M}), which \w leaves out, so re's \w+ cut हिन्दी into ह, न, द.
_WORD = regex.compile(r"[\p{L}\p{N}][\p{L}\p{N}\p{M}]*(?:[:._/\-][\p{L}\p{N}][\p{L}\p{N}\p{M}]*)*")
_JOINER = re.compile(r"[:._/\-]")
# Case changes split camelCase (ChangeMessageVisibility); a digit run splits off the front of a
# number with a unit (256KB, 12h) but not from a name (s3, gp3, ec2).
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+[0-9]*|[A-Z]+[0-9]*|[0-9]+")
_NUMBER_UNIT = re.compile(r"^([0-9]+)([a-z]+)$")
# Hiragana, Katakana, CJK ideographs (and extension A, compatibility), Hangul syllables.
TOKENS_CACHED = 8192  # note texts `note_tokens` keeps (the default notes: about 3,900)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]+")

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
    for run in _CJK.findall(text):  # 東京タワー -> 東京 京タ タワ ワー; one character: itself
        tokens += [run[i : i + 2] for i in range(max(1, len(run) - 1))]
    for match in _WORD.finditer(_CJK.sub(" ", text)):
        word = match.group()
        parts = [p for p in _JOINER.split(word) if p]
        if len(parts) > 1:
            tokens.append(word.lower())
        for part in parts:
            tokens.extend(_part_tokens(part))
    return tokens


@lru_cache(maxsize=TOKENS_CACHED)
def note_tokens(text: str) -> tuple[str, ...]:
    """`tokenize` of a note's text, kept: an answer reads the same sections and lines question
    after question, and tokenizing them again was half of its time."""
    return tuple(tokenize(text))


def is_cjk(token: str) -> bool:
    """A token made by the CJK bigram rule: a window over a sentence, maybe across two
    words, so never a key concept on its own."""
    return _CJK.fullmatch(token) is not None


def _part_tokens(part: str) -> list[str]:
    low = _fold(part.lower())
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


def _fold(word: str) -> str:
    """A Latin word without its accents (café -> cafe); any other word as it is (the marks
    of other scripts are letters' parts, not accents)."""
    if word.isascii():
        return word
    bare = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return bare if bare.isascii() else word


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


TOKENIZER_VERSION = 3  # bump when tokenize() changes: saved postings are then rebuilt
ARRAYS = ("indptr", "docs", "tfs", "doc_len")
POSTINGS_FILES = ("bm25.json", *(f"bm25.{name}.npy" for name in ARRAYS))


class Postings(NamedTuple):
    """An inverted index: term `t` occurs `tfs[i]` times in document `docs[i]`, for i in
    `indptr[t]:indptr[t + 1]` (documents ascending when made by `from_docs`; not always when
    joined, `rag.index.join`). Plain arrays, so they save as .npy files."""

    vocab: dict[str, int]  # token -> term id, in order of first appearance
    indptr: np.ndarray  # (terms + 1,) int64
    docs: np.ndarray  # (postings,) int32
    tfs: np.ndarray  # (postings,) uint16, or int32 when a count needs it
    doc_len: np.ndarray  # (documents,) int64: tokens per document

    @classmethod
    def from_docs(cls, docs: Iterable[list[str]]) -> Postings:
        """Postings of tokenized documents, given as a list or one at a time (a generator
        keeps only one document's tokens at once: 1M chunks' tokens take about 5 GB)."""
        vocab: dict[str, int] = {}
        lengths: list[int] = []

        def term_ids() -> Iterator[int]:
            for doc in docs:
                lengths.append(len(doc))
                for t in doc:
                    yield vocab.setdefault(t, len(vocab))

        keys = np.fromiter(term_ids(), dtype=np.int64)  # term ids, then (term, document)
        n = max(len(lengths), 1)
        doc_len = np.array(lengths, dtype=np.int64)
        keys *= n
        keys += np.repeat(np.arange(len(lengths), dtype=np.int32), doc_len)
        # One sort, in place, groups postings by term, then by document; a run's length is the
        # count (np.unique would hold three more copies: 2 GB more for 1M chunks).
        keys.sort()
        change = np.empty(len(keys), dtype=bool)  # where a run of one (term, document) starts
        change[:1] = True
        np.not_equal(keys[1:], keys[:-1], out=change[1:])
        starts = np.flatnonzero(change)
        tfs = np.diff(np.append(starts, len(keys)))
        keys = keys[starts]
        terms = keys // n
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(np.bincount(terms, minlength=len(vocab)), out=indptr[1:])
        tf_type = np.uint16 if tfs.max(initial=0) <= np.iinfo(np.uint16).max else np.int32
        docs_col = (keys % n).astype(np.int32)
        return cls(vocab, indptr, docs_col, tfs.astype(tf_type), doc_len)

    @classmethod
    def of_texts(cls, texts: Iterable[str]) -> Postings:
        """Postings of texts, each tokenized as it is reached (chunks' `indexed_text`)."""
        return cls.from_docs(tokenize(t) for t in texts)

    def save(self, folder: Path) -> None:
        """`bm25.json` (vocabulary in term order) and one .npy per array, never pickled."""
        folder = Path(folder)
        (folder / "bm25.json").write_text(
            json.dumps(
                {"version": 1, "tokenizer": TOKENIZER_VERSION, "vocab": list(self.vocab)},
                ensure_ascii=False,
            )
        )
        for name in ARRAYS:
            np.save(folder / f"bm25.{name}.npy", getattr(self, name), allow_pickle=False)

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> Postings:
        folder = Path(folder)
        meta = json.loads((folder / "bm25.json").read_text(encoding="utf-8"))
        if meta.get("version") != 1:
            raise ValueError(f"{folder / 'bm25.json'} is format {meta.get('version')!r}, not 1")
        if meta.get("tokenizer") != TOKENIZER_VERSION:
            raise StalePostings(
                f"{folder / 'bm25.json'} was tokenized by version {meta.get('tokenizer')!r}, "
                f"this is version {TOKENIZER_VERSION}"
            )
        mode = "r" if mmap else None
        arrays = {
            name: np.load(folder / f"bm25.{name}.npy", mmap_mode=mode, allow_pickle=False)
            for name in ARRAYS
        }
        return cls({t: i for i, t in enumerate(meta["vocab"])}, **arrays)


class StalePostings(ValueError):
    """Postings made by another version of `tokenize`: whole, but not this tokenizer's."""


K1 = 0.9  # BM25 term saturation: Anserini's defaults suit short chunks (eval/README.md)
B = 0.4  # BM25 length normalisation
EPSILON = 0.25  # rank-bm25's floor for a negative idf, as a share of the mean idf


def okapi_idf(df: np.ndarray, n: int, epsilon: float = EPSILON) -> np.ndarray:
    """rank-bm25's idf: log((n - df + 0.5) / (df + 0.5)), a negative one raised to epsilon
    times the mean idf (summed in term order, as rank-bm25 sums it)."""
    idf = np.log(n - df + 0.5) - np.log(df + 0.5)
    if len(df):
        mean = sum(idf.tolist()) / len(df)
        idf[idf < 0] = epsilon * mean
    return idf


def length_norm(doc_len: np.ndarray, k1: float, b: float) -> np.ndarray:
    """k1 * (1 - b + b * |d| / avgdl) per document: the denominator's length term."""
    avgdl = float(doc_len.sum()) / len(doc_len) if len(doc_len) else 0.0
    return k1 * (1 - b + b * np.asarray(doc_len) / (avgdl or 1.0))


def term_score(tf: np.ndarray, idf: float, norm: np.ndarray, k1: float) -> np.ndarray:
    """What one query term adds to each document's score, by its count there."""
    return idf * (tf * (k1 + 1) / (tf + norm))


class LexicalIndex:
    """Okapi BM25 exactly as rank-bm25's BM25Okapi scores it, over pre-tokenized documents or
    their postings; only the documents holding a query term are scored."""

    def __init__(self, p: Postings, k1: float = K1, b: float = B) -> None:
        self.postings, self.k1, self.b = p, k1, b
        self.size = len(p.doc_len)
        self._df = np.diff(p.indptr)  # term id -> documents holding it
        self._okapi_idf = okapi_idf(self._df, self.size)
        self._norm = length_norm(p.doc_len, k1, b)

    @classmethod
    def from_docs(cls, docs: list[list[str]], k1: float = K1, b: float = B) -> LexicalIndex:
        return cls(Postings.from_docs(docs), k1, b)

    def _term(self, token: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Documents holding a token and what it adds to each one's score."""
        t = self.postings.vocab.get(token)
        if t is None:
            return None
        a, z = self.postings.indptr[t], self.postings.indptr[t + 1]
        docs, tf = self.postings.docs[a:z], self.postings.tfs[a:z].astype(np.float64)
        return docs, term_score(tf, self._okapi_idf[t], self._norm[docs], self.k1)

    def scores(self, query_tokens: list[str]) -> np.ndarray:
        """The score of every document (a repeated query term counts each time)."""
        scores = np.zeros(self.size, dtype=np.float64)
        for term in filter(None, map(self._term, query_tokens)):
            scores[term[0]] += term[1]  # a term lists each document once
        return scores

    def idf(self, token: str) -> float | None:
        """How rare a token is (Lucene's always-positive idf); None if no document has it.

        This weighs question terms against each other; scoring keeps rank-bm25's own idf.
        """
        t = self.postings.vocab.get(token)
        if t is None:
            return None
        n = int(self._df[t])
        return math.log(1 + (self.size - n + 0.5) / (n + 0.5))

    def search(
        self, query_tokens: list[str], k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the k best-scoring documents with a positive score, best first;
        only rows `allowed` (a bool per document) marks, when given.

        Only documents holding a query term are scored; ties go to the lower row.
        """
        terms = [t for t in map(self._term, query_tokens) if t is not None]
        if k <= 0 or not terms:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        rows, inverse = np.unique(np.concatenate([d for d, _ in terms]), return_inverse=True)
        # bincount adds in query-term order, as a dense sum over the terms would.
        scores = np.bincount(inverse, weights=np.concatenate([w for _, w in terms]))
        keep = scores > 0
        if allowed is not None:
            keep &= allowed[rows]
        rows, scores = rows[keep].astype(np.int64), scores[keep]
        if len(rows) > k:
            part = np.argpartition(-scores, k - 1)[:k]
            cut = scores[part].min()  # every row tied with the k-th competes for its place
            part = np.flatnonzero(scores >= cut)
            rows, scores = rows[part], scores[part]
        order = np.lexsort((rows, -scores))[:k]
        return rows[order], scores[order]
