"""Settings: RAG_* env fallback, explicit overrides winning, clear errors for bad values."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.errors import BadInput
from rag.settings import Settings


def test_defaults_with_an_empty_env():
    s = Settings.from_env(env={})
    assert s == Settings()
    assert (s.notes_dir, s.index_dir, s.model_path) == (Path("notes"), Path("index"), "")
    assert (s.max_chunk_tokens, s.top_k, s.mode, s.host, s.port) == (
        200,
        5,
        "hybrid",
        "127.0.0.1",
        7860,
    )


def test_env_fallback_with_types():
    env = {
        "RAG_NOTES_DIR": "/srv/notes",
        "RAG_INDEX_DIR": "idx",
        "RAG_MODEL": "/models/mini",
        "RAG_MAX_CHUNK_TOKENS": "128",
        "RAG_TOP_K": "3",
        "RAG_MODE": "bm25",
        "RAG_HOST": "0.0.0.0",
        "RAG_PORT": "8080",
    }
    assert Settings.from_env(env=env) == Settings(
        notes_dir=Path("/srv/notes"),
        index_dir=Path("idx"),
        model_path="/models/mini",
        max_chunk_tokens=128,
        top_k=3,
        mode="bm25",
        host="0.0.0.0",
        port=8080,
    )
    assert Settings.from_env(env=env).model == "/models/mini"


def test_process_env_is_the_default(monkeypatch):
    monkeypatch.setenv("RAG_TOP_K", "7")
    monkeypatch.delenv("RAG_MODE", raising=False)
    assert Settings.from_env().top_k == 7


def test_overrides_win_and_none_falls_back():
    env = {"RAG_TOP_K": "9", "RAG_NOTES_DIR": "env-notes", "RAG_MODE": "dense"}
    s = Settings.from_env(env=env, top_k=2, notes_dir="flag-notes", mode=None)
    assert (s.top_k, s.notes_dir, s.mode) == (2, Path("flag-notes"), "dense")


def test_an_empty_env_value_means_unset():
    assert Settings.from_env(env={"RAG_TOP_K": "", "RAG_MODE": ""}) == Settings()


def test_bad_mode_is_a_clear_error():
    with pytest.raises(ValueError) as err:
        Settings.from_env(env={"RAG_MODE": "fast"})
    assert str(err.value) == "mode must be one of hybrid, bm25, dense, not 'fast'"
    with pytest.raises(ValueError, match="not 'BM25'"):
        Settings.from_env(env={}, mode="BM25")


@pytest.mark.parametrize("raw", ["five", "7.5", "1e3"])
def test_bad_int_is_a_clear_error(raw):
    with pytest.raises(ValueError) as err:
        Settings.from_env(env={"RAG_TOP_K": raw})
    assert str(err.value) == f"top_k must be a whole number, not {raw!r}"


def test_out_of_range_values_are_clear_errors():
    with pytest.raises(ValueError) as err:
        Settings.from_env(env={"RAG_TOP_K": "0"})
    assert str(err.value) == "top_k must be at least 1, not 0"
    with pytest.raises(ValueError) as err:
        Settings.from_env(env={}, max_chunk_tokens=31)
    assert str(err.value) == "max_chunk_tokens must be at least 32, not 31"
    assert Settings.from_env(env={}, max_chunk_tokens=32).max_chunk_tokens == 32


def test_a_misspelt_override_is_an_error_not_ignored():
    # `top_K=3` silently doing nothing would leave the default 5 in force unnoticed.
    with pytest.raises((TypeError, ValueError), match="top_K"):
        Settings.from_env(env={}, top_K=3)


def test_the_index_of_notes_outside_the_checkout_goes_to_the_user_cache(tmp_path, monkeypatch):
    from rag.settings import default_index_dir

    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    vault, other = tmp_path / "vault", tmp_path / "work" / "vault"
    a, b = default_index_dir(vault, env), default_index_dir(other, env)
    assert a.parent.parent == tmp_path / "cache" / "rag" and a.name == "index"
    assert a.parent.name.startswith("vault-") and a != b  # one per notes folder, same name
    assert default_index_dir(vault, env) == a  # and the same one every time
    assert Settings.from_env(env=env, notes_dir=vault).index_dir == a
    assert Settings.from_env(env=env, notes_dir=vault, index_dir=tmp_path / "i").index_dir == (
        tmp_path / "i"
    )
    checkout = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(tmp_path)  # the repo's own notes, from anywhere: the repo's index/
    assert default_index_dir(checkout / "notes", env) == checkout / "index"


@pytest.mark.parametrize(
    ("setting", "uri"),
    [
        ("vscode", "vscode://file{root}/a%20b/c.md:7"),
        ("obsidian", "obsidian://open?vault=notes&file=a%20b%2Fc.md"),
        ("file", "file://{root}/a%20b/c.md"),
        ("myed://open?f={path}&l={line}-{end_line}", "myed://open?f=a%20b%2Fc.md&l=7-9"),
    ],
)
def test_editor_uris(tmp_path, setting, uri):
    root = tmp_path / "notes"
    editor = Settings.from_env(env={}, notes_dir=root, editor=setting).links
    assert editor.uri("a b/c.md", 7, 9) == uri.format(root=root.resolve())


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("javascript:alert(1)//{line}", "run code"),
        ("DATA:text/html,{path}", "run code"),
        ("vscode://file{abs_path}:{col}", "{col}"),
        ("sublime", "must be one of vscode"),
        ("x://{line", "malformed"),
    ],
)
def test_bad_editor_templates_are_refused(setting, says):
    with pytest.raises(BadInput, match=re.escape(says)):
        Settings.from_env(env={}, editor=setting)
