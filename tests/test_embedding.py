"""The ONNX fast path, for questions and bulk encoding, against torch, with the real model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import rag.index.onnx
from rag.index.embedding import SMALL_CALL, SentenceTransformerEmbedder, warm_up
from rag.index.onnx import TOLERANCE, Head, model_head
from rag.settings import Settings

TEXTS = [
    "max sqs message size",
    "  What is the DEFAULT visibility timeout?  ",  # stripped; the model is uncased
    "iam:PassRole on gp3, 256KB",
    "x",
    "retention " * 400,  # past the model's 256 tokens: truncated alike
]


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache folder holding the export of the packaged model, made once."""
    cache = tmp_path_factory.mktemp("onnx")
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert embedder.fast_path() is not None, embedder.fast_problem
    return cache


def _copy(cache, tmp_path):
    shutil.copytree(cache, tmp_path / "cache")
    [file] = (tmp_path / "cache").glob("*.onnx")
    return tmp_path / "cache", file


def test_fast_path_gives_the_torch_vectors(warm_cache):
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=warm_cache)
    assert warm_up(embedder) == "" and embedder.fast_path() is not None
    fast = embedder.embed(TEXTS)
    assert fast.dtype == np.float32 and not (fast == embedder.embed_torch(TEXTS)).all()
    torch = embedder.embed_torch(TEXTS)
    assert fast.dtype == np.float32 and fast.shape == (len(TEXTS), 384)
    assert np.abs(fast - torch).max() <= TOLERANCE
    assert np.allclose(np.linalg.norm(fast, axis=1), 1, atol=1e-6)
    one = np.concatenate([embedder.embed([t]) for t in TEXTS])  # no padding: same vectors
    assert np.abs(one - torch).max() <= TOLERANCE
    # The nearest text of each is itself, and the ranking of the rest is the torch one.
    assert (np.argsort(-(fast @ fast.T), axis=1) == np.argsort(-(torch @ torch.T), axis=1)).all()


def test_bulk_calls_go_through_onnx_in_their_order(warm_cache):
    """Past SMALL_CALL texts: small batches of like length, one per core, put back in order."""
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=warm_cache)
    warm_up(embedder)
    words = "queue visibility timeout message retention shard replica bucket".split()
    texts = [" ".join(words[: 1 + i % 8]) + f" {i}" * (i % 5) for i in range(3 * SMALL_CALL)]
    texts += TEXTS
    fast, torch = embedder.embed(texts), embedder.embed_torch(texts)
    assert fast.dtype == np.float32 and fast.shape == (len(texts), 384)
    assert not (fast == torch).all()  # not the torch path
    assert np.abs(fast - torch).max() <= TOLERANCE


def test_an_index_build_of_many_texts_opens_the_fast_path(warm_cache, tmp_path):
    from rag.index.build import OPEN_FAST_PATH, update_index
    from rag.index.store import load_index

    notes = tmp_path / "notes"
    notes.mkdir()
    sections = [
        f"## Topic {i}\n" + "".join(f"- fact {i}.{j} of topic {i}\n" for j in range(8))
        for i in range(OPEN_FAST_PATH // 8)
    ]
    (notes / "many.md").write_text("# Many\n" + "\n".join(sections), encoding="utf-8")
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=warm_cache)
    update_index(notes, tmp_path / "index", embedder, 200)
    index = load_index(tmp_path / "index", embedder.name, embedder.dim, 200)
    built = index.dense.vectors()
    torch = embedder.embed_torch([c.indexed_text for c in index.chunks])
    assert not (built == torch).all()  # made by ONNX Runtime, not torch
    assert np.abs(built - torch).max() <= TOLERANCE


def test_the_cached_export_is_reused(warm_cache, tmp_path, monkeypatch):
    cache, file = _copy(warm_cache, tmp_path)
    before = file.read_bytes()

    def no_export(*args):
        raise AssertionError("the cached file should have been used")

    monkeypatch.setattr(rag.index.onnx, "export_onnx", no_export)
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert embedder.fast_path() is not None, embedder.fast_problem
    assert embedder.fast_path().file == file and file.read_bytes() == before
    assert list(cache.iterdir()) == [file]  # no temporary file left behind


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_broken_cached_file_is_exported_again(warm_cache, tmp_path, damage):
    cache, file = _copy(warm_cache, tmp_path)
    good = file.read_bytes()
    file.write_bytes(b"not an onnx file" if damage == "garbage" else good[: len(good) // 2])
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert embedder.fast_path() is not None, embedder.fast_problem
    assert file.stat().st_size > len(good) // 2 and list(cache.iterdir()) == [file]
    assert np.abs(embedder.embed(TEXTS) - embedder.embed_torch(TEXTS)).max() <= TOLERANCE


def test_torch_answers_when_the_export_fails_too(warm_cache, tmp_path, monkeypatch):
    cache, file = _copy(warm_cache, tmp_path)
    file.write_bytes(b"not an onnx file")

    def failing_export(*args):
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(rag.index.onnx, "export_onnx", failing_export)
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert "exporter unavailable" in warm_up(embedder) and embedder.fast_path() is None
    vectors = embedder.embed(TEXTS[:2])  # no error: the torch path answers
    assert (vectors == embedder.embed_torch(TEXTS[:2])).all()


def test_model_head_reads_the_config(tmp_path):
    assert model_head(SentenceTransformerEmbedder(Settings().model).path) == Head("mean", True)
    (tmp_path / "1_Pooling").mkdir()
    kinds = "sentence_transformers.models"
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": f"{kinds}.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": f"{kinds}.Pooling"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    pooling = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    assert model_head(tmp_path) == Head("cls", normalize=False)
    pooling["pooling_mode_mean_tokens"] = True  # two modes concatenated: not the fast path's
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(ValueError, match="pooling"):
        model_head(tmp_path)
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "x.models.Dense"})
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="modules"):
        model_head(tmp_path)
