"""Several notes folders in one index: each with a name, its notes called "name:path", its own
ignore rules; searched, filtered, cited, opened and watched as one set of notes."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from rag.cli import main
from rag.editor import Editor
from rag.errors import BadInput, NoteRefused
from rag.index.build import update_index
from rag.index.store import load_index
from rag.notes import Folders, load_notes, note_name, read_note_text, resolve_note, watched
from rag.search.engine import Engine
from rag.search.filters import Where
from rag.search.live import LiveIndex
from rag.settings import Settings, add_flags, default_index_dir, settings_from_args

VAULT = Path(__file__).parent / "data" / "vault"
ONCALL = """# On-call

The pager rotates every Monday at 09:00.

## Escalation

Page the database owner after 15 minutes without an answer.
Retries follow [[retry-policy#Backoff]].
"""


def work_folder(base: Path) -> Path:
    work = base / "work-notes"
    (work / "ops").mkdir(parents=True)
    (work / "ops" / "oncall.md").write_text(ONCALL)
    (work / "private").mkdir()
    (work / "private" / "salary.md").write_text("# Salary\n\nThe pager bonus is secret.\n")
    (work / ".ragignore").write_text("private/\n")
    return work


@pytest.fixture(scope="module")
def two(tmp_path_factory, embedder) -> tuple[Path, Folders]:
    """The test vault and a work folder named "work", indexed together with the real model."""
    base = tmp_path_factory.mktemp("two-folders")
    shutil.copytree(VAULT, base / "vault")
    work = work_folder(base)
    folders = Folders.parse([base / "vault", f"work={work}"])
    update_index(folders, base / "index", embedder, 200)
    return base, folders


def at(base: Path) -> list[str]:
    work = base / "work-notes"
    return [
        "--notes",
        str(base / "vault"),
        "--notes",
        f"work={work}",
        "--index",
        str(base / "index"),
    ]


# --- naming the folders (pure logic) --------------------------------------------------------


def test_a_folder_is_named_by_its_own_name_or_as_given(tmp_path):
    folders = Folders.parse([tmp_path / "a" / "notes", tmp_path / "b" / "notes", f"x={tmp_path}/c"])
    assert [f.name for f in folders.items] == ["notes", "notes-2", "x"]
    assert folders.items[2].path == tmp_path / "c"
    assert str(folders) == f"notes={tmp_path}/a/notes, notes-2={tmp_path}/b/notes, x={tmp_path}/c"
    odd = tmp_path / "a=b"  # an existing folder whose name holds "=" is a folder, not a name
    odd.mkdir()
    assert Folders.parse([odd]).items[0].path == odd


@pytest.mark.parametrize(
    ("specs", "problem"),
    [
        (["x=a", "x=b"], "two notes folders are named 'x'"),
        (["a", "a/sub"], "hold one another"),
        (["a/sub", "a"], "hold one another"),
        (["a", "a"], "hold one another"),
        ([], "no notes folder given"),
    ],
)
def test_folders_that_would_mix_up_notes_are_refused_by_name(tmp_path, specs, problem):
    def spec(given: str) -> str:  # a folder below tmp_path, named if the spec names it
        name, sep, folder = given.rpartition("=")
        return f"{name}{sep}{tmp_path / folder}"

    with pytest.raises(BadInput, match=problem):
        Folders.parse([spec(s) for s in specs])


def test_keys_are_paths_with_one_folder_and_name_colon_path_with_several(tmp_path):
    one = Folders.parse([tmp_path / "notes"])
    assert one.key(one.items[0], "a/b.md") == "a/b.md"
    assert one.split("x:y.md") == (one.items[0], "x:y.md")  # a file may be called that
    two = Folders.parse([tmp_path / "notes", f"work={tmp_path / 'w'}"])
    assert two.key(two.items[1], "a/b.md") == "work:a/b.md"
    assert two.split("work:a/b.md") == (two.items[1], "a/b.md")
    assert two.path("notes:c.md") == tmp_path / "notes" / "c.md"
    assert two.mounted("work:a/b.md") == "work/a/b.md"
    for unknown in ("a/b.md", "home:a/b.md"):
        with pytest.raises(NoteRefused):
            two.split(unknown)


def test_several_folders_come_from_repeated_flags_or_the_path_separator(tmp_path):
    parser = argparse.ArgumentParser()
    add_flags(parser, "notes_dir", "index_dir")
    one = settings_from_args(parser.parse_args(["--notes", str(tmp_path / "a")]))
    assert one.notes_dir == tmp_path / "a" and not one.folders.several
    args = parser.parse_args(["--notes", str(tmp_path / "a"), "--notes", f"w={tmp_path / 'b'}"])
    flags = settings_from_args(args)
    assert [(f.name, f.path) for f in flags.folders.items] == [
        ("a", tmp_path / "a"),
        ("w", tmp_path / "b"),
    ]
    env = Settings.from_env(env={"RAG_NOTES_DIR": f"{tmp_path / 'a'}:w={tmp_path / 'b'}"})
    assert env.folders == flags.folders
    with pytest.raises(BadInput, match="hold one another"):
        Settings.from_env(env={"RAG_NOTES_DIR": f"{tmp_path}:{tmp_path / 'a'}"})


def test_each_set_of_folders_gets_an_index_of_its_own(tmp_path):
    cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    a, b = tmp_path / "a", tmp_path / "b"
    both = default_index_dir(Folders.parse([a, b]), cache)
    assert both.parent.name.startswith("a-b-")
    assert both == default_index_dir(Folders.parse([a, b]), cache)  # the same next time
    assert both != default_index_dir(Folders.parse([a]), cache)
    assert both != default_index_dir(Folders.parse([b, a]), cache)  # other names, other keys
    assert default_index_dir(Folders.parse([a]), cache) == default_index_dir(a, cache)


# --- the notes of two folders -------------------------------------------------------------


def test_the_notes_of_each_folder_are_read_under_its_rules_and_called_by_its_name(two):
    base, folders = two
    notes, skipped = load_notes(folders)
    assert [n.path for n in notes] == [
        "vault:people/elodie.md",
        "vault:people/tokyo.md",
        "vault:projects/glossary.markdown",
        "vault:projects/queue-design.md",
        "vault:projects/retry-policy.md",
        "vault:projects/standup.txt",
        "work:ops/oncall.md",
    ]  # not work's private/ (its .ragignore), nor the vault's drafts/ (the vault's)
    assert skipped == []
    assert resolve_note(folders, "work:ops/oncall.md") == (base / "work-notes/ops/oncall.md")
    assert read_note_text(folders, "work:ops/oncall.md") == ONCALL
    for refused in (
        "work:private/salary.md",
        "ops/oncall.md",
        "home:ops/oncall.md",
        "work:../vault/people/tokyo.md",
        "vault:drafts/unfinished.md",
    ):
        with pytest.raises(NoteRefused):
            resolve_note(folders, refused)


def test_the_watcher_names_a_changed_file_by_its_folder(two):
    base, folders = two
    assert note_name(folders, base / "work-notes/ops/oncall.md") == "work:ops/oncall.md"
    assert note_name(folders, base / "vault/people/gone.md") == "vault:people/gone.md"
    assert note_name(folders, base / "work-notes/private/salary.md") is None
    assert note_name(folders, base / "elsewhere.md") is None
    assert watched(folders, base / "work-notes/.ragignore")
    assert not watched(folders, base / "work-notes/ops/pic.png")


# --- search, citations, filters, the editor and the viewer --------------------------------


def test_a_search_cites_name_path_and_lines(two, capsys):
    base, _ = two
    assert main(["search", "when does the pager rotate", "-k", "3", "--json", *at(base)]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert (hits[0]["path"], hits[0]["start_line"], hits[0]["end_line"]) == (
        "work:ops/oncall.md",
        1,
        3,
    )
    assert main(["search", "when does the pager rotate", "-k", "1", *at(base)]) == 0
    assert "work:ops/oncall.md:1-3" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("where", "notes"),
    [
        ("folder:work", {"work:ops/oncall.md"}),  # a folder's name is a top folder
        ("folder:vault/people", {"vault:people/elodie.md", "vault:people/tokyo.md"}),
        ("folder:people", {"vault:people/elodie.md", "vault:people/tokyo.md"}),  # in any folder
        ("folder:ops/*", {"work:ops/oncall.md"}),
        ("folder:work/people", set()),
    ],
)
def test_a_folder_filter_knows_the_notes_folders_by_name(two, embedder, where, notes):
    base, folders = two
    chunks = load_index(base / "index", embedder.name, embedder.dim, 200).chunks
    mask = Where.parse([where]).mask(chunks, folders)
    assert {c.path for c, kept in zip(chunks, mask, strict=True) if kept} == notes


def test_since_reads_each_notes_file_in_its_own_folder(two, embedder):
    base, folders = two
    chunks = load_index(base / "index", embedder.name, embedder.dim, 200).chunks
    mask = Where.parse(None, since="2000-01-01").mask(chunks, folders)
    assert mask.all()  # every file was found, in its own folder


def test_a_citation_opens_in_the_editor_from_its_own_folder(two):
    base, folders = two
    work = (base / "work-notes").resolve()
    vscode = Editor.parse("vscode", folders)
    assert vscode.uri("work:ops/oncall.md", 3) == f"vscode://file{quote(str(work))}/ops/oncall.md:3"
    obsidian = Editor.parse("obsidian", folders)
    assert obsidian.uri("vault:people/tokyo.md", 1) == (
        "obsidian://open?vault=vault&file=people%2Ftokyo.md"
    )


def test_the_viewer_shows_the_notes_of_each_folder_and_links_across_them(two):
    from rag.web.markup import link_notes
    from rag.web.viewer import add_viewer

    base, folders = two
    app = FastAPI()

    async def anyone(_request) -> bool:
        return True

    add_viewer(app, folders, anyone)
    try:
        with TestClient(app) as web:
            page = web.get("/note/work%3Aops/oncall.md?start=3&end=3")
            assert page.status_code == 200
            assert '<h1 class="path">work:ops/oncall.md</h1>' in page.text
            assert '<div class="l hit" id="L3">' in page.text
            # [[retry-policy#Backoff]] in work's note opens the vault's note at that heading
            link = "/note/vault%3Aprojects/retry-policy.md?heading=Backoff"
            assert f'href="{link}"' in page.text
            went = web.get(link, follow_redirects=False)
            assert went.headers["location"] == "/note/vault%3Aprojects/retry-policy.md#L7"
            for refused in ("work%3Aprivate/salary.md", "ops/oncall.md", "nope%3Aa.md"):
                assert web.get(f"/note/{refused}").status_code == 404
    finally:
        link_notes(None)


def test_an_edit_in_either_folder_is_indexed_by_the_watch(tmp_path, embedder):
    shutil.copytree(VAULT, tmp_path / "vault")
    work = work_folder(tmp_path)
    settings = Settings.from_env(
        env={}, notes_dir=(tmp_path / "vault", work), index_dir=tmp_path / "index"
    )
    update_index(settings.folders, settings.index_dir, embedder, settings.max_chunk_tokens)
    index = load_index(settings.index_dir, embedder.name, embedder.dim, settings.max_chunk_tokens)
    live = LiveIndex(settings, Engine(index, embedder))
    stop = live.watch(debounce_ms=200)
    try:
        time.sleep(0.5)  # let the watcher start
        (work / "ops" / "deploys.md").write_text("# Deploys\n\n- Friday deploys need approval\n")
        (tmp_path / "vault" / "people" / "tokyo.md").unlink()
        deadline = time.monotonic() + 60
        while True:
            paths = {c.path for c in live.engine.chunks}
            if "work-notes:ops/deploys.md" in paths and "vault:people/tokyo.md" not in paths:
                break
            assert time.monotonic() < deadline, "the watch never re-indexed"
            time.sleep(0.2)
    finally:
        stop.set()
    assert not live.status().stale
