"""The README says what the code is: its settings table and its module map are checked here."""

from __future__ import annotations

import re
from pathlib import Path

from rag.settings import settings_table

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_settings_table_is_the_one_settings_makes():
    assert settings_table() in README


def test_the_module_map_names_every_module_once_in_data_flow_order():
    listed = re.findall(r"^\d+\. `(rag/[\w/]+\.py)`", README, flags=re.MULTILINE)
    modules = sorted(
        p.relative_to(ROOT).as_posix() for p in (ROOT / "rag").rglob("*.py") if p.stem != "__init__"
    )
    assert sorted(listed) == modules
    assert len(listed) == len(set(listed))
    stages = ["rag/index/", "rag/search/", "rag/answer/", "rag/quality/", "rag/web/"]
    firsts = [next(i for i, m in enumerate(listed) if m.startswith(s)) for s in stages]
    assert firsts == sorted(firsts)  # each stage after the one it draws on
