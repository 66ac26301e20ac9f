"""Note text through an int8 copy of the network, measured: a full build of the default notes and
its quality on the eval's tune split, against the float network. Scored on the tune split only:
this decides a design.

    python bench/quantize.py      # prints a markdown table (about 3 minutes here)

Result and decision: docs/chunking.md ("Why note text goes through an int8 copy").
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.measure import markdown_table  # noqa: E402


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from rag.index.build import update_index
    from rag.index.embedding import SentenceTransformerEmbedder
    from rag.index.onnx import OnnxEncoder, quantize_onnx
    from rag.index.store import load_index
    from rag.quality.evaluate import evaluate, load_cases
    from rag.search.engine import Engine, Tuning
    from rag.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="rag-int8-"))
    try:
        shutil.copytree(ROOT / "notes", work / "notes")
        settings = Settings.from_env(env={}, notes_dir=work / "notes", index_dir=work / "index")
        embedder = SentenceTransformerEmbedder(settings.model, cache_dir=work / "onnx")
        fast = embedder.fast_path()
        assert fast is not None, embedder.fast_problem
        head, tokenizer = embedder.onnx_parts()
        every_op, shipped = work / "every-op.onnx", work / "shipped.onnx"
        quantize_dynamic(str(fast.file), str(every_op), weight_type=QuantType.QInt8)
        quantize_onnx(fast.file, shipped)
        cases = [c for c in load_cases(ROOT / "eval/questions.jsonl") if c.split == "tune"]
        cases += load_cases(ROOT / "eval/tune_extra.jsonl")
        options = [
            ("float32 (before)", fast, fast),
            ("int8, every operator (quantize_dynamic's default)", every_op, fast),
            ("int8 matrix weights, per channel, 7 bits: notes only (as shipped)", shipped, fast),
            ("the same, questions too", shipped, shipped),
        ]
        rows, reference = [], None
        for n, (name, notes, questions) in enumerate(options):
            notes_encoder = notes if notes is fast else OnnxEncoder(notes, tokenizer, head)
            question_encoder = notes_encoder if questions is notes else fast
            embedder._bulk, embedder._bulk_tried = notes_encoder, True
            embedder._fast, embedder._fast_tried = question_encoder, True
            start = time.perf_counter()
            update_index(work / "notes", work / f"index-{n}", embedder, settings.max_chunk_tokens)
            seconds = time.perf_counter() - start
            index = load_index(work / f"index-{n}", embedder.name, embedder.dim, None)
            vectors = index.units.vectors()
            reference = vectors if reference is None else reference
            cosine = float((vectors * reference).sum(axis=1).min())
            report = evaluate(Engine(index, embedder, Tuning()), cases)
            rows.append(_row(name, seconds, cosine, report))
        headers = ["note vectors", "full build s", "min cosine", "R@1", "MRR@10", "first citation"]
        print(f"{len(cases)} tune questions, hybrid, the default notes; min cosine: of each line")
        print("vector to the float one\n")
        print(markdown_table(headers, rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _row(name: str, seconds: float, cosine: float, report: dict) -> tuple:
    r = report["retrieval"]["hybrid"]["overall"]
    first = report["answers"]["first_citation_accuracy"]
    return (
        name,
        f"{seconds:.1f}",
        f"{cosine:.3f}",
        f"{r['R@1']:.3f}",
        f"{r['MRR@10']:.3f}",
        f"{first:.3f}",
    )


if __name__ == "__main__":
    main()
