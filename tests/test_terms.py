"""The notes' own words: spelling corrected against them, salient terms, unknown terms.

A small vocabulary worked out by hand; no model needed.
"""

from __future__ import annotations

import pytest

from rag.index.lexical import LexicalIndex, tokenize
from rag.search.terms import NoteWords, is_name, is_salient

DOCS = [
    "Lambda timeout default 3s, max 900s",
    "Lambda limits: 1000 concurrent executions; limit can be raised",
    "SQS visibility timeout default 30s",
    "Deploy a zip file or a container image",
    "S3 pre-signed URL, valid up to 7 days",
    "List buckets with aws s3 ls; list objects too",
    "Route 53 geo-proximity routing",
    "Availability Zone (AZ): one or more data centers",
]


@pytest.fixture(scope="module")
def words() -> NoteWords:
    return NoteWords(LexicalIndex.from_docs([tokenize(d) for d in DOCS]))


@pytest.mark.parametrize(
    ("question", "searched"),
    [
        ("max lamda timout", "max lambda timeout"),  # one edit each: a letter left out
        ("sqs visiblity timeuot", "sqs visibility timeout"),  # a transposition counts one
        ("lambda limts", "lambda limit"),  # "limit" and "list" are both one edit: shared start
        ("how big can my zipped code be", "how big can my zip code be"),  # the notes' form
        ("how long is a presigned url valid", "how long is a pre-signed url valid"),
        ("geoproximity routing", "geo-proximity routing"),
        ("how many AZs per region", "how many az per region"),
    ],
)
def test_misspelled_words_are_searched_as_the_notes_spell_them(words, question, searched):
    corrected = words.correct(question)
    assert corrected.text == searched
    assert corrected.fixes and searched in corrected.notice()


@pytest.mark.parametrize(
    "question",
    [
        "how big can a message be",  # "big" is common English: the notes just do not use it
        "lambda timeout",  # nothing misspelled
        "what is aws macie",  # a name the notes never use, with no close word: left alone
        "what is documentdb",  # "document" + two letters is another word, not a typo of it
        "sqs que",  # too short to correct safely
    ],
)
def test_other_words_are_left_as_typed(words, question):
    corrected = words.correct(question)
    assert corrected.text == question and corrected.fixes == {}


def test_salient_terms_are_names_and_technical_terms(words):
    assert words.salient("what is the max lambda timeout for sqs") == ["lambda", "timeout", "sqs"]
    assert words.unknown(words.salient("can aws macie scan sqs")) == ["macie"]
    assert is_salient("900s") and not is_salient("message") and not is_salient("the")
    assert is_name("macie") and not is_name("stampede") and not is_name("queue")
