"""Obsidian [[wikilinks]] as links to the note viewer: which note a name opens (worked out by
hand), the HTML each form becomes, hostile names, the folder listing that follows a rename,
and the real app's viewer opening the linked note at its heading."""

from __future__ import annotations

import html
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest

from rag.index.obsidian import LinkTargets, wikilink
from rag.notes import load_notes
from rag.web.markup import block_html, inline_html, lines_html, link_notes
from rag.web.viewer import NoteNames, heading_line

VAULT = Path(__file__).parent / "data" / "vault"
OLD = time.time() - 3600  # a folder time long past: NoteNames trusts its listing


def a(href: str, title: str, words: str) -> str:
    return f'<a href="{href}" title="{title}" target="_blank" rel="noopener noreferrer">{words}</a>'


def missing(name: str, words: str) -> str:
    title = html.escape(f"No note “{name}” in the notes folder", quote=False)
    title = title.replace('"', "&quot;")  # as nh3 writes an attribute
    return f'<span class="missing-note" title="{title}">{words}</span>'


@pytest.fixture
def served():
    """Links resolved against the notes named, for one test."""

    def serve(*paths: str) -> LinkTargets:
        targets = LinkTargets(paths)
        link_notes(lambda: targets)
        return targets

    yield serve
    link_notes(None)


# --- which note a name opens ----------------------------------------------------------------

NOTES = [
    "Queues.md",
    "infra/queues.md",
    "infra/Retry policy.md",
    "archive/infra/Retry policy.md",
    "b/dup.md",
    "a/dup.md",
    "projects/glossary.markdown",
    "projects/standup.txt",
    "javascript:alert(1).md",
]


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("Queues", "Queues.md"),  # in the fewest folders: the root's, not infra/'s
        ("QUEUES.md", "Queues.md"),  # any case; the extension may be written
        ("infra/queues", "infra/queues.md"),  # a path's end names one
        ("retry policy", "infra/Retry policy.md"),
        ("archive/infra/Retry policy", "archive/infra/Retry policy.md"),
        ("dup", "a/dup.md"),  # as deep: the first by name
        ("glossary", "projects/glossary.markdown"),
        ("standup.txt", "projects/standup.txt"),
        ("Cafe\u0301", None),
        ("nfra/queues", None),  # whole folder names only
        ("../infra/queues", None),
        ("/Queues", None),
        ("", None),
        ("javascript:alert(1)", "javascript:alert(1).md"),  # a note may be called that
    ],
)
def test_a_name_opens_the_note_obsidian_would(name, path):
    assert LinkTargets(NOTES).resolve(name) == path


def test_names_match_in_either_unicode_form():
    assert LinkTargets(["Café.md"]).resolve("Cafe\u0301") == "Café.md"


def test_a_colon_in_a_name_is_a_folder_only_for_an_index_of_several():
    """One notes folder: "work: plan.md" is a note called that. Several: "work:plan.md" is
    plan.md of the folder named work, which links may call "work/plan" too."""
    one = LinkTargets(["work: plan.md"])
    assert one.resolve("work: plan") == "work: plan.md" and one.resolve("plan") is None
    several = LinkTargets(["work:plan.md"], lambda key: key.replace(":", "/", 1))
    assert several.resolve("work/plan") == several.resolve("plan") == "work:plan.md"


def test_a_wikilink_is_read_into_note_heading_and_alias():
    link = wikilink("Queues#Limits#Size|the  limits")
    assert (link.note, link.subpath, link.alias, link.embed) == (
        "Queues",
        "Limits#Size",
        "the limits",
        False,
    )
    assert wikilink("Queues#Limits#Size").words(" › ") == "Queues › Limits › Size"
    assert wikilink("pic.png|300x200", embed=True).alias == ""  # a size, not an alias
    assert wikilink("#^b1").words() == "#^b1"  # nothing else to show


# --- the HTML each form becomes -------------------------------------------------------------


def retry(words: str, heading: str = "") -> str:
    """A link to infra/Retry policy.md, at `heading` (as the query has it)."""
    return a(f"/note/infra/Retry%20policy.md{heading}", "infra/Retry policy.md", words)


JS = a("/note/javascript%3Aalert%281%29.md", "javascript:alert(1).md", "javascript:alert(1)")
QUOTE = 'x" onmouseover="alert(1)'
IMG = "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize(
    ("note", "shown"),
    [
        ("[[Retry policy]]", retry("Retry policy")),
        ("[[retry POLICY#Backoff]].", f"{retry('retry POLICY › Backoff', '?heading=Backoff')}."),
        ("[[Retry policy|the rules]]", retry("the rules")),
        ("[[Retry policy#Backoff#Jitter|jitter]]", retry("jitter", "?heading=Backoff%23Jitter")),
        ("[[Retry policy#^b1]]", retry("Retry policy", "?heading=%5Eb1")),
        ("![[Retry policy]]", retry("Retry policy")),  # an embed: a link, not inlined
        ("![[flow.png|400]]", missing("flow.png", "flow.png")),  # not a note: never loaded
        ("[[Dead letters#Inspection]]", missing("Dead letters", "Dead letters › Inspection")),
        ("`[[Retry policy]]` ``a [[b]]``", "<code>[[Retry policy]]</code> <code>a [[b]]</code>"),
        ("[[a `b` c]]", "[[a <code>b</code> c]]"),  # code comes first, as in the index
        ("\\[[Retry policy]]", "[[Retry policy]]"),  # escaped: text
        ("[[]] [[a\nb]]", "[[]] [[a\nb]]"),
        ("[[#Backoff]]", "Backoff"),  # a heading of the note shown: which note is not known
        # hostile names: a viewer link, or words; never a script or a way out
        ("[[javascript:alert(1)]]", JS),  # the note of that name, through the viewer
        ("[[JavaScript:alert(2)]]", missing("JavaScript:alert(2)", "JavaScript:alert(2)")),
        ("[[../../etc/passwd]]", missing("../../etc/passwd", "../../etc/passwd")),
        (f"[[{QUOTE}]]", missing(QUOTE, QUOTE)),
        (f"[[{IMG}]]", missing(IMG, "&lt;img src=x onerror=alert(1)&gt;")),
        ("[[Retry policy|<b>x</b>]]", retry("&lt;b&gt;x&lt;/b&gt;")),
        ("[[a|[x](javascript:alert(1))]]", "[[a|[x](javascript:alert(1))]]"),  # [ ] in it: none
    ],
)  # fmt: skip
def test_a_wikilink_becomes_a_viewer_link_or_its_words(served, note, shown):
    served(*NOTES)
    assert inline_html(note) == shown
    assert block_html(note) == f"<p>{shown}</p>"


def test_without_a_served_folder_a_wikilink_is_its_words():
    link_notes(None)
    assert inline_html("See [[Retry policy#Backoff]], [[Queues|q]]") == (
        "See Retry policy › Backoff, q"
    )


def test_code_blocks_and_table_cells(served):
    served(*NOTES)
    link = retry("rules")
    note = "```md\n[[Retry policy]]\n```\n\n    [[Retry policy]]\n\n"
    note += "| A |\n|---|\n| [[Retry policy\\|rules]] |"
    html = block_html(note)
    assert '<code class="language-md">[[Retry policy]]\n</code>' in html
    assert "<pre><code>[[Retry policy]]\n</code></pre>" in html
    assert f"<td>{link}</td>" in html
    assert lines_html(note.split("\n")) == [
        '<span class="md-mark">```md</span>',
        '<code class="language-md">[[Retry policy]]</code>',
        '<span class="md-mark">```</span>',
        "",
        "<code>    [[Retry policy]]</code>",
        "",
        '<span class="md-row"><span class="md-cell">A</span></span>',
        '<span class="md-mark">|---|</span>',
        f'<span class="md-row"><span class="md-cell">{link}</span></span>',
    ]


def test_a_notes_own_headings_link_when_the_note_is_known(served):
    served(*NOTES)
    here = a("/note/a/dup.md?heading=Part", "a/dup.md", "Part")
    assert lines_html(["# Part", "see [[#Part]]"], "a/dup.md")[1] == f"see {here}"
    assert lines_html(["# Part", "see [[#Part]]"])[1] == "see Part"


def test_the_same_lines_render_again_with_the_notes_as_they_are_now(served):
    lines = ["see [[Retry policy]]"]
    served("Retry policy.md")
    assert lines_html(lines) == [
        f"see {a('/note/Retry%20policy.md', 'Retry policy.md', 'Retry policy')}"
    ]
    served("retry-policy.md")  # renamed: only the rendering changes
    assert lines_html(lines) == [f"see {missing('Retry policy', 'Retry policy')}"]


# --- the viewer: a heading's line, and the folder's notes -----------------------------------


HEADINGS = [
    "---",
    "title: Retries",
    "---",
    "# Retry policy",
    "",
    "```",
    "# Not a heading",
    "```",
    "## Backoff",
    "Retries wait. ^b1",
]


@pytest.mark.parametrize(
    ("subpath", "line"),
    [
        ("Backoff", 9),
        ("backoff!", 9),  # case and punctuation aside
        ("Retry policy#Backoff", 9),
        ("Backoff#Retry policy", None),  # a Sub must come after its Part
        ("Jitter", None),
        ("^b1", 10),
        ("^b", None),
        ("Not a heading", None),  # in a fence
        ("title: Retries", None),  # front matter
    ],
)
def test_heading_line(subpath, line):
    assert heading_line(HEADINGS, subpath) == line


def test_the_folder_is_listed_again_only_when_a_folder_in_it_changed(tmp_path):
    shutil.copytree(VAULT, tmp_path / "v")
    for folder in [tmp_path / "v", *(p for p in (tmp_path / "v").rglob("*") if p.is_dir())]:
        os.utime(folder, (OLD, OLD))
    names = NoteNames(tmp_path / "v")
    first = names()
    notes, _ = load_notes(tmp_path / "v")  # not drafts/, templates/ or .obsidian/
    assert sorted(set(first._path.values())) == [n.path for n in notes]
    assert names() is first  # nothing changed: not listed again
    (tmp_path / "v/projects/retry-policy.md").rename(tmp_path / "v/projects/Retry policy.md")
    now = names()
    assert now.resolve("Retry policy") == "projects/Retry policy.md"
    assert now.resolve("retry-policy") is None


# --- the real app: a vault note's wikilink opens the linked note at its heading --------------


def test_the_viewer_opens_a_wikilinks_note_at_its_heading(tmp_path_factory, embedder):
    from test_app import run_app
    from test_vault import vault_files

    files = tmp_path_factory.mktemp("wikilinks")
    shutil.copytree(vault_files(tmp_path_factory, embedder), files, dirs_exist_ok=True)
    notes = files / "notes"
    with (
        run_app(files, tmp_path_factory.mktemp("wikilinks-app")) as app,
        httpx.Client(base_url=app.url, timeout=30) as web,
    ):
        page = web.get("/note/projects/queue-design.md").text
        # Obsidian finds no "Retry policy" note: the file is retry-policy.md
        assert f"See {missing('Retry policy', 'Retry policy')} for redelivery" in page
        assert missing("Dead letters", "Dead letters › Inspection") in page
        assert missing("queue-flow.png", "queue-flow.png") in page  # the embed: never loaded

        (notes / "projects/retry-policy.md").rename(notes / "projects/Retry policy.md")
        page = web.get("/note/projects/queue-design.md").text
        title = "projects/Retry policy.md"
        plain = a("/note/projects/Retry%20policy.md", title, "Retry policy")
        backoff = a("/note/projects/Retry%20policy.md?heading=Backoff", title, "the backoff rules")
        assert f"See {plain} for redelivery and {backoff}." in page

        went = web.get("/note/projects/Retry%20policy.md?heading=Backoff")
        assert went.status_code == 307
        assert went.headers["location"] == "/note/projects/Retry%20policy.md#L7"
        target = web.get(went.headers["location"]).text
        assert '<h1 class="path">projects/Retry policy.md</h1>' in target
        assert (
            '<div class="l" id="L7"><span class="n">7</span><span class="t"><strong>## Backoff'
            in target
        )

        lost = web.get("/note/projects/Retry%20policy.md?heading=Jitter")
        assert lost.status_code == 200
        assert "There is no heading “Jitter” in this note" in lost.text
        for refused in (".obsidian/workspace.md", "drafts/unfinished.md", "..%2Fx.md"):
            assert web.get(f"/note/{refused}?heading=x").status_code == 404
        assert app.proc.poll() is None
