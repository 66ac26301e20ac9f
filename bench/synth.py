"""Synthetic notes and vectors for the scale benchmark, the same for the same seed.

    files = notes(10_000, seed=0)      # [(path, markdown)]: one section per chunk
    chunks = chunks_of(files)          # cut by the real chunker
    vectors = VectorModel(seed=0, dim=384)
    vectors.chunk_block(rows, topics)  # unit vectors around each chunk's topic centre

Sections copy the default notes' shape: heading paths 2-4 deep, 1-37 bullet lines (resampled
from notes/aws-notes.md), nested bullets, and words drawn by their frequency in those notes, plus
a few words of the section's topic, so BM25 sees realistic term statistics. Vectors cluster by
topic as real embeddings do (random unit vectors in 384 dimensions have no near neighbours to
find, so an approximate index could not be judged on them).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.index.cutting import Chunk, chunk_note
from rag.notes import Note

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NOTES = ROOT / "notes" / "aws-notes.md"
SECTIONS_PER_FILE = 100  # a note of about 1,240 lines (the default notes' one file: 3,708)
TOPIC_SIZE = 50  # sections per topic
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]+")
_BULLET = re.compile(r"^(\s*)- ")


@lru_cache(maxsize=1)
def _profile() -> tuple[list[str], np.ndarray, list[int], list[int]]:
    """Words and their cumulative frequencies, lines per chunk and words per line of the
    default notes (cut by the chunker with the same model-free token count)."""
    text = DEFAULT_NOTES.read_text(encoding="utf-8")
    counts = Counter(_WORD.findall(text))
    words = sorted(counts, key=lambda w: (-counts[w], w))
    cdf = np.cumsum([counts[w] for w in words], dtype=np.float64)
    lines_per_chunk, words_per_line = [], []
    for chunk in chunks_of([(DEFAULT_NOTES.name, text)]):
        body = [x for x in chunk.text.split("\n") if x.strip() and not x.startswith("#")]
        lines_per_chunk.append(len(body))
        words_per_line += [len(x.split()) for x in body]
    return words, cdf / cdf[-1], [n for n in lines_per_chunk if n], words_per_line


def notes(n_sections: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n_sections` sections in files of SECTIONS_PER_FILE, each under a 2-4 deep heading path."""
    words, cdf, chunk_lines, line_words = _profile()
    rng = np.random.default_rng(seed)
    files = []
    for f in range(0, n_sections, SECTIONS_PER_FILE):
        out = [f"# Synthetic notes {f // SECTIONS_PER_FILE}", ""]
        for s in range(f, min(f + SECTIONS_PER_FILE, n_sections)):
            topic_words = _topic_words(topic_of(s), words)
            depth = int(rng.choice([2, 3, 4], p=[0.22, 0.67, 0.11]))
            title = " ".join(rng.choice(topic_words, size=2))
            out += [f"{'#' * depth} {title.title()} {s}", ""]
            sizes = rng.choice(line_words, size=int(rng.choice(chunk_lines)))
            drawn = np.searchsorted(cdf, rng.random(int(sizes.sum())))  # by frequency
            mine = rng.random(len(drawn)) < 0.25  # a quarter of the words are the topic's own
            picks = rng.integers(0, len(topic_words), size=len(drawn))
            line_words_iter = iter(
                topic_words[int(t)] if m else words[int(w)]
                for m, w, t in zip(mine, drawn, picks, strict=True)
            )
            nesting = 0
            for k, step in zip(sizes, rng.choice([-1, 0, 0, 1], size=len(sizes)), strict=True):
                nesting = min(max(nesting + int(step), 0), 2)
                line = " ".join(next(line_words_iter) for _ in range(int(k)))
                out.append("  " * nesting + "- " + line)
            out.append("")
        files.append((f"synthetic-{f // SECTIONS_PER_FILE:05d}.md", "\n".join(out)))
    return files


def synthetic_chunks(n_chunks: int, seed: int = 0) -> list[Chunk]:
    """Exactly `n_chunks` chunks of synthetic notes (a section now and then is cut in two)."""
    chunks = chunks_of(notes(n_chunks, seed))
    return chunks[:n_chunks]


def topic_of(section: int) -> int:
    return section // TOPIC_SIZE


def _topic_words(topic: int, words: list[str]) -> list[str]:
    rng = np.random.default_rng([7, topic])
    return [words[int(i)] for i in rng.integers(50, min(len(words), 3000), size=12)]


def word_tokens(texts: list[str]) -> list[int]:
    """A model-free token count for the chunker (about 4 tokens per 3 words)."""
    return [len(t.split()) * 4 // 3 for t in texts]


def chunks_of(files: list[tuple[str, str]], max_tokens: int = 200) -> list[Chunk]:
    chunks: list[Chunk] = []
    for path, text in files:
        note = Note(path, text, hashlib.sha256(text.encode()).hexdigest())
        chunks += chunk_note(note, word_tokens, max_tokens)
    return chunks


class VectorModel:
    """Unit vectors: a chunk lies near its topic's centre, its units and questions near it."""

    def __init__(self, seed: int = 0, dim: int = 384, spread: float = 1.0) -> None:
        self.seed, self.dim, self.spread = seed, dim, spread

    def centre(self, topics: np.ndarray) -> np.ndarray:
        return np.stack(
            [np.random.default_rng([self.seed, 1, int(t)]).normal(size=self.dim) for t in topics]
        )

    def chunk_block(self, rows: np.ndarray, topics: np.ndarray) -> np.ndarray:
        """Vectors of chunks `rows` (a block; the same rows give the same vectors).

        Centre and noise have the same size, so a chunk's cosine with its topic's centre is
        about 0.7 and with another chunk of its topic about 0.5."""
        rng = np.random.default_rng([self.seed, 2, int(rows[0]) if len(rows) else 0])
        noise = rng.normal(scale=self.spread, size=(len(rows), self.dim))
        return _unit(self._centres(topics) + noise)

    def near(self, vectors: np.ndarray, spread: float, salt: int) -> np.ndarray:
        """Vectors near the given unit vectors, at cosine about 1 / sqrt(1 + spread**2)."""
        rng = np.random.default_rng([self.seed, 3, salt])
        noise = rng.normal(scale=spread / np.sqrt(self.dim), size=vectors.shape)
        return _unit(vectors + noise)

    def _centres(self, topics: np.ndarray) -> np.ndarray:
        uniq, inverse = np.unique(topics, return_inverse=True)
        return self.centre(uniq)[inverse]


def _unit(x: np.ndarray) -> np.ndarray:
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)
