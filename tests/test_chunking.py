"""Golden cases for the heading chunker: exact line spans worked out by hand from tests/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.index.cutting import Chunk, chunk_note
from rag.notes import Note

DATA = Path(__file__).parent / "data"
BIG = 10_000  # a budget no section here reaches: one chunk per section


def words(texts: list[str]) -> list[int]:
    """A deterministic stand-in for the model tokenizer: one token per whitespace word."""
    return [len(t.split()) for t in texts]


def note(name: str, text: str | None = None) -> Note:
    return Note(name, (DATA / name).read_text() if text is None else text, "0" * 64)


def spans(chunks: list[Chunk]) -> list[tuple[tuple[str, ...], int, int]]:
    return [(c.heading, c.start_line, c.end_line) for c in chunks]


def file_lines(name: str) -> list[str]:
    return (DATA / name).read_text().split("\n")


def assert_text_is_the_lines(chunks: list[Chunk], lines: list[str]) -> None:
    for c in chunks:
        assert c.text == "\n".join(lines[c.start_line - 1 : c.end_line]), c.location


def assert_blocks_whole(chunks: list[Chunk], blocks: list[tuple[int, int]]) -> None:
    """Each (first, last) block lies inside one chunk, and no chunk holds only part of it."""
    for first, last in blocks:
        holders = [c for c in chunks if c.start_line <= first and last <= c.end_line]
        assert len(holders) == 1, f"block {first}-{last} is not inside exactly one chunk"
        for c in chunks:
            overlaps = c.start_line <= last and first <= c.end_line
            assert not overlaps or c is holders[0], f"{c.location} cuts block {first}-{last}"


# --- sqs.md: nested headings, heading-only sections, fences, a table --------------------------

SQS_SPANS = [
    (("SQS",), 1, 3),
    # 5 "## Queues" has only a blank line before its subsection: no chunk
    (("SQS", "Queues", "Standard queues"), 7, 9),
    # 16 "# not a heading: ..." sits inside the ```bash fence (15-18); 19 is a trailing blank
    (("SQS", "Queues", "Standard queues", "Visibility timeout"), 11, 18),
    (("SQS", "Queues", "FIFO queues"), 20, 25),
    # 32 "  ## not a heading either" sits in a fence inside a list item (31-34)
    (("SQS", "Limits"), 27, 35),
    # 37 "## Empty section" is heading-only
    (("Operations",), 39, 41),
    # 41 "```Authorization: foo`" is no fence (backtick in the info string), so 43 is a heading
    (("Operations", "Alarms"), 43, 44),
]
SQS_FENCES = [(15, 18), (31, 34)]
SQS_TABLES = [(22, 25)]


def test_sqs_sections_golden():
    chunks = chunk_note(note("sqs.md"), words, BIG)
    assert spans(chunks) == SQS_SPANS
    assert_text_is_the_lines(chunks, file_lines("sqs.md"))
    assert_blocks_whole(chunks, SQS_FENCES + SQS_TABLES)


def test_sqs_chunk_fields():
    chunks = chunk_note(note("sqs.md"), words, BIG)
    fifo = chunks[3]
    assert fifo.path == "sqs.md"
    assert fifo.location == "sqs.md:20-25"
    assert fifo.context == "SQS > Queues > FIFO queues"
    assert fifo.indexed_text == "SQS > Queues > FIFO queues\n" + fifo.text
    assert fifo.text.splitlines()[0] == "### FIFO queues"
    assert fifo.text.splitlines()[-1] == "| Dedup window | 5 min |"
    assert chunks[-1].text == "## Alarms\nAlarm on ApproximateAgeOfOldestMessage."


def test_sqs_with_a_tiny_budget_still_keeps_fences_and_tables_whole():
    chunks = chunk_note(note("sqs.md"), words, 16)
    assert_text_is_the_lines(chunks, file_lines("sqs.md"))
    assert_blocks_whole(chunks, SQS_FENCES + SQS_TABLES)
    # Pieces stay in order, never overlap, and stay inside their sections.
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.end_line < after.start_line
    for c in chunks:
        section = next(s for s in SQS_SPANS if s[0] == c.heading)
        assert section[1] <= c.start_line and c.end_line <= section[2]


def test_crlf_and_lone_cr_give_the_same_lines_as_lf():
    lf = chunk_note(note("sqs.md"), words, BIG)
    text = (DATA / "sqs.md").read_text()
    for newline in ("\r\n", "\r"):
        other = chunk_note(note("sqs.md", text.replace("\n", newline)), words, BIG)
        assert spans(other) == SQS_SPANS
        assert [c.text for c in other] == [c.text for c in lf]
        assert all("\r" not in c.text for c in other)


def test_unicode_line_separators_do_not_shift_line_numbers():
    # An editor (and `sed -n`) counts only newlines; str.splitlines would also split on these.
    text = "# A\n\nform\x0cfeed and\u2028separator\n# B\n\nlast\n"
    chunks = chunk_note(Note("u.md", text, ""), words, BIG)
    assert spans(chunks) == [(("A",), 1, 3), (("B",), 4, 6)]


# --- fences.md: preamble, tilde fence, longer outer fence -------------------------------------


def test_fences_golden():
    chunks = chunk_note(note("fences.md"), words, BIG)
    assert spans(chunks) == [
        ((), 1, 5),  # text before the first heading; 4 is inside the ~~~ fence (3-5)
        (("Fences",), 7, 13),  # the ``` lines 10 and 12 cannot close the ```` fence (9-13)
        (("Fences", "After"), 15, 17),
        (("Real heading",), 18, 20),  # 17 opens no fence, so 18 is a heading
    ]
    assert chunks[0].context == "fences"  # no heading: the file name stands in
    assert_text_is_the_lines(chunks, file_lines("fences.md"))
    assert_blocks_whole(chunks, [(3, 5), (9, 13)])


# --- runbook.md: one long section split at list items and paragraphs --------------------------


def test_long_section_split_golden():
    # Context "Runbook > Dead-letter queues" is 4 words, so the budget is 24 - 4 = 20 tokens,
    # each line costing its words + 1. Cut first at depth-0 starts (5, 7, 10, 17, 20, 25):
    # 3-5 (15) | 7-9 (27, too big: split at its depth-2 items into 7-8 (14) and 9 (13)) |
    # 10-16 (25, too big: 10 (3) and 11-16 (22, whole: the rest is one fence)) | 17-18 (11) |
    # 20-23 (24, a table: whole though too big) | 25 (9).
    chunks = chunk_note(note("runbook.md"), words, 24)
    h = ("Runbook", "Dead-letter queues")
    assert spans(chunks) == [
        (h, 3, 5),
        (h, 7, 8),
        (h, 9, 9),
        (h, 10, 10),
        (h, 11, 16),
        (h, 17, 18),
        (h, 20, 23),
        (h, 25, 25),
    ]
    assert_text_is_the_lines(chunks, file_lines("runbook.md"))
    # 15 follows a blank line (14) but is inside the fence 12-16: no cut there.
    assert_blocks_whole(chunks, [(12, 16), (20, 23)])


def test_the_context_counts_against_the_budget():
    # max_tokens 29 leaves 25 after the 4-word context: 7-9 (27) no longer fits, 10-16 (25) does.
    chunks = chunk_note(note("runbook.md"), words, 29)
    assert [(c.start_line, c.end_line) for c in chunks] == [
        (3, 5),
        (7, 8),
        (9, 9),
        (10, 16),
        (17, 18),
        (20, 23),
        (25, 25),
    ]
    assert_text_is_the_lines(chunks, file_lines("runbook.md"))


def test_split_pieces_inside_a_nested_list_carry_their_parent_bullets():
    chunks = chunk_note(note("runbook.md"), words, 24)
    assert [c.context for c in chunks] == [
        "Runbook > Dead-letter queues",
        "Runbook > Dead-letter queues",
        "Runbook > Dead-letter queues > Redrive policy",
        "Runbook > Dead-letter queues",
        "Runbook > Dead-letter queues > Retention",
        "Runbook > Dead-letter queues",
        "Runbook > Dead-letter queues",
        "Runbook > Dead-letter queues",
    ]
    assert chunks[2].indexed_text == (
        "Runbook > Dead-letter queues > Redrive policy\n"
        "  - the DLQ must be the same type as the source queue"
    )


def test_paragraph_inside_a_nested_item_carries_its_parent_bullets():
    text = (
        "# Timeouts\n"  # 1
        "\n"
        "How long a received message stays hidden.\n"  # 3
        "\n"
        "- Visibility timeout\n"  # 5
        "  - default 30s, maximum 12 hours\n"  # 6
        "\n"
        "    raise it above the longest processing time or messages are delivered twice\n"  # 8
        "\n"
        "    extend it per message with ChangeMessageVisibility while still working\n"  # 10
    )
    # Budget 17 - 1 = 16: 1-3 (12) | 5 (4) | 6 (7+1 blank) | 8 (13) | 10 (10).
    chunks = chunk_note(Note("t.md", text, ""), words, 17)
    assert spans(chunks) == [
        (("Timeouts",), 1, 3),
        (("Timeouts",), 5, 5),
        (("Timeouts",), 6, 6),
        (("Timeouts",), 8, 8),
        (("Timeouts",), 10, 10),
    ]
    # 8 and 10 are paragraphs of the "default 30s" item (indented to its content column),
    # so they sit inside the nested list just as much as line 6 does.
    assert [c.context for c in chunks] == [
        "Timeouts",
        "Timeouts",
        "Timeouts > Visibility timeout",
        "Timeouts > Visibility timeout > default 30s, maximum 12 hours",
        "Timeouts > Visibility timeout > default 30s, maximum 12 hours",
    ]


def test_a_split_never_leaves_the_heading_line_alone():
    text = (
        "# Visibility timeout\n"  # 1
        "\n"
        "- default 30s, maximum 12 hours, set per queue or per message\n"  # 3: 13 tokens
        "- raise it above the longest processing time or messages are delivered twice\n"  # 4: 14
    )
    # Budget 18 - 2 = 16; the heading (4 + 1 blank) and item 3 (13) do not fit together.
    chunks = chunk_note(Note("v.md", text, ""), words, 18)
    assert chunks, "the section has a body"
    # Like a heading-only section, a piece holding only the heading line says nothing.
    for c in chunks:
        body = [line for line in c.text.split("\n")[1:] if line.strip()]
        assert not c.text.startswith("#") or body, f"{c.location} is only its heading"
    covered = {n for c in chunks for n in range(c.start_line, c.end_line + 1)}
    assert {3, 4} <= covered


@pytest.mark.parametrize(
    "text, expected",
    [
        ("# A\n## B\n### C\n", []),  # headings only
        ("\n\n  \n", []),  # nothing at all
        ("intro\n# A\n", [((), 1, 1)]),
        (
            "# A\ntext\n# B\n#### D\nd text\n## C\nc text\n",
            [
                (("A",), 1, 2),
                (("B", "D"), 4, 5),  # a skipped level is fine
                (("B", "C"), 6, 7),  # a shallower heading closes the deeper one
            ],
        ),
        ("# C# notes ##\nbody\n", [(("C# notes",), 1, 2)]),  # closing hashes are not text
        ("#hashtag is text\n#5 too\n", [((), 1, 2)]),  # no space after #: not a heading
        ("    # indented four: code\n# A\nx\n", [((), 1, 1), (("A",), 2, 3)]),
        # setext headings: a line over === (level 1) or --- (level 2)
        ("SQS\n===\n\nLimits\n------\n- 256KB\n", [(("SQS", "Limits"), 4, 6)]),
        (
            "Intro text\n\nTitle\nsecond line\n===\nbody\n",
            [((), 1, 1), (("Title second line",), 3, 6)],
        ),
        # front matter is not a heading, though its closing --- follows a line, nor text
        ("---\ntitle: x\n---\n# A\nbody\n", [(("A",), 4, 5)]),
        ("---\ntitle: x\n---\n\nfirst\n# A\nbody\n", [(("x",), 5, 5), (("A",), 6, 7)]),
        ("- # in a list\n> # in a quote\n", [((), 1, 2)]),  # not the note's own headings
    ],
)
def test_heading_rules(text, expected):
    assert spans(chunk_note(Note("n.md", text, ""), words, BIG)) == expected


# --- stable ids --------------------------------------------------------------------------------


def ids_by_heading(text: str, path: str = "sqs.md") -> dict[tuple[str, ...], str]:
    chunks = chunk_note(Note(path, text, ""), words, BIG)
    return {c.heading: c.id for c in chunks}


def test_ids_are_unique_and_deterministic():
    text = (DATA / "sqs.md").read_text()
    chunks = chunk_note(Note("sqs.md", text, ""), words, BIG)
    assert len({c.id for c in chunks}) == len(chunks)
    again = chunk_note(Note("sqs.md", text, "a different hash"), words, BIG)
    assert [c.id for c in again] == [c.id for c in chunks]
    split = chunk_note(Note("runbook.md", (DATA / "runbook.md").read_text(), ""), words, 24)
    assert len({c.id for c in split}) == len(split)


def test_editing_one_section_changes_only_its_id():
    text = (DATA / "sqs.md").read_text()
    before = ids_by_heading(text)
    edited = ids_by_heading(text.replace("| 300 msg/s |", "| 3,000 msg/s |"))
    fifo = ("SQS", "Queues", "FIFO queues")
    assert edited[fifo] != before[fifo]
    assert {h: i for h, i in edited.items() if h != fifo} == {
        h: i for h, i in before.items() if h != fifo
    }


def test_inserting_lines_keeps_the_ids_of_later_sections():
    text = (DATA / "sqs.md").read_text()
    before = ids_by_heading(text)
    grown = text.replace("order is best effort.\n", "order is best effort.\nA second line.\n\n")
    after = ids_by_heading(grown)
    std = ("SQS", "Queues", "Standard queues")
    assert after[std] != before[std]
    assert {h: i for h, i in after.items() if h != std} == {
        h: i for h, i in before.items() if h != std
    }
    # The later chunks moved down two lines but kept their ids.
    moved = chunk_note(Note("sqs.md", grown, ""), words, BIG)
    assert [(c.start_line, c.end_line) for c in moved][1:3] == [(7, 10), (13, 20)]
    assert [(c.start_line, c.end_line) for c in moved][-1] == (45, 46)


def test_same_text_under_other_headings_or_paths_gets_other_ids():
    # The three chunks have the very same text, "## Limits\nsame words".
    text = (
        "# SQS\n## Limits\nsame words\n# SNS\n## Limits\nsame words\n# SQS\n## Limits\nsame words\n"
    )
    chunks = chunk_note(Note("n.md", text, ""), words, BIG)
    assert spans(chunks) == [
        (("SQS", "Limits"), 2, 3),
        (("SNS", "Limits"), 5, 6),
        (("SQS", "Limits"), 8, 9),
    ]
    assert len({c.text for c in chunks}) == 1
    assert chunks[0].id != chunks[1].id  # other heading path
    assert len({c.id for c in chunks}) == 3  # the repeated SQS > Limits too
    elsewhere = chunk_note(Note("m.md", text, ""), words, BIG)
    assert elsewhere[1].id != chunks[1].id  # other path


def test_id_depends_on_the_heading_path_not_only_the_text():
    (sqs,) = chunk_note(Note("n.md", "# SQS\n## Limits\nsame words\n", ""), words, BIG)
    (sns,) = chunk_note(Note("n.md", "# SNS\n## Limits\nsame words\n", ""), words, BIG)
    assert (sqs.path, sqs.text) == (sns.path, sns.text)
    assert sqs.id != sns.id


def test_a_setext_heading_is_a_heading_of_its_level():
    text = "Guide\n=====\n\nSQS\n---\n\n- max 256KB\n\n### Deeper\n\n- retention 4d\n"
    chunks = chunk_note(Note("g.md", text, ""), words, BIG)
    assert spans(chunks) == [(("Guide", "SQS"), 4, 7), (("Guide", "SQS", "Deeper"), 9, 11)]
    assert chunks[0].context == "Guide > SQS"
    assert [u.start_line for u in chunks[0].units] == [7]  # the underline is no unit
