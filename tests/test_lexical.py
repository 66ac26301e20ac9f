"""Tokenizer golden cases and BM25 checked against rank-bm25 and by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from rag.index.lexical import LexicalIndex, tokenize

OKAPI = {"k1": 1.5, "b": 0.75}  # rank-bm25's defaults, which the hand-worked cases use


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("s3", ["s3"]),
        ("S3 gp3 GP3 ec2", ["s3", "gp3", "gp3", "ec2"]),  # a digit after a name stays on it
        ("iam:PassRole", ["iam:passrole", "iam", "passrole", "pass", "role"]),
        ("256KB", ["256kb", "256", "kb"]),  # a number with a unit also gives both halves
        ("256 KB", ["256", "kb"]),
        ("12h", ["12h", "12"]),  # one-letter pieces are dropped
        (
            "ChangeMessageVisibility",
            ["changemessagevisibility", "change", "message", "visibility"],
        ),
        ("IAMRole EC2Instance", ["iamrole", "iam", "role", "ec2instance", "ec2", "instance"]),
        ("x-amz-date", ["x-amz-date", "x", "amz", "date"]),
        ("What is the visibility timeout of the queue?", ["visibility", "timeout", "queue"]),
        ("it's what's", []),  # stopwords, "s" included
        ("queues policies Buckets", ["queue", "policy", "bucket"]),  # plurals folded
        ("AWS SQS access status", ["aws", "sqs", "access", "status"]),  # not plurals
        ("", []),
        ("--- | *** |", []),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize(text) == tokens


def test_tokenize_keeps_letters_outside_ascii():
    # Notes are not all in English: a Latin word matches without its accents; other
    # scripts' words stay as written (й keeps its breve: it is a letter, not an accent).
    assert tokenize("café naïve") == ["cafe", "naive"]
    assert tokenize("очередь сообщений") == ["очередь", "сообщений"]
    assert tokenize("йогурт") == ["йогурт"]


# --- BM25 --------------------------------------------------------------------------------------

CORPUS = [
    "SQS visibility timeout defaults to 30 seconds",  # sqs visibility timeout default 30 second
    "S3 bucket policy",  # s3 bucket policy
    "SQS queue access policy for the dead-letter queue",  # 8 tokens, both query words
    "EBS gp3 volumes",
    "Lambda function timeout",
    "queue depth alarm threshold",
]
DOCS = [tokenize(t) for t in CORPUS]


def test_corpus_tokens_as_worked_out():
    assert [len(d) for d in DOCS] == [6, 3, 8, 3, 3, 4]
    assert DOCS[2] == [
        "sqs",
        "queue",
        "access",
        "policy",
        "dead-letter",
        "dead",
        "letter",
        "queue",
    ]


@pytest.mark.parametrize(
    "query",
    [
        ["sqs", "policy"],
        ["queue"],  # in 3 of 6 documents: idf exactly 0
        ["queue", "queue", "timeout"],  # a repeated query term counts twice
        ["sqs", "nothing-like-it"],
        ["timeout", "gp3", "alarm", "s3"],
    ],
)
def test_scores_match_rank_bm25(query):
    expected = BM25Okapi(DOCS).get_scores(query)
    np.testing.assert_allclose(
        LexicalIndex.from_docs(DOCS, **OKAPI).scores(query), expected, rtol=0, atol=1e-12
    )
    custom = BM25Okapi(DOCS, k1=0.9, b=0.4).get_scores(query)
    np.testing.assert_allclose(
        LexicalIndex.from_docs(DOCS, k1=0.9, b=0.4).scores(query), custom, atol=1e-12
    )


def test_scores_by_hand():
    # sqs and policy are each in 2 of 6 documents: idf = ln((6 - 2 + 0.5) / (2 + 0.5)) = ln 1.8.
    # avgdl = 27 / 6 = 4.5; a term seen once in a document of length L adds
    # idf * 2.5 / (1 + 1.5 * (0.25 + 0.75 * L / 4.5)).
    idf = math.log(1.8)
    one = {length: idf * 2.5 / (1 + 1.5 * (0.25 + 0.75 * length / 4.5)) for length in (3, 6, 8)}
    scores = LexicalIndex.from_docs(DOCS, **OKAPI).scores(["sqs", "policy"])
    assert scores.tolist() == pytest.approx([one[6], one[3], 2 * one[8], 0, 0, 0], abs=1e-12)
    # idf() weighs question terms with Lucene's always-positive form: ln(1 + 4.5 / 2.5)
    assert LexicalIndex.from_docs(DOCS, **OKAPI).idf("sqs") == pytest.approx(math.log(1 + 1.8))
    assert LexicalIndex.from_docs(DOCS, **OKAPI).idf("never-seen") is None


def test_search_exact_top_rows():
    index = LexicalIndex.from_docs(DOCS, **OKAPI)
    rows, scores = index.search(tokenize("SQS policy?"), k=5)
    # Both words beat one; with one word each, the shorter S3 document (3) beats SQS (6).
    assert rows.tolist() == [2, 1, 0]  # documents without a query word are not hits
    assert scores.tolist() == pytest.approx(index.scores(["sqs", "policy"])[[2, 1, 0]].tolist())
    assert index.search(tokenize("SQS policy?"), k=1)[0].tolist() == [2]
    assert index.search(tokenize("timeouts"), k=10)[0].tolist() == [4, 0]  # shorter first


def test_search_breaks_ties_by_row():
    docs = [["c"], ["x", "b"], ["d"], ["x", "a"], ["e"], ["f"], ["x", "g"], ["h"]]
    rows, scores = LexicalIndex.from_docs(docs, **OKAPI).search(["x"], k=8)
    assert rows.tolist() == [1, 3, 6]
    assert scores[0] == scores[1] == scores[2] > 0
    assert LexicalIndex.from_docs(docs, **OKAPI).search(["x"], k=2)[0].tolist() == [1, 3]


def test_no_query_no_hits():
    index = LexicalIndex.from_docs(DOCS, **OKAPI)
    for query in ([], tokenize("what is the"), ["absent"]):
        rows, scores = index.search(query, k=5)
        assert rows.tolist() == [] and scores.tolist() == []
    assert index.scores([]).tolist() == [0.0] * 6
    assert index.search(["sqs"], k=0)[0].tolist() == []


def test_empty_corpus():
    index = LexicalIndex.from_docs([], **OKAPI)
    assert index.scores(["sqs"]).tolist() == []
    assert index.search(["sqs"], k=5)[0].tolist() == []
    assert index.idf("sqs") is None


def test_corpus_of_documents_without_tokens():
    # e.g. notes whose every word is a stopword or punctuation.
    index = LexicalIndex.from_docs([tokenize("---"), tokenize("it is")], **OKAPI)
    assert index.scores(["sqs"]).tolist() == [0.0, 0.0]
    assert index.search(["sqs"], k=5)[0].tolist() == []


# --- the inverted index against rank-bm25, on random corpora ------------------------------------


def random_corpus(rng: np.random.Generator, docs: int, vocab: int) -> list[list[str]]:
    # Zipf-like word use, so some terms are in over half the documents (negative Okapi idf).
    weights = 1.0 / np.arange(1, vocab + 1)
    weights /= weights.sum()
    return [
        [f"w{i}" for i in rng.choice(vocab, size=rng.integers(0, 40), p=weights)]
        for _ in range(docs)
    ]


@pytest.mark.parametrize("seed", range(6))
# (b = 1 is left out: rank-bm25 scores an empty document 0 / 0 = nan there, ours 0.)
@pytest.mark.parametrize("k1, b", [(1.5, 0.75), (0.9, 0.4), (2.0, 0.95)])
def test_inverted_index_matches_rank_bm25_on_random_corpora(seed, k1, b):
    rng = np.random.default_rng(seed)
    docs = random_corpus(rng, docs=int(rng.integers(1, 300)), vocab=int(rng.integers(2, 500)))
    if not any(docs):
        docs[0] = ["w0"]  # rank-bm25 needs at least one token in the corpus
    reference = BM25Okapi(docs, k1=k1, b=b)
    index = LexicalIndex.from_docs(docs, k1=k1, b=b)
    for _ in range(8):
        query = [f"w{i}" for i in rng.integers(0, 600, size=rng.integers(1, 6))]  # some unseen
        expected = np.asarray(reference.get_scores(query))
        np.testing.assert_allclose(index.scores(query), expected, rtol=0, atol=1e-9)
        rows, scores = index.search(query, k=10)
        order = sorted(
            (i for i in range(len(docs)) if expected[i] > 0), key=lambda i: (-expected[i], i)
        )
        assert rows.tolist() == order[:10]
        np.testing.assert_allclose(scores, expected[order[:10]], rtol=0, atol=1e-9)


def test_postings_round_trip_through_npy_files(tmp_path):
    from rag.index.lexical import Postings

    docs = [tokenize(t) for t in CORPUS]
    Postings.from_docs(docs).save(tmp_path)
    loaded = LexicalIndex(Postings.load(tmp_path), k1=0.9, b=0.4)
    for query in (["sqs", "policy"], ["queue", "queue", "timeout"]):
        expected = BM25Okapi(docs, k1=0.9, b=0.4).get_scores(query)
        np.testing.assert_allclose(loaded.scores(query), expected, rtol=0, atol=1e-12)
    assert loaded.idf("sqs") == LexicalIndex.from_docs(docs, **OKAPI).idf("sqs")


def test_a_generation_keeps_its_bm25_index_and_loads_it_memory_mapped(tmp_path):
    from rag.index.cutting import chunk_note
    from rag.index.dense import DenseIndex
    from rag.index.store import (
        Manifest,
        chunker_settings,
        load_index,
        unit_counts,
        write_generation,
    )
    from rag.notes import Note

    text = "# A\n\n## SQS\n\n- visibility timeout 30s\n- max message 256KB\n\n"
    text += "## S3\n\n- bucket policy\n"
    chunks = chunk_note(Note("a.md", text, "x"), lambda ts: [len(t.split()) for t in ts], 200)
    counts = unit_counts(chunks)
    assert counts.tolist() == [2, 0]  # two lines under SQS; one under S3: its own vector
    rng = np.random.default_rng(0)
    manifest = Manifest(
        model="m",
        dim=8,
        chunker=chunker_settings(200),
        files={},
        checksums={},
        chunks=len(chunks),
        created="now",
        units=int(counts.sum()),
    )
    dense = DenseIndex.build(rng.normal(size=(len(chunks), 8)))
    write_generation(tmp_path, chunks, dense, DenseIndex.build(rng.normal(size=(2, 8))), manifest)
    stored = load_index(tmp_path, "m", 8, 200)
    assert isinstance(stored.postings.docs, np.memmap)
    assert stored.unit_counts.tolist() == [2, 0]
    from_disk = LexicalIndex(stored.postings, k1=0.9, b=0.4)
    from_text = LexicalIndex.from_docs([tokenize(c.indexed_text) for c in chunks], k1=0.9, b=0.4)
    for query in (["sqs"], ["bucket", "policy"], ["timeout", "sqs", "sqs"]):
        assert from_disk.scores(query).tolist() == from_text.scores(query).tolist()
