"""Units: the lines of a chunk that can answer on their own, with exact line numbers."""

from __future__ import annotations

from rag.index.cutting import Unit, chunk_note
from rag.notes import Note

NOTE = """# SQS

- Configuration
  - Visibility timeout (default 30s; 0-12h)
    - Extend with `ChangeMessageVisibility`
- Types
  - Standard
  - FIFO
```sh
aws sqs create-queue --queue-name q.fifo
```
A plain paragraph line.
"""


def test_units_are_lines_with_parents_and_exact_spans():
    (chunk,) = chunk_note(Note("q.md", NOTE, "0"), lambda ts: [1] * len(ts), 10_000)
    units = chunk.units
    assert [(u.start_line, u.end_line, chunk.unit_display(u)) for u in units] == [
        # a short bullet with children takes up to three of them along
        (
            3,
            5,
            "Configuration Visibility timeout (default 30s; 0-12h) Extend with "
            "`ChangeMessageVisibility`",
        ),
        (4, 4, "Configuration › Visibility timeout (default 30s; 0-12h)"),
        (
            5,
            5,
            "Configuration › Visibility timeout (default 30s; 0-12h) › Extend with "
            "`ChangeMessageVisibility`",
        ),
        (6, 8, "Types Standard FIFO"),
        (7, 7, "Types › Standard"),
        (8, 8, "Types › FIFO"),
        (9, 11, "```sh aws sqs create-queue --queue-name q.fifo ```"),  # a fence is one unit
        (12, 12, "A plain paragraph line."),
    ]
    assert units[1] == Unit(4, 4, ("Configuration",))
    assert chunk.unit_lines(units[1]) == "  - Visibility timeout (default 30s; 0-12h)"
    assert chunk.unit_indexed_text(units[7]) == "SQS > A plain paragraph line."
    assert chunk.vector_units == units  # more than one: each has a vector of its own


def test_two_fences_in_a_row_are_two_units():
    text = "# A\n\n- Side note:\n  ```js\n  a()\n  ```\n- ```json\n  {}\n  ```\n"
    (chunk,) = chunk_note(Note("f.md", text, "0"), lambda ts: [1] * len(ts), 10_000)
    assert [(u.start_line, u.end_line) for u in chunk.units] == [(3, 3), (4, 6), (7, 9)]


def test_a_one_unit_chunk_has_no_unit_vectors():
    (chunk,) = chunk_note(Note("o.md", "# A\n\n- only line\n", "0"), lambda ts: [1] * len(ts), 99)
    assert len(chunk.units) == 1 and chunk.vector_units == ()
