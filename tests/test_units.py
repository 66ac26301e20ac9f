"""Units: the lines of a chunk that can answer on their own, with exact line numbers."""

from __future__ import annotations

from rag.index.cutting import chunk_note
from rag.index.units import unit_text, units_of
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
    units = units_of(chunk)
    assert [(u.start_line, u.end_line, u.display) for u in units] == [
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
    assert units[1].text == "  - Visibility timeout (default 30s; 0-12h)"
    assert unit_text(chunk, units[7]) == "SQS > A plain paragraph line."
