"""The engine end to end with the real model and real FAISS over notes/aws-notes.md."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from rag.answer.extractive import compose
from rag.errors import IndexCorrupt, IndexIncompatible
from rag.index.store import current_generation, load_index
from rag.search.engine import Engine

SQS = ("AWS Notes", "Integration and Messaging", "SQS -- Simple queueing service")


@pytest.mark.parametrize(
    ("question", "heading"),
    [
        ("What is the maximum size of an SQS message?", SQS),
        ("what is imds", ("AWS Notes", "EC2 Instance Metadata Service -- IMDS")),
        ("gp3 iops", ("AWS Notes", "Block Storage", "Elastic Block Storage (EBS) Volume")),
    ],
)
def test_the_right_section_comes_first(aws_engine, question, heading):
    assert aws_engine.search(question, k=5, mode="hybrid")[0].chunk.heading == heading


def test_hits_carry_exact_line_spans(aws_engine, aws_settings):
    lines = (aws_settings.notes_dir / "aws-notes.md").read_text().split("\n")
    for hit in aws_engine.search("sqs visibility timeout", k=10):
        c = hit.chunk
        assert c.text == "\n".join(lines[c.start_line - 1 : c.end_line])


def test_each_mode_ranks_by_its_own_leg(aws_engine):
    dense = aws_engine.search("message queue retention period", k=5, mode="dense")
    assert [h.dense_rank for h in dense] == [1, 2, 3, 4, 5]
    assert all(a.score >= b.score for a, b in zip(dense, dense[1:], strict=False))
    bm25 = aws_engine.search("message queue retention period", k=5, mode="bm25")
    assert [h.bm25_rank for h in bm25] == [1, 2, 3, 4, 5]


def test_sqs_answer_cites_the_256kb_line(aws_engine):
    question = "What is the maximum size of an SQS message?"
    answer = compose(question, aws_engine.search(question), aws_engine.words)
    assert answer.answered and answer.status == "answered"
    assert "Max message size (256KB; 1KB-256KB)" in answer.text.split("[1]")[0]
    first = answer.citations[0]
    assert first.heading == SQS
    assert (first.path, first.start_line) == ("aws-notes.md", 1693)
    assert first.text.split("\n")[0].strip() == "- Max message size (256KB; 1KB-256KB)"


def test_off_topic_question_is_declined_with_candidates(aws_engine):
    question = "how long should i knead sourdough bread"
    answer = compose(question, aws_engine.search(question), aws_engine.words)
    assert not answer.answered
    assert answer.text.startswith("Not in your notes")
    assert answer.citations == [] and len(answer.candidates) == 3


def test_index_round_trip_gives_identical_results(aws_settings, aws_engine, embedder):
    again = Engine(load_index(aws_settings.index_dir, embedder.name, embedder.dim, 200), embedder)
    assert again.chunks == aws_engine.chunks
    np.testing.assert_array_equal(again.index.dense.vectors(), aws_engine.index.dense.vectors())
    np.testing.assert_array_equal(again.index.units.vectors(), aws_engine.index.units.vectors())
    assert again.index.units.size > again.index.dense.size  # lines are embedded too
    for q in ("lambda timeout", "s3 object lock", "vpc peering limit"):
        assert [(h.chunk.id, h.score) for h in again.search(q)] == [
            (h.chunk.id, h.score) for h in aws_engine.search(q)
        ]


def _copy_index(aws_settings, tmp_path):
    index = tmp_path / "index"
    shutil.copytree(aws_settings.index_dir, index)
    return index, current_generation(index)


def test_an_index_from_another_model_is_refused(aws_settings, embedder, tmp_path):
    index, gen = _copy_index(aws_settings, tmp_path)
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["model"] = "some-other-model@0123456789ab"
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexIncompatible, match=r"some-other-model.*rag index --full"):
        load_index(index, embedder.name, embedder.dim, 200)


def test_an_index_of_another_format_version_is_refused(aws_settings, embedder, tmp_path):
    index, gen = _copy_index(aws_settings, tmp_path)
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["format_version"] = 99
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexIncompatible, match=r"v99.*rag index --full"):
        load_index(index, embedder.name, embedder.dim, 200)


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("chunks.jsonl", b'{"id": "broken'),
        ("dense.faiss", b"not a faiss file"),
        ("manifest.json", b"{not json"),
    ],
)
def test_corrupt_files_are_named_in_the_error(aws_settings, embedder, tmp_path, name, damage):
    index, gen = _copy_index(aws_settings, tmp_path)
    (gen / name).write_bytes(damage)
    with pytest.raises(IndexCorrupt, match=rf"{name}.*rag index --full"):
        load_index(index, embedder.name, embedder.dim, 200)


# --- the three answer states, on the real notes ----------------------------------------------


def _ask(aws_engine, question: str):
    from rag.answer.pipeline import ask

    return ask(aws_engine, question)


def test_a_name_the_notes_never_use_is_not_found(aws_engine):
    answer = _ask(aws_engine, "what is the max payload of aws zorblax?")
    assert (answer.status, answer.answered, answer.missing) == ("not_found", False, ("zorblax",))
    assert answer.text == 'Not in your notes: your notes never mention "zorblax".'
    assert answer.citations == [] and len(answer.candidates) == 3


def test_a_misspelled_question_cites_what_the_right_spelling_cites(aws_engine):
    typed, right = _ask(aws_engine, "max lamda timout"), _ask(aws_engine, "max lambda timeout")
    assert typed.status == right.status == "answered"
    assert typed.citations[0].location == right.citations[0].location
    assert typed.searched == "max lambda timeout"
    assert any('"lamda" -> "lambda"' in n for n in typed.notices)


def test_a_comparison_cites_both_sides(aws_engine):
    answer = _ask(aws_engine, "security group vs nacl")
    quoted = "\n".join(c.text for c in answer.citations)
    assert "Security Groups" in quoted and "Network ACL (NACL)" in quoted


def test_a_table_row_is_quoted_with_its_table(aws_engine):
    answer = _ask(aws_engine, "privatelink vs vpc peering")
    table = [c for c in answer.citations if "| PrivateLink" in c.text]
    assert table and table[0].text.count("\n") >= 4  # the header, the rule, and its rows
    assert "Limit of 125 peerings" in table[0].text


def test_each_fact_is_quoted_once(aws_engine):
    for question in ("what is the default visibility timeout?", "how big can an sqs message be"):
        spans = [(c.path, c.start_line, c.end_line) for c in _ask(aws_engine, question).citations]
        for i, (path, a, b) in enumerate(spans):
            for other_path, c, d in spans[i + 1 :]:
                assert other_path != path or b < c or d < a, spans


def test_below_the_threshold_the_topic_or_its_absence_decides(aws_engine, monkeypatch):
    import rag.answer.evidence

    monkeypatch.setattr(rag.answer.evidence, "THRESHOLD", 1.01)  # nothing counts as answered
    partial = _ask(aws_engine, "sqs visibility timeout ceiling for zebras")
    assert partial.status == "partial" and not partial.answered and partial.citations
    assert "zebra" in partial.missing
    assert (
        partial.text.startswith("Your notes do not say anything about")
        and '"zebra"' in partial.text
    )
    gone = _ask(aws_engine, "zorblax quota")
    assert gone.status == "not_found" and gone.missing == ("zorblax",)
    vague = _ask(aws_engine, "what is the capital of france")  # names nothing the notes hold
    assert vague.status == "not_found" and vague.citations == []
