"""JSON Lines as rag writes and reads them: one object a line, lines ended by "\n" only.

    out.write(json_line({"question": "a\u2028b"}))   # '{"question": "a\\u2028b"}\n'
    for n, line in numbered_lines(path): ...          # what a writer wrote, line by line

`json.dumps(..., ensure_ascii=False)` keeps U+2028, U+2029 and U+0085 raw, and
`str.splitlines()` breaks a line at each of them: a question holding one would be read as two
broken records. `json_line` escapes them (and the C1 controls a terminal may act on, and
lone surrogates, which UTF-8 cannot encode), and `numbered_lines` splits at "\n" alone, so a
file written by anything else reads right too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

# Left raw by json.dumps(ensure_ascii=False): line separators, C1 controls, and lone
# surrogates (from an undecodable byte or a JSON "\udfff"), which no UTF-8 file can hold.
_RAW = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def json_line(obj: object) -> str:
    """`obj` as one line of JSON, newline included; non-ASCII text stays readable."""
    text = json.dumps(obj, ensure_ascii=False)
    return _RAW.sub(lambda m: f"\\u{ord(m[0]):04x}", text) + "\n"


def numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a UTF-8 text file, split at "\n" only."""
    with open(path, encoding="utf-8", newline="\n") as f:
        yield from enumerate(f, 1)
