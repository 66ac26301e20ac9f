"""The embedding model's own network exported once to ONNX Runtime, for questions and notes.

    encoder, problem = open_onnx(embedder, cache)   # (OnnxEncoder, "") or (None, why not)
    encoder.embed(["max sqs message size"])         # the torch vectors, within TOLERANCE
    bulk, problem = open_bulk(embedder, cache)      # the same export with int8 weights
    bulk.embed_many(texts, workers=2)               # note text: 2.5x torch, cosine ~0.99

The export is the transformer's last hidden state; the pooling and normalisation the model's
sentence-transformers config names follow in numpy (`Head`). A question takes 4-5 ms here
against 12-13 ms through torch (docs/benchmarks.md). Cached in the user cache under a hash of
the model's files and torch's version, so a changed model or torch exports anew.

Once exported, neither file needs torch: text is tokenized by the model's own tokenizer.json
(`Tokenizer`, the ids sentence-transformers makes), and each file carries the vectors torch
gave a few probe texts when it was exported, which it must give again when opened. A process
that finds both files cached never imports torch or sentence-transformers (5-6 s of a start).

Notes are embedded by `open_bulk`'s copy, whose matrix weights are int8 (per output channel,
7-bit for CPUs without VNNI): a full build takes half the time, and its vectors keep a cosine
of 0.98-1.0 to the float ones. Questions stay float32. Decided on the eval's tune split, which
lost nothing (docs/chunking.md, "Why note text goes through an int8 copy").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from rag.index.embedding import SentenceTransformerEmbedder

FAST_VERSION = 1  # of the export below; part of the cached file's name
TOLERANCE = 1e-5  # largest difference from torch's vector the fast path may make
BULK_BATCH = 1  # texts a run in `embed_many`: no padding at all (bench: docs/benchmarks.md)
BULK_VERSION = 1  # of the quantisation in `quantize_onnx`; part of its file's name
# Lowest cosine to torch the int8 copy may give a probe text: the tune split's 2,973 lines
# gave 0.984 and up, so below this the copy is broken, not merely rounded.
BULK_MIN_COSINE = 0.97
# Short, long (past any model's limit: truncation), spaced and mixed case (the tokenizer's own
# casing and stripping): the ids must be those sentence-transformers makes for torch.
_PROBE = [
    "a",
    "What is the largest message an SQS queue accepts, and can it be raised?",
    "  Mixed CASE text,\twith   spaces  ",
    "retention period " * 300,
]
PROBE_KEY = "rag.probe"  # the export's metadata: torch's vectors of _PROBE, as JSON


class Head(NamedTuple):
    """What follows the network, from the model's modules.json and pooling config."""

    pooling: Literal["mean", "cls", "max"]
    normalize: bool
    dim: int  # of the vectors


class Tokenizer:
    """The model's tokenization from its tokenizer.json, without torch or transformers: the
    ids, mask and type ids sentence-transformers makes for the network (the probe checks), and
    token counts for the cutter. ValueError for a model without one."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer as Fast

        file, config = path / "tokenizer.json", path / "sentence_bert_config.json"
        settings = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
        if not file.is_file() or "max_seq_length" not in settings:
            raise ValueError(f"{path} has no tokenizer.json and max_seq_length to tokenize by")
        if settings.get("do_lower_case"):
            raise ValueError("do_lower_case: the fast path tokenizes as tokenizer.json says only")
        self.max_tokens = int(settings["max_seq_length"])
        try:
            self._count, self._fit = Fast.from_file(str(file)), Fast.from_file(str(file))
        except Exception as e:  # tokenizers raises a bare Exception for a file it cannot read
            raise ValueError(f"{file}: {e}") from e
        self._count.no_padding()  # a file's own padding and truncation dropped
        self._count.no_truncation()
        pad = self._fit.padding or _pad_token(path, self._fit)  # cut, padded to the longest
        self._fit.enable_padding(pad_id=pad["pad_id"], pad_token=pad["pad_token"])
        self._fit.enable_truncation(self.max_tokens)

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        found = self._fit.encode_batch(texts)
        return {
            "input_ids": np.array([e.ids for e in found], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in found], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in found], dtype=np.int64),
        }

    def count(self, texts: list[str]) -> list[int]:
        """Tokens of each text, without the model's special tokens and without a limit."""
        return [len(e.ids) for e in self._count.encode_batch(texts, add_special_tokens=False)]


def _pad_token(path: Path, tokenizer) -> dict:
    """The pad token a tokenizer.json without padding settings pads with: the model's
    special_tokens_map.json names it (the attention mask hides it from the vectors)."""
    names = path / "special_tokens_map.json"
    token = (
        json.loads(names.read_text(encoding="utf-8")).get("pad_token") if names.is_file() else None
    )
    token = token.get("content") if isinstance(token, dict) else token
    if token is None or tokenizer.token_to_id(token) is None:
        raise ValueError(f"{path} names no pad token its tokenizer.json knows")
    return {"pad_id": tokenizer.token_to_id(token), "pad_token": token}


class OnnxEncoder:
    """The exported network in ONNX Runtime, then the model's pooling and normalisation."""

    def __init__(self, file: Path, tokenizer: Tokenizer, head: Head, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One question is one thread's work (see SentenceTransformerEmbedder.embed_torch).
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        options.log_severity_level = 3  # errors only
        self.file, self.head = file, head
        self._session = ort.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]
        self._tokenize = tokenizer

    def probe(self) -> np.ndarray | None:
        """The vectors torch gave the probe texts when this file was exported, if it says."""
        stored = self._session.get_modelmeta().custom_metadata_map.get(PROBE_KEY)
        return None if stored is None else np.array(json.loads(stored), dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        features = self._tokenize(texts)
        feeds = {name: features[name] for name in self._inputs}
        hidden = self._session.run(None, feeds)[0]  # (texts, tokens, dim)
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        if self.head.pooling == "cls":
            pooled = hidden[:, 0]
        elif self.head.pooling == "max":
            pooled = np.where(mask > 0, hidden, -1e9).max(axis=1)
        else:
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if self.head.normalize:
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(pooled, dtype=np.float32)

    def embed_many(self, texts: list[str], workers: int, batch: int = BULK_BATCH) -> np.ndarray:
        """Many texts, `workers` small batches at once. ONNX Runtime runs outside the GIL and
        a session takes concurrent runs, each on its caller's one thread: on 2 cores two
        one-thread runs of short batches beat one two-thread run of a long one, and beat
        torch's bulk path (docs/benchmarks.md). A batch holds texts of like length, so little
        of it is padding."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        pieces = [order[a : a + batch] for a in range(0, len(order), batch)]
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="rag-onnx") as pool:
            done = list(pool.map(lambda rows: self.embed([texts[i] for i in rows]), pieces))
        out = np.zeros((len(texts), done[0].shape[1] if done else 0), dtype=np.float32)
        for rows, vectors in zip(pieces, done, strict=True):
            out[rows] = vectors
        return out


def open_onnx(embedder: SentenceTransformerEmbedder, cache: Path) -> tuple[OnnxEncoder | None, str]:
    """Load the cached export, or export it; a file that fails to load or does not give the
    probe vectors torch gave when it was exported is exported again, once. Any failure
    leaves the caller on torch."""
    try:
        head, tokenizer = embedder.onnx_parts()
        import onnxruntime  # noqa: F401
    except (ImportError, ValueError) as e:
        return None, str(e)
    file = cache / f"{_content_hash(embedder.path)}.onnx"
    problem = ""
    for again in (False, True):
        try:
            if again or not file.is_file():
                export_onnx(embedder, file)
            encoder = OnnxEncoder(file, tokenizer, head)
            if (torch := encoder.probe()) is None:
                problem = f"{file} holds no probe vectors (an older export)"
                continue
            ours = np.concatenate([encoder.embed([t]) for t in _PROBE])  # unpadded: 0.1 s
            diff = float(np.abs(ours - torch).max())
            if diff <= TOLERANCE:
                return encoder, ""
            problem = f"{file} differs from torch by {diff:.1e}"
        except Exception as e:  # onnxruntime and the exporter raise many kinds: all mean "no"
            problem = f"{file}: {type(e).__name__}: {e}"[:300]
    return None, problem


def open_bulk(embedder: SentenceTransformerEmbedder, cache: Path) -> tuple[OnnxEncoder | None, str]:
    """The int8 copy of the export for note text: made (1.5 s, once) from the cached export,
    which is exported first if missing. A copy that fails to load, or whose probe vectors are
    too far from torch's (as the export recorded them), is made again once; any failure
    leaves notes on the float path."""
    try:
        head, tokenizer = embedder.onnx_parts()
        import onnxruntime.quantization  # noqa: F401
    except (ImportError, ValueError) as e:
        return None, str(e)
    name = _content_hash(embedder.path)
    export, file = cache / f"{name}.onnx", cache / f"{name}-int8-v{BULK_VERSION}.onnx"
    problem = ""
    for again in (False, True):
        try:
            if again or not file.is_file():
                if again or not export.is_file():
                    export_onnx(embedder, export)
                quantize_onnx(export, file)
            encoder = OnnxEncoder(file, tokenizer, head)
            if (torch := encoder.probe()) is None:  # the quantizer keeps the export's metadata
                problem = f"{file} holds no probe vectors (made from an older export)"
                continue
            cosine = (encoder.embed_many(_PROBE, 1) * torch).sum(axis=1)
            if cosine.min() >= BULK_MIN_COSINE:
                return encoder, ""
            problem = f"{file}: cosine {cosine.min():.3f} to torch"
        except Exception as e:  # as in open_onnx: every failure means "no"
            problem = f"{file}: {type(e).__name__}: {e}"[:300]
    return None, problem


def quantize_onnx(export: Path, file: Path) -> None:
    """Write `export` with the weights of its matrix products as int8, atomically. Only
    products by a stored weight are quantised: the attention's own products (of two
    activations) and the embedding lookups stay float, which cost little and keep vectors
    close. `reduce_range` keeps 7 bits, so CPUs without VNNI do not overflow."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(export), load_external_data=False).graph
    stored = {w.name for w in graph.initializer}
    weighted = [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in stored]
    tmp = file.with_name(f"{file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    quiet = _Quiet()  # it advises "pre-processing" on the root logger, every time
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(
            str(export),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=weighted,
        )
        os.replace(tmp, file)
    finally:
        logging.getLogger().removeFilter(quiet)
        tmp.unlink(missing_ok=True)


class _Quiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-process" not in record.getMessage()


def model_head(path: Path) -> Head:
    """What follows the network; ValueError if it is anything the fast path does not know."""
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
    if "word_embedding_dimension" not in config:
        raise ValueError(f"pooling {config}: no word_embedding_dimension")
    return Head(names[modes[0]], kinds[-1] == "Normalize", int(config["word_embedding_dimension"]))


def export_onnx(embedder: SentenceTransformerEmbedder, file: Path) -> None:
    """Write the transformer's last hidden state as ONNX, atomically (a reader sees the old
    file or the whole new one), with torch's vectors of the probe texts in its metadata."""
    import onnx
    import torch

    network = embedder.model[0].auto_model.eval()
    features = _preprocess(embedder.model)(["an example"])
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
        exported = onnx.load(str(tmp))
        probe = embedder.embed_torch(_PROBE).tolist()  # float32 values: exact in JSON
        onnx.helper.set_model_props(exported, {PROBE_KEY: json.dumps(probe)})
        onnx.save(exported, str(tmp))
        os.replace(tmp, file)
    finally:
        tmp.unlink(missing_ok=True)


def _preprocess(model):
    """sentence-transformers' tokenization, to trace the export with: `preprocess` in newer
    sentence-transformers, `tokenize` (deprecated there) in older."""
    return getattr(model, "preprocess", None) or model.tokenize


def _content_hash(path: Path) -> str:
    """Every file of the model folder, and what the export depends on: a changed model or
    torch makes a new file (0.1 s for the packaged model's 90 MB). torch is not imported."""
    digest = hashlib.sha256(f"v{FAST_VERSION} torch {version('torch')}\0".encode())
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{f.relative_to(path)}\0".encode() + f.read_bytes())
    return digest.hexdigest()[:24]
