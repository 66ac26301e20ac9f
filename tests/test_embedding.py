"""The ONNX fast path for questions and its int8 copy for note text, against torch, with the
real model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rag.index.embedding
import rag.index.onnx
from rag.index.embedding import SMALL_CALL, SentenceTransformerEmbedder, warm_up
from rag.index.onnx import BULK_MIN_COSINE, TOLERANCE, Head, Tokenizer, model_head
from rag.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TEXTS = [
    "max sqs message size",
    "  What is the DEFAULT visibility timeout?  ",  # stripped; the model is uncased
    "iam:PassRole on gp3, 256KB",
    "x",
    "retention " * 400,  # past the model's 256 tokens: truncated alike
]


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A cache folder holding the export of the packaged model and its int8 copy, made once."""
    cache = tmp_path_factory.mktemp("onnx")
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert embedder.fast_path() is not None, embedder.fast_problem
    assert embedder.bulk_path() is not None, embedder.bulk_problem
    return cache


def _copy(cache, tmp_path):
    """A copy of the cache: (folder, the export, its int8 copy)."""
    shutil.copytree(cache, tmp_path / "cache")
    [bulk] = (tmp_path / "cache").glob("*-int8-*.onnx")
    [file] = set((tmp_path / "cache").glob("*.onnx")) - {bulk}
    return tmp_path / "cache", file, bulk


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
    fast, torch = embedder.embed(MANY), embedder.embed_torch(MANY)
    assert fast.dtype == np.float32 and fast.shape == (len(MANY), 384)
    assert not (fast == torch).all()  # not the torch path
    assert np.abs(fast - torch).max() <= TOLERANCE


WORDS = "queue visibility timeout message retention shard replica bucket".split()
MANY = [" ".join(WORDS[: 1 + i % 8]) + f" {i}" * (i % 5) for i in range(3 * SMALL_CALL)] + TEXTS


def test_note_text_goes_through_the_int8_copy_one_text_a_run(warm_cache):
    """Close to torch's vectors, and a text's vector is the same in any call: alone, among a
    few (one thread), or among many (one run per core)."""
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=warm_cache)
    assert embedder.documents_encoder.startswith("onnx-int8-v")
    many, torch = embedder.embed_documents(MANY), embedder.embed_torch(MANY)
    assert many.dtype == np.float32 and many.shape == (len(MANY), 384)
    assert np.allclose(np.linalg.norm(many, axis=1), 1, atol=1e-5)
    cosines = (many * torch).sum(axis=1)
    assert cosines.min() >= BULK_MIN_COSINE and np.abs(many - torch).max() > TOLERANCE
    few = np.concatenate([embedder.embed_documents(MANY[a : a + 7]) for a in range(0, 35, 7)])
    alone = np.concatenate([embedder.embed_documents([t]) for t in MANY[-5:]])
    assert (few == many[:35]).all() and (alone == many[-5:]).all()
    # Questions stay float: a question's vector is torch's.
    assert np.abs(embedder.embed(TEXTS) - embedder.embed_torch(TEXTS)).max() <= TOLERANCE


def _many_notes(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    sections = [
        f"## Topic {i}\n" + "".join(f"- fact {i}.{j} of topic {i}\n" for j in range(8))
        for i in range(32)
    ]
    (notes / "many.md").write_text("# Many\n" + "\n".join(sections), encoding="utf-8")
    return notes


def test_an_index_stores_the_int8_vectors_and_says_so(warm_cache, tmp_path):
    from rag.index.build import update_index
    from rag.index.store import load_index

    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=warm_cache)
    update_index(_many_notes(tmp_path), tmp_path / "index", embedder, 200)
    index = load_index(tmp_path / "index", embedder.name, embedder.dim, 200)
    assert index.manifest.encoder == embedder.documents_encoder != "float32"
    texts = [c.indexed_text for c in index.chunks]
    assert (index.dense.vectors() == embedder.embed_documents(texts)).all()


def test_an_index_of_float_vectors_is_embedded_again_not_mixed(warm_cache, tmp_path, monkeypatch):
    """An index from before the int8 copy (or made without onnxruntime) keeps float vectors:
    the next update embeds every text again rather than mix the two; then nothing more."""
    from rag.index.build import update_index
    from rag.index.store import load_index

    notes, where = _many_notes(tmp_path), tmp_path / "index"
    with monkeypatch.context() as m:
        m.setattr(rag.index.embedding, "open_bulk", lambda *a: (None, "no onnxruntime here"))
        plain = SentenceTransformerEmbedder(Settings().model, cache_dir=warm_cache)
        assert plain.documents_encoder == "float32"
        first = update_index(notes, where, plain, 200)
    index = load_index(where, plain.name, plain.dim, 200)
    assert index.manifest.encoder == "float32"
    torch = plain.embed_torch([c.indexed_text for c in index.chunks[:3]])
    assert np.abs(index.dense.vectors()[:3] - torch).max() <= TOLERANCE

    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=warm_cache)
    again = update_index(notes, where, embedder, 200)
    assert again.embedded == first.embedded > 0 and "float32" in again.rebuild_reason
    assert load_index(where, embedder.name, embedder.dim, 200).manifest.encoder != "float32"
    assert update_index(notes, where, embedder, 200).embedded == 0


def test_the_cached_export_is_reused(warm_cache, tmp_path, monkeypatch):
    cache, file, bulk = _copy(warm_cache, tmp_path)
    before = file.read_bytes(), bulk.read_bytes()

    def no_export(*args):
        raise AssertionError("the cached file should have been used")

    monkeypatch.setattr(rag.index.onnx, "export_onnx", no_export)
    monkeypatch.setattr(rag.index.onnx, "quantize_onnx", no_export)
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert embedder.fast_path() is not None, embedder.fast_problem
    assert embedder.bulk_path() is not None, embedder.bulk_problem
    assert embedder.fast_path().file == file and embedder.bulk_path().file == bulk
    assert (file.read_bytes(), bulk.read_bytes()) == before
    assert set(cache.iterdir()) == {file, bulk}  # no temporary file left behind


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_broken_cached_file_is_exported_again(warm_cache, tmp_path, damage):
    cache, file, bulk = _copy(warm_cache, tmp_path)
    good = file.read_bytes()
    file.write_bytes(b"not an onnx file" if damage == "garbage" else good[: len(good) // 2])
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert embedder.fast_path() is not None, embedder.fast_problem
    assert file.stat().st_size > len(good) // 2 and set(cache.iterdir()) == {file, bulk}
    assert np.abs(embedder.embed(TEXTS) - embedder.embed_torch(TEXTS)).max() <= TOLERANCE


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_broken_int8_copy_is_made_again(warm_cache, tmp_path, damage):
    cache, file, bulk = _copy(warm_cache, tmp_path)
    good = bulk.read_bytes()
    bulk.write_bytes(b"not an onnx file" if damage == "garbage" else good[: len(good) // 2])
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert embedder.bulk_path() is not None, embedder.bulk_problem
    assert bulk.read_bytes() == good and set(cache.iterdir()) == {file, bulk}


def test_torch_answers_when_the_export_fails_too(warm_cache, tmp_path, monkeypatch):
    cache, file, bulk = _copy(warm_cache, tmp_path)
    file.write_bytes(b"not an onnx file")
    bulk.unlink()

    def failing_export(*args):
        raise RuntimeError("exporter unavailable")

    monkeypatch.setattr(rag.index.onnx, "export_onnx", failing_export)
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert "exporter unavailable" in warm_up(embedder) and embedder.fast_path() is None
    vectors = embedder.embed(TEXTS[:2])  # no error: the torch path answers
    assert (vectors == embedder.embed_torch(TEXTS[:2])).all()
    # Note text too, and the index says so.
    assert embedder.documents_encoder == "float32" and embedder.bulk_path() is None
    assert "exporter unavailable" in embedder.bulk_problem
    assert (embedder.embed_documents(TEXTS[:2]) == vectors).all()


def test_an_export_without_its_probe_vectors_is_made_again(warm_cache, tmp_path):
    """An export from before the probe vectors rode in its metadata cannot be checked without
    torch: it is exported again, and its int8 copy made again from it."""
    import onnx

    cache, file, bulk = _copy(warm_cache, tmp_path)
    for made in (file, bulk):
        model = onnx.load(str(made))
        del model.metadata_props[:]
        onnx.save(model, str(made))
    embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=cache)
    assert embedder.fast_path() is not None and embedder.bulk_path() is not None
    assert embedder.fast_path().probe() is not None and embedder.bulk_path().probe() is not None


def test_the_tokenizer_gives_the_ids_sentence_transformers_makes(embedder):
    """Every line of the default notes, and the odd texts: the same ids, mask and type ids
    as sentence-transformers' own tokenization, and the same counts as its tokenizer."""
    texts = (ROOT / "notes" / "aws-notes.md").read_text(encoding="utf-8").splitlines() + TEXTS
    texts += ["", "héllo wörld ñ 日本語 🙂", "\t tab\u00a0nbsp  "]
    _, tokenizer = embedder.onnx_parts()
    ours, theirs = tokenizer(texts), embedder.model[0].preprocess(texts)
    for name, ids in ours.items():
        assert (ids == theirs[name].numpy()).all(), name
    plain = embedder.model.tokenizer(texts, add_special_tokens=False, verbose=False)
    assert embedder.count_tokens(texts) == [len(ids) for ids in plain["input_ids"]]


def test_a_tokenizer_file_without_padding_pads_with_the_models_pad_token(embedder, tmp_path):
    model = Path(Settings().model)
    for name in ("sentence_bert_config.json", "special_tokens_map.json"):
        shutil.copy(model / name, tmp_path / name)
    tokenizer = json.loads((model / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["padding"] = tokenizer["truncation"] = None
    (tmp_path / "tokenizer.json").write_text(json.dumps(tokenizer), encoding="utf-8")
    texts = ["a", "What is the largest message an SQS queue accepts?"]
    ours, theirs = Tokenizer(tmp_path)(texts), embedder.onnx_parts()[1](texts)
    assert all((ours[name] == theirs[name]).all() for name in theirs)
    (tmp_path / "special_tokens_map.json").unlink()
    with pytest.raises(ValueError, match="no pad token"):
        Tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="tokenizer.json"):
        Tokenizer(tmp_path)  # the embedder then keeps torch: a clear reason, not a crash


def test_questions_and_notes_never_load_torch_once_exported(warm_cache):
    """A process that finds both files cached embeds questions and notes and counts tokens
    without importing torch or sentence-transformers (5-6 s of every start)."""
    code = f"""
import sys
from pathlib import Path
from rag.index.embedding import SentenceTransformerEmbedder
from rag.settings import Settings
embedder = SentenceTransformerEmbedder(Settings().model, cache_dir=Path({str(warm_cache)!r}))
assert embedder.embed(["max sqs message size"]).shape == (1, 384)
assert embedder.embed_documents(["a line of a note"] * 40).shape == (40, 384)
assert embedder.count_tokens(["a line"]) == [2]
print([m for m in ("torch", "sentence_transformers", "transformers") if m in sys.modules])
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stderr


def test_model_head_reads_the_config(tmp_path):
    assert model_head(SentenceTransformerEmbedder(Settings().model).path) == Head("mean", True, 384)
    (tmp_path / "1_Pooling").mkdir()
    kinds = "sentence_transformers.models"
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": f"{kinds}.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": f"{kinds}.Pooling"},
    ]
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    pooling = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}
    pooling["word_embedding_dimension"] = 8
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    assert model_head(tmp_path) == Head("cls", normalize=False, dim=8)
    pooling["pooling_mode_mean_tokens"] = True  # two modes concatenated: not the fast path's
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    with pytest.raises(ValueError, match="pooling"):
        model_head(tmp_path)
    modules.append({"idx": 2, "name": "2", "path": "2_Dense", "type": "x.models.Dense"})
    (tmp_path / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ValueError, match="modules"):
        model_head(tmp_path)
