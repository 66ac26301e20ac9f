"""A small vault (tests/data/vault): what is a note, what each chunk is and holds, worked out
by hand; and a search by a front matter's title, alias and tag, with the real model."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from rag.errors import BadInput
from rag.index import chunkfile
from rag.index.cutting import Chunk, chunk_note, split_lines
from rag.index.obsidian import BadFrontMatter, body_tags, front_matter, visible_text
from rag.jsonl import json_line
from rag.notes import Note, load_notes
from rag.search.filters import Condition, Where

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


def vault_files(tmp_path_factory: pytest.TempPathFactory, embedder) -> Path:
    """A folder with notes/ (a copy of the vault) and index/ (built with the real model), made
    once per session; laid out as tests/test_app.py `app_files`, for `run_app` and `rag mcp`."""
    from rag.index.build import update_index

    base = tmp_path_factory.getbasetemp() / "vault-files"
    if not (base / "ready").exists():
        shutil.rmtree(base, ignore_errors=True)
        shutil.copytree(VAULT, base / "notes")
        update_index(base / "notes", base / "index", embedder, 200)
        (base / "ready").touch()
    return base


@pytest.fixture(scope="module")
def vault_dirs(tmp_path_factory, embedder) -> tuple[Path, Path]:
    """A copy of the vault and its index."""
    files = vault_files(tmp_path_factory, embedder)
    return files / "notes", files / "index"


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


# --- filters: --where tag:X, folder:GLOB, NAME:VALUE, and --since ---------------------------


def allowed_notes(where: Where, chunks: list[Chunk], notes_dir: Path) -> list[str]:
    mask = where.mask(chunks, notes_dir)
    return sorted({c.path for c, keep in zip(chunks, mask, strict=True) if keep})


@pytest.fixture(scope="module")
def vault_chunks() -> list[Chunk]:
    notes, _ = load_notes(VAULT)
    return [c for n in notes for c in chunk_note(n, words, BIG)]


@pytest.mark.parametrize(
    ("where", "notes"),
    [
        (["tag:infra"], ["projects/queue-design.md"]),  # infra/queues is nested under infra
        (["tag:#INFRA/consumers"], ["projects/queue-design.md"]),  # from one chunk's lines
        (["tag:infra/queue"], []),  # a tag is whole words: infra/queues is not infra/queue
        (["tag:会議"], ["people/tokyo.md"]),
        (["folder:people"], ["people/elodie.md", "people/tokyo.md"]),
        (["folder:projects/*", "folder:*.txt"], ["projects/standup.txt"]),  # all must hold
        (["folder:*/retry-policy.md"], ["projects/retry-policy.md"]),
        (["Status:DRAFT"], ["projects/queue-design.md"]),  # a front-matter property
        (["aliases:mq design"], ["projects/queue-design.md"]),  # one of a list's values
        (["owner:platform"], []),  # that front matter is not YAML: no properties
    ],
)
def test_where_conditions(vault_chunks, where, notes):
    assert allowed_notes(Where.parse(where), vault_chunks, VAULT) == notes


def test_where_over_a_large_index_parses_rows_only_for_tags_and_properties(
    vault_chunks, tmp_path, monkeypatch
):
    path = tmp_path / "chunks.jsonl"
    path.write_text("".join(json_line(chunkfile.chunk_to_json(c)) for c in vault_chunks))
    lazy = chunkfile.ChunkFile(path)  # as load_index reads a chunks.jsonl over LAZY_BYTES
    for where in (["tag:infra"], ["Status:DRAFT", "folder:projects"], ["folder:people"]):
        assert allowed_notes(Where.parse(where), lazy, VAULT) == allowed_notes(
            Where.parse(where), vault_chunks, VAULT
        )
    monkeypatch.setattr(chunkfile, "_parse", None)  # a folder's notes are known by their paths
    mask = Where.parse(["folder:people"]).mask(chunkfile.ChunkFile(path), VAULT)
    assert mask.tolist() == [c.path.startswith("people/") for c in vault_chunks]


def test_since_is_the_note_files_modification_day(vault_chunks, tmp_path):
    shutil.copytree(VAULT, tmp_path / "v")
    old = dt.datetime(2025, 6, 1, 12).timestamp()
    for path in (tmp_path / "v").rglob("*"):
        os.utime(path, (old, old))
    new = dt.datetime(2026, 1, 2, 12).timestamp()
    os.utime(tmp_path / "v" / "people/tokyo.md", (new, new))
    since = Where.parse(None, "2026-01-02")
    assert allowed_notes(since, vault_chunks, tmp_path / "v") == ["people/tokyo.md"]
    (tmp_path / "v" / "people/tokyo.md").unlink()  # gone since it was indexed
    assert allowed_notes(since, vault_chunks, tmp_path / "v") == []
    everything = allowed_notes(Where.parse(None, "2025-06-01"), vault_chunks, VAULT)
    assert len(everything) == 6


@pytest.mark.parametrize(
    ("where", "since", "problem"),
    [
        (["tag"], None, "--where takes NAME:VALUE (tag:infra, folder:projects/*, status:draft)"),
        (["tag: "], None, "--where takes NAME:VALUE"),
        ([":x"], None, "--where takes NAME:VALUE"),
        (None, "01/02/2026", "--since takes a date as YYYY-MM-DD, not '01/02/2026'"),
    ],
)
def test_bad_filters_are_refused_by_name(where, since, problem):
    with pytest.raises(BadInput, match="^" + re.escape(problem)):
        Where.parse(where, since)


def test_where_parses_names_case_blind_and_values_whole():
    where = Where.parse(["Folder: a/b:c "], "2026-01-02")
    assert where.conditions == (Condition("folder", "a/b:c"),)
    assert where.since == dt.date(2026, 1, 2) and str(where) == "folder:a/b:c since 2026-01-02"
    assert not Where.parse(None, None) and Where.parse(["tag:x"])


def test_a_filtered_search_still_gets_k_hits_from_the_allowed_notes_only(vault_engine, vault_dirs):
    question = "what happens to a message when retries fail"
    everywhere = vault_engine.search(question, k=3)
    assert {h.chunk.path for h in everywhere} != {"projects/queue-design.md"}
    mask = Where.parse(["tag:architecture"]).mask(vault_engine.chunks, vault_dirs[0])
    for mode in ("hybrid", "bm25", "dense"):
        hits = vault_engine.within(mask).search(question, k=2, mode=mode)
        assert [h.chunk.path for h in hits] == ["projects/queue-design.md"] * 2, mode
    people = Where.parse(["folder:people"]).mask(vault_engine.chunks, vault_dirs[0])
    hits = vault_engine.within(people).search(question, k=5, mode="dense")
    assert sorted(h.chunk.path for h in hits) == ["people/elodie.md", "people/tokyo.md"]


def test_a_mask_allowing_every_row_changes_nothing(vault_engine):
    everything = vault_engine.within(np.ones(len(vault_engine.chunks), dtype=bool))
    for question in ("broker retention days", "東京", "dead letters inspection"):
        for mode in ("hybrid", "bm25", "dense"):
            plain, masked = (
                vault_engine.search(question, 5, mode),
                everything.search(question, 5, mode),
            )
            assert [h.chunk.id for h in masked] == [h.chunk.id for h in plain], (question, mode)
            assert [h.score for h in masked] == pytest.approx([h.score for h in plain], abs=1e-6)
    with pytest.raises(ValueError, match="a mask of 1 rows for"):
        vault_engine.within(np.ones(1, dtype=bool))


def test_rag_search_where_on_the_command_line(capsys, vault_dirs):
    from rag.cli import main

    at = ["--notes", str(vault_dirs[0]), "--index", str(vault_dirs[1])]
    argv = ["search", "retries", "-k", "2", "--json", "--where", "folder:projects/*.txt", *at]
    assert main(argv) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [(h["path"], h["start_line"], h["end_line"]) for h in hits] == [
        ("projects/standup.txt", 4, 5),
        ("projects/standup.txt", 1, 2),
    ]
    argv = ["search", "broker", "-k", "1", "--json", "--where", "tag:infra", *at]
    assert main(argv) == 0
    (hit,) = json.loads(capsys.readouterr().out)["hits"]
    assert (hit["path"], hit["tags"]) == (
        "projects/queue-design.md",
        ["architecture", "infra/queues", "retention"],
    )
    assert hit["properties"] == QUEUE_PROPERTIES
    assert "tags" not in hits[0] and "properties" not in hits[0]  # a note with neither
    assert main(["search", "retries", "--where", "tag:nowhere", *at]) == 2
    assert f"no note in {vault_dirs[0]} matches tag:nowhere" in capsys.readouterr().err


def test_a_broad_filter_is_searched_deeper_with_the_same_result(vault_engine, monkeypatch):
    """Past EXACT_LIMIT allowed rows the dense leg searches deeper instead of row by row."""
    mask = np.array([c.path != "projects/queue-design.md" for c in vault_engine.chunks])
    vector = vault_engine.embedder.embed(["what happens when retries fail"])[0]
    exact = vault_engine.dense.search(vector, 3, mask)
    monkeypatch.setattr(vault_engine.dense, "EXACT_LIMIT", 0)
    deep = vault_engine.dense.search(vector, 3, mask)
    assert deep[0].tolist() == exact[0].tolist() and len(deep[0]) == 3
    assert deep[1] == pytest.approx(exact[1], abs=1e-6)
    assert mask[deep[0]].all()


def test_the_chats_only_notes_matching_box_scopes_its_search(vault_engine, vault_dirs):
    """The chat page's handler, browser-free: the box takes `--where`'s words."""
    from rag.search.live import LiveIndex
    from rag.settings import Settings
    from rag.web.handlers import Handlers

    notes, index = vault_dirs
    settings = Settings.from_env(env={}, notes_dir=notes, index_dir=index)
    h = Handlers(LiveIndex(settings, vault_engine), settings)

    def chat(only: str):
        *_, (box, messages, turns, panel) = h.chat(
            "retries", [], [], 2, "hybrid", False, False, True, only
        )
        return messages[-1]["content"], turns

    _, turns = chat("folder:projects/*.txt")
    assert [(x.chunk.path, x.chunk.start_line) for x in turns[-1].hits] == [
        ("projects/standup.txt", 4),
        ("projects/standup.txt", 1),
    ]  # as `rag search retries -k 2 --where folder:projects/*.txt` finds them
    _, since = chat("since:2000-01-01 folder:projects/*.txt")  # --since's date, in the box
    assert [x.chunk.id for x in since[-1].hits] == [x.chunk.id for x in turns[-1].hits]
    _, turns = chat('tag:architecture aliases:"MQ design"')  # quoted: a value with a space
    assert {x.chunk.path for x in turns[-1].hits} == {"projects/queue-design.md"}
    _, turns = chat("  ")
    unscoped = vault_engine.search("retries", k=2)  # empty: every note
    assert [x.chunk.id for x in turns[-1].hits] == [x.chunk.id for x in unscoped]
    assert {x.chunk.path for x in unscoped} == {"projects/retry-policy.md"}
    for only, says in [
        ("tag", "--where takes NAME:VALUE"),
        ("tag:nowhere", "matches tag:nowhere"),
        ('aliases:"MQ', "cannot be read: No closing quotation"),
        ("since:2999-01-01", "matches since 2999-01-01"),
        ("since:last-week", "--since takes a date as YYYY-MM-DD"),
        ("since:2026-01-01 Since:2026-02-01", "more than one since: date"),
    ]:
        reply, turns = chat(only)
        assert reply.startswith("<p><strong>Nothing searched:</strong> ") and says in reply, reply
        assert turns == []  # nothing asked: no turn to follow up on
