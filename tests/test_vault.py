"""A small vault (tests/data/vault): what is a note, what each chunk is and holds, worked out
by hand; and a search by a front matter's title, alias and tag, with the real model."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest

from rag.index.cutting import Chunk, chunk_note, split_lines
from rag.index.obsidian import BadFrontMatter, body_tags, front_matter, visible_text
from rag.notes import Note, load_notes

VAULT = Path(__file__).parent / "data" / "vault"
BIG = 10_000  # a budget no section reaches: one chunk per section


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def chunks_of(rel: str) -> list[Chunk]:
    return chunk_note(Note(rel, (VAULT / rel).read_text(encoding="utf-8"), "0"), words, BIG)


def body(chunk: Chunk) -> str:
    """The searchable text of a chunk without its context line."""
    return chunk.indexed_text.split("\n", 1)[1]


# --- which files are notes ----------------------------------------------------------------


def test_the_vault_notes_are_md_markdown_and_txt_outside_ignored_and_hidden_folders():
    notes, skipped = load_notes(VAULT)
    assert [n.path for n in notes] == [
        "people/elodie.md",
        "people/tokyo.md",
        "projects/glossary.markdown",
        "projects/queue-design.md",
        "projects/retry-policy.md",
        "projects/standup.txt",
    ]  # not drafts/ (.ragignore), templates/ (Obsidian's Excluded files), .obsidian/
    assert skipped == []


# --- front matter, tags and links -----------------------------------------------------------

QUEUE_HEAD = "Message queue design (MQ design, broker plan) #architecture #infra/queues"
QUEUE_PROPERTIES = {
    "title": "Message queue design",
    "aliases": ["MQ design", "broker plan"],
    "status": "draft",
    "reviewed": "2026-01-15",  # a YAML date, kept as ISO text
}


def test_front_matter_is_parsed_not_indexed_and_body_lines_keep_their_numbers():
    design, consumers = chunks_of("projects/queue-design.md")
    lines = split_lines((VAULT / "projects/queue-design.md").read_text(encoding="utf-8"))
    # lines 1-9 are the front matter: in no chunk; line 10 is the "# Message queue design"
    assert (design.heading, design.start_line, design.end_line) == (
        ("Message queue design",),
        10,
        13,
    )
    assert (consumers.heading, consumers.start_line, consumers.end_line) == (
        ("Message queue design", "Consumers"),
        15,
        24,
    )
    for c in (design, consumers):
        assert c.text == "\n".join(lines[c.start_line - 1 : c.end_line])  # the raw lines
        assert c.properties == QUEUE_PROPERTIES
        assert "reviewed" not in c.indexed_text and "status" not in c.indexed_text
    # the title (the note's own first heading too: said once), aliases and tags lead the context
    assert design.context == QUEUE_HEAD
    assert consumers.context == f"{QUEUE_HEAD} > Consumers"


def test_tags_are_the_notes_then_the_chunks_own_outside_code():
    design, consumers = chunks_of("projects/queue-design.md")
    assert design.tags == ("architecture", "infra/queues", "retention")
    # not #2026 (no letter), a#b (no space before), `#define` (code), #notatag (in a fence)
    assert consumers.tags == ("architecture", "infra/queues", "infra/consumers")


def test_wikilinks_and_embeds_are_indexed_as_the_words_a_reader_sees():
    design, consumers = chunks_of("projects/queue-design.md")
    assert body(design) == (
        "# Message queue design\n"
        "\n"
        "The broker keeps each message for 14 days. #retention\n"
        "See Retry policy for redelivery and the backoff rules."
    )
    assert body(consumers).split("\n")[3:6] == [
        "- Dead letters are read in Dead letters > Inspection",
        "- The flow: queue-flow.png",  # an embed's "|400" is its size, not an alias
        "- Not tags: #2026, a#b and `#define`",
    ]
    assert "[[" in consumers.text  # the stored lines stay as written, for a renderer
    bullet = consumers.units[1]
    assert consumers.unit_indexed_text(bullet) == (
        f"{QUEUE_HEAD} > Consumers > Dead letters are read in Dead letters > Inspection"
    )


def test_malformed_front_matter_is_indexed_as_text_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="rag.index.cutting"):
        chunks = chunks_of("projects/retry-policy.md")
    assert [(c.heading, c.start_line, c.end_line, c.context) for c in chunks] == [
        ((), 1, 4, "retry-policy"),  # the front matter's lines, as written: the note is kept
        (("Retry policy", "Backoff"), 7, 9, "Retry policy > Backoff"),
    ]
    assert chunks[0].properties == {} and chunks[0].tags == ()
    assert body(chunks[1]).endswith("before the message goes to Dead letters.")
    assert "projects/retry-policy.md: front matter is not valid YAML (" in caplog.text
    assert "line 3); its lines are indexed as text" in caplog.text


def test_a_note_without_a_title_is_named_by_its_file_and_cjk_tags_are_tags():
    (chunk,) = chunks_of("people/tokyo.md")
    assert (chunk.heading, chunk.start_line, chunk.end_line) == (("東京の会議",), 4, 6)
    assert chunk.context == "tokyo #会議 > 東京の会議"
    assert chunk.tags == ("会議",) and chunk.properties == {}


def test_a_note_with_no_front_matter_is_cut_as_before():
    (chunk,) = chunks_of("people/elodie.md")
    assert (chunk.heading, chunk.start_line, chunk.end_line, chunk.context) == (
        ("Élodie",),
        1,
        3,
        "Élodie",
    )
    assert chunk.indexed_text == f"Élodie\n{chunk.text}" and chunk.tags == ()
    (glossary,) = chunks_of("projects/glossary.markdown")
    assert (glossary.heading, glossary.start_line, glossary.end_line) == (("Glossary",), 1, 4)


def test_a_txt_note_is_a_section_per_paragraph_headed_by_its_file_name():
    chunks = chunks_of("projects/standup.txt")
    assert [(c.heading, c.start_line, c.end_line, c.context) for c in chunks] == [
        ((), 1, 2, "standup"),  # "# 1 on the list" is text: a .txt has no headings
        ((), 4, 5, "standup"),
    ]
    assert [(u.start_line, u.end_line) for u in chunks[1].units] == [(4, 4), (5, 5)]


# --- the pieces, one by one ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tags"),
    [
        ("#a #b/c/ #a", ("a", "b/c")),  # each once; a trailing / is not part of it
        ("#1984 #y1984 #_ #-x", ("y1984", "-x")),  # a tag needs a letter
        ("x#y [t](#anchor) http://h/#frag", ()),  # a space or the line start before '#'
        ("`#code` ``a #b`` #real", ("real",)),
        ("# Heading #inhead", ("inhead",)),
        ("#Café #東京", ("Café", "東京")),
    ],
)
def test_body_tags(text, tags):
    assert body_tags(text) == tags


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("[[Note]]", "Note"),
        ("[[folder/Note.md]]", "folder/Note"),
        ("[[Note#Part#Sub]]", "Note > Part > Sub"),
        ("[[Note#^block1]]", "Note"),
        ("[[#Part]]", "Part"),
        ("[[Note|the  note]]", "the note"),
        (r"| [[Note\|in a table]] |", "| in a table |"),
        ("![[pic.png|300x200]] ![[Note|Shown]]", "pic.png Shown"),
        ("`[[code]]` [[a]] `x` [[b]]", "`[[code]]` a `x` b"),
        ("[[]] [not] [[a\nb]]", "[[]] [not] [[a\nb]]"),
    ],
)
def test_visible_text(text, shown):
    assert visible_text(text) == shown


def test_front_matter_fields():
    fm = front_matter('title: 42\naliases: One alias, with a comma\ntags: "a, #b c"\nn: .nan\n')
    assert (fm.title, fm.aliases, fm.tags) == ("42", ("One alias, with a comma",), ("a", "b", "c"))
    assert fm.properties == {"title": 42, "aliases": "One alias, with a comma", "n": "nan"}
    assert front_matter("") == front_matter("# only a comment") == front_matter("tags: []")
    assert not front_matter("").names


@pytest.mark.parametrize(
    ("yaml", "problem"),
    [
        ("- a list", "front matter is a YAML list, not key: value lines"),
        ("just words", "front matter is a YAML str, not key: value lines"),
        ("a: [1, 2\nb: c", "front matter is not valid YAML ("),
        ("a: !!python/object:os.system x", "front matter is not valid YAML ("),  # safe loader
    ],
)
def test_front_matter_that_is_not_a_mapping_is_refused_by_name(yaml, problem):
    with pytest.raises(BadFrontMatter, match="^" + re.escape(problem)):
        front_matter(yaml)


def test_front_matter_aliases_cannot_blow_up():
    anchors = zip("bcdefgh", "abcdefg", strict=True)  # b: ten a's, c: ten b's, ...
    laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for n, p in anchors
    )
    fm = front_matter(laughs)  # 10^8 leaves if expanded
    assert len(str(fm.properties)) < 50_000


# --- search, with the real model ----------------------------------------------------------


@pytest.fixture(scope="module")
def vault_dirs(tmp_path_factory, embedder) -> tuple[Path, Path]:
    """A copy of the vault and its index, built once with the real model."""
    from rag.index.build import update_index

    base = tmp_path_factory.mktemp("vault")
    shutil.copytree(VAULT, base / "vault")
    update_index(base / "vault", base / "index", embedder, 200)
    return base / "vault", base / "index"


@pytest.fixture(scope="module")
def vault_engine(vault_dirs, embedder):
    from rag.index.store import load_index
    from rag.search.engine import Engine

    index = load_index(vault_dirs[1], embedder.name, embedder.dim, 200)
    return Engine(index, embedder)


@pytest.mark.parametrize(
    "question",
    [
        "message queue design",  # the front matter's title
        "MQ design",  # an alias
        "broker plan",  # the other alias
        "architecture",  # a front-matter tag: no line of the note says it
    ],
)
def test_a_search_by_title_alias_or_tag_finds_the_note(vault_engine, question):
    for mode in ("bm25", "hybrid"):
        hits = vault_engine.search(question, k=3, mode=mode)
        assert hits[0].chunk.path == "projects/queue-design.md", (mode, question)


def test_stored_chunks_keep_their_tags_and_properties(vault_engine):
    stored = {c.path: c for c in vault_engine.chunks if c.start_line == 10}
    design = stored["projects/queue-design.md"]
    assert design.tags == ("architecture", "infra/queues", "retention")
    assert design.properties == QUEUE_PROPERTIES


def test_cjk_and_accented_words_are_found(vault_engine):
    assert vault_engine.search("東京タワー", k=1, mode="bm25")[0].chunk.path == "people/tokyo.md"
    assert vault_engine.search("creme brulee", k=1, mode="bm25")[0].chunk.path == "people/elodie.md"
