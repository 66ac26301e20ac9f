"""The packages import down the data flow only: web -> answer -> search -> index -> the base.

A lower stage importing a higher one (the search calling the chat page, say) fails here, and
so does a heavy library outside the one package that may use it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

RAG = Path(__file__).resolve().parent.parent / "rag"
# Higher may import lower; the same rank only within one package. The base modules are
# jsonl, errors, notes, editor, settings; cli and console sit on top of everything.
RANKS = {
    "rag.jsonl": 0,
    "rag.errors": 0,
    "rag.editor": 0,
    "rag.settings": 0,
    "rag.notes": 0,
    "rag.index": 1,
    "rag.search": 2,
    "rag.answer": 3,
    "rag.quality": 4,
    "rag.web": 4,
    "rag.console": 5,
    "rag.cli": 6,
}
# Each base module may import those before it.
BASE_ORDER = ["rag.jsonl", "rag.errors", "rag.notes", "rag.editor", "rag.settings"]
ONLY_IN = {  # third-party package -> the rag packages (or modules) that alone may import it
    "gradio": ("rag.web",),
    "fastapi": ("rag.web",),
    "starlette": ("rag.web",),
    "uvicorn": ("rag.web",),
    "mcp": ("rag.web",),
    "mcp_types": ("rag.web",),
    "torch": ("rag.index",),
    "onnxruntime": ("rag.index",),
    "faiss": ("rag.index",),
    "sentence_transformers": ("rag.index",),
    "transformers": ("rag.index",),
    # The notes' structure in the index; rendering them as HTML in one module of the page.
    "markdown_it": ("rag.index", "rag.web.markup"),
    "mdit_py_plugins": ("rag.index",),
    "nh3": ("rag.web.markup",),
    "httpx": ("rag.answer",),
}


def stage(module: str) -> str:
    """The package a module belongs to, as RANKS names it."""
    return next(s for s in sorted(RANKS, key=len, reverse=True) if module.startswith(s))


def imports(path: Path) -> list[str]:
    """Every module a file imports, at the top or inside a function."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def allowed(here: str, there: str) -> bool:
    """Whether a module of package `here` may import one of package `there`."""
    if here in BASE_ORDER and there in BASE_ORDER:
        return BASE_ORDER.index(there) <= BASE_ORDER.index(here)
    return RANKS[there] < RANKS[here] or there == here


def violations(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        if module == "rag":
            continue  # the public API: names imported on first use, no import statements
        here = stage(module)
        for name in imports(path):
            top = name.split(".")[0]
            if top in ONLY_IN and here not in ONLY_IN[top] and module not in ONLY_IN[top]:
                only = " and ".join(ONLY_IN[top])
                out.append(f"{module} imports {name}, which only {only} may")
            if top != "rag" or name == "rag":
                continue
            there = stage(name)
            if allowed(here, there):
                continue
            out.append(f"{module} (rank {RANKS[here]}) imports {name} (rank {RANKS[there]})")
    return out


def test_rag_imports_down_the_data_flow_only():
    assert violations(RAG) == []


@pytest.mark.parametrize(
    ("where", "code", "expected"),
    [
        ("search/engine.py", "from rag.web.reply import escape_md\n", "imports rag.web.reply"),
        ("web/panel.py", "import nh3\n", "only rag.web.markup may"),
        ("index/store.py", "def f():\n    import rag.answer.base\n", "imports rag.answer.base"),
        ("answer/base.py", "import gradio as gr\n", "only rag.web may"),
        ("web/app.py", "from rag.quality import beir\n", "imports rag.quality"),
        ("notes.py", "from rag.settings import Settings\n", "imports rag.settings"),
    ],
)
def test_the_check_catches_an_import_up_the_flow(tmp_path, where, code, expected):
    root = tmp_path / "rag"
    (root / where).parent.mkdir(parents=True, exist_ok=True)
    (root / where).write_text(code)
    found = violations(root)
    assert len(found) == 1 and expected in found[0], found
