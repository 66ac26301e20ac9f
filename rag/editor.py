"""Where a citation opens in the user's own editor: a URI template for the exact line.

    editor = Editor.parse("vscode", Path("notes"))
    editor.uri("aws/sqs.md", 12)    # 'vscode://file/abs/notes/aws/sqs.md:12'
    Editor.parse("obsidian", Path("~/vault")).uri("a b.md", 3)
                                    # 'obsidian://open?vault=vault&file=a%20b.md'

A template is one of the names in EDITORS or a URI of your own with these placeholders:
{abs_path} (the note's absolute path, URL-quoted, starting with /), {path} (relative to its
notes folder), {vault} (that folder's own name), {line} and {end_line}. With several notes
folders, a note is named "name:path" (`rag.notes.Folders`) and opens in its own folder. A
URI that would run code where it is clicked (javascript:, data:, vbscript:) is refused.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from rag.errors import BadInput
from rag.notes import Folders

EDITORS = {
    # VS Code and Cursor open file:line from their URI handler (code.visualstudio.com/docs/
    # configure/command-line#_opening-vs-code-with-urls); Obsidian opens the note, not a line.
    "vscode": "vscode://file{abs_path}:{line}",
    "cursor": "cursor://file{abs_path}:{line}",
    "obsidian": "obsidian://open?vault={vault}&file={path}",
    "file": "file://{abs_path}",
}
FIELDS = frozenset({"abs_path", "path", "vault", "line", "end_line"})
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")
_UNSAFE = frozenset({"javascript", "data", "vbscript"})


@dataclass(frozen=True)
class Editor:
    template: str
    folders: Folders

    @classmethod
    def parse(cls, setting: str, notes: Folders | Path) -> Editor:
        """The editor a setting names (a name in EDITORS or a template), or BadInput."""
        return cls(check_template(setting), Folders.of(notes))

    def uri(self, key: str, line: int, end_line: int | None = None) -> str:
        """The URI that opens note `key` (its path, or "name:path" with several folders) at
        `line`."""
        folder, path = self.folders.split(key)
        root = folder.path.expanduser().resolve()
        return self.template.format(
            abs_path=quote((root / path).as_posix()),
            path=quote(path, safe=""),
            vault=quote(root.name, safe=""),
            line=line,
            end_line=end_line if end_line is not None else line,
        )


def check_template(setting: str) -> str:
    """The URI template a setting names, or BadInput saying what is wrong with it."""
    template = EDITORS.get(setting.strip().lower(), setting.strip())
    scheme = _SCHEME.match(template)
    if not scheme:
        names = ", ".join(EDITORS)
        raise BadInput(f"the editor must be one of {names}, or a URI template; not {setting!r}")
    if scheme[1].lower() in _UNSAFE:
        raise BadInput(f"an editor URI may not start with {scheme[1]}: (it would run code)")
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise BadInput(f"the editor template {template!r} is malformed: {e}") from None
    unknown = used - FIELDS
    if unknown:
        known = ", ".join("{" + f + "}" for f in sorted(FIELDS))
        bad = ", ".join("{" + u + "}" for u in sorted(unknown))
        raise BadInput(f"the editor template uses {bad}; it may use {known}")
    return template
