"""The optional llama-cpp-python runtime of the local backend (``PAPERCODER_LOCAL_RUNTIME=
llama-cpp-python``, or when xllamacpp is not installed): for users who built
llama-cpp-python themselves. The default runtime is xllamacpp (:mod:`papercoder.models.local`).
Calls run one at a time on one worker thread, so the event loop stays
free and concurrent ``complete()`` calls queue. Consecutive calls that resend the same long
prefix (paper, plan) reuse llama.cpp's KV cache for it. A schema becomes a llama.cpp grammar,
so even a tiny model can only produce JSON of the requested shape.

``timeout`` (the CLI's ``--timeout``) bounds each call's own work, prompt processing included:
llama.cpp's abort callback stops a decode past the deadline, a stopping criterion stops the
sampling loop, and the call fails with the same one sentence as a hosted backend's timeout.
Time spent queued behind another call does not count.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.metadata
import importlib.util
import json
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

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
from papercoder.models.local import bounded, embedded_model_path

INSTALL_HINT = "pip install llama-cpp-python (it builds llama.cpp from source, minutes)"
MAX_CONTEXT = 32768
"""Largest context allocated even when a model was trained for more (KV-cache memory)."""
DEFAULT_TEMPERATURE = 0.2
SEED = 1234
"""Fixed sampling seed: the same request gives the same answer."""
REPEAT_PENALTY = 1.1
"""llama.cpp's classic default over the last 64 tokens; without it small models loop (a JSON
list repeated until max_tokens)."""
FALLBACK_CHAT_FORMAT = "chatml"
"""Used when a GGUF file carries no chat template of its own."""


def _require_llama_cpp() -> None:
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(
            f"Local models need llama-cpp-python, which is not installed; run {INSTALL_HINT}."
        )


def _llama_cpp() -> Any:
    """The llama_cpp module, with llama.cpp's log lines down to errors only."""
    try:
        import llama_cpp
        import llama_cpp.llama  # noqa: F401  (installs llama-cpp-python's log routing)
    except (ImportError, OSError, RuntimeError) as e:
        raise ConfigError(
            f"llama-cpp-python is installed but does not load ({e}); reinstall it with "
            f"{INSTALL_HINT}."
        ) from None
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    return llama_cpp


def read_context_length(path: Path) -> int | None:
    """The context length a GGUF model was trained for, read from its metadata only."""
    llama_cpp = _llama_cpp()
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise ConfigError(f"Could not read {path} as a GGUF model file; check the path and file.")
    try:
        def meta(key: str) -> str | None:
            buf = ctypes.create_string_buffer(256)
            n = llama_cpp.llama_model_meta_val_str(model, key.encode(), buf, len(buf))
            return buf.value.decode("utf-8", "replace") if n >= 0 else None

        arch = meta("general.architecture")
        value = meta(f"{arch}.context_length") if arch else None
    finally:
        llama_cpp.llama_model_free(model)
    try:
        return int(value) if value else None
    except ValueError:
        return None


class LocalModel:
    """A GGUF chat model in this process. ``path`` None means the embedded default model."""

    provider = "local"
    runtime = "llama-cpp-python"
    prefers_json = True
    takes_images = False
    """llama.cpp here runs text models only: image input is refused before any call."""

    def __init__(self, path: str | None = None, *, n_ctx: int | None = None,
                 timeout: float | None = None) -> None:
        _require_llama_cpp()
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
        self._llm: Any = None
        self._formatter: Any = None
        self._grammars: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="papercoder-local")
        self.load_seconds: float | None = None
        self.timeout = timeout
        """Seconds one call may take (None: bounded by its answer limit only)."""
        self._deadline: float | None = None
        self._abort_cb: Any = None
        self._no_abort: Any = None

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
        """Load the model once (thread-safe); returns the llama_cpp.Llama object."""
        with self._lock:
            return self._load_locked()

    @property
    def llm(self) -> Any:
        """The loaded llama_cpp.Llama (loads it on first use)."""
        return self.load()

    def _load_locked(self) -> Any:
        if self._llm is not None:
            return self._llm
        llama_cpp = _llama_cpp()
        Llama, llama_chat_format = llama_cpp.Llama, llama_cpp.llama_chat_format
        n_ctx = self.context_window
        started = time.perf_counter()
        try:
            # No flash attention: on CPU it speeds prompt processing ~20% but slows
            # generation at a 4k-token context from ~39 to ~15 tokens/s (measured).
            llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=os.cpu_count(),
                        flash_attn=False, seed=SEED, verbose=False)
        except (ValueError, RuntimeError) as e:
            raise ConfigError(
                f"Could not load the local model {self.path} ({e}); check it is a GGUF model."
            ) from None
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            eos_id, bos_id = llm.token_eos(), llm.token_bos()

            def text(tok: int) -> str:
                return llm.detokenize([tok], special=True).decode("utf-8", "replace") \
                    if tok != -1 else ""

            self._formatter = llama_chat_format.Jinja2ChatFormatter(
                template=template, eos_token=text(eos_id), bos_token=text(bos_id),
                stop_token_ids=[eos_id],
            )
        else:
            self._formatter = getattr(llama_chat_format, f"format_{FALLBACK_CHAT_FORMAT}")
        # Checked by llama.cpp between graph nodes, so a long prompt stops at the deadline
        # too. Installed only while a deadline's prompt is processed (see _set_abort).
        self._abort_cb = llama_cpp.ggml_abort_callback(lambda _data: self._abort_decode())
        self._no_abort = llama_cpp.ggml_abort_callback()
        self._llm = llm
        self.load_seconds = time.perf_counter() - started
        return llm

    def _set_abort(self, on: bool) -> None:
        """Install or remove the abort callback (a Python call per graph node: kept to the
        prompt, since sampling checks the deadline per token itself)."""
        import llama_cpp

        llama_cpp.llama_set_abort_callback(self._llm._ctx.ctx,
                                           self._abort_cb if on else self._no_abort, None)

    def _abort_decode(self) -> bool:
        """llama.cpp's abort callback: True stops the decode running now. llama.cpp then logs
        the abort as an error line; the one sentence of :meth:`_timed_out` says it instead."""
        if not self._past_deadline():
            return False
        logging.getLogger("llama-cpp-python").setLevel(logging.CRITICAL)
        return True

    def _past_deadline(self) -> bool:
        deadline = self._deadline
        return deadline is not None and time.monotonic() > deadline

    def _timed_out(self) -> RetriesExhaustedError:
        t = self.timeout or 0.0
        unit = "second" if t == 1 else "seconds"
        return RetriesExhaustedError(f"The local model {self.name} did not answer within {t:g} "
                                     f"{unit} (1 attempt); raise --timeout or lower the answer "
                                     "limit.")

    def close(self) -> None:
        """Free the model and its worker thread."""
        self._executor.shutdown(wait=True)
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    # -- one exchange --------------------------------------------------------------------
    def _grammar(self, schema: Schema) -> Any:
        from llama_cpp import LlamaGrammar, llama_grammar

        key = schema_fingerprint(schema) or ""
        if key not in self._grammars:
            try:
                grammar = LlamaGrammar.from_json_schema(
                    json.dumps(bounded(strict_json_schema(schema))), verbose=False)
            except Exception:  # a schema feature the converter lacks: plain JSON, then validate
                grammar = LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
            self._grammars[key] = grammar
        return self._grammars[key]

    def prompt_tokens(self, messages: Sequence[Message]) -> tuple[list[int], Any]:
        """The chat-formatted prompt as tokens, and the formatter's answer (stops)."""
        llm = self.load()
        chat = [{"role": m["role"], "content": m["content"]} for m in messages]
        formatted = self._formatter(messages=chat)
        tokens = llm.tokenize(formatted.prompt.encode("utf-8"),
                              add_bos=not formatted.added_special, special=True)
        return tokens, formatted

    def generate(
        self,
        messages: Sequence[Message],
        *,
        schema: Schema | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        cancel: threading.Event | None = None,
    ) -> Completion:
        """The blocking call behind :meth:`complete`; one at a time."""
        from llama_cpp import Llama, StoppingCriteriaList

        with self._lock:
            llm = self._load_locked()
            tokens, formatted = self.prompt_tokens(messages)
            started = time.perf_counter()
            n_ctx, n_prompt = llm.n_ctx(), len(tokens)
            if n_prompt >= n_ctx:
                raise ContextOverflowError(
                    f"The prompt is {n_prompt} tokens but {self.name} holds {n_ctx} in its "
                    "context window; shorten the input or use a model with a larger window."
                )
            limit = self.default_max_tokens if max_tokens is None else max_tokens
            limit = max(1, min(limit, n_ctx - n_prompt))
            reused = Llama.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
            stops = StoppingCriteriaList(list(formatted.stopping_criteria or []))
            if cancel is not None:
                stops.append(lambda _ids, _logits: cancel.is_set())
            stopped: list[bool] = []
            checked: list[bool] = []
            if self.timeout is not None:
                self._deadline = time.monotonic() + self.timeout
                self._set_abort(True)

                def over(_ids: Any, _logits: Any) -> bool:
                    if not checked:  # the prompt is processed: sampling checks from here on
                        checked.append(True)
                        self._set_abort(False)
                    if self._past_deadline():
                        stopped.append(True)
                    return bool(stopped)

                stops.append(over)
            try:
                out = llm.create_completion(
                    prompt=tokens,
                    max_tokens=limit,
                    temperature=DEFAULT_TEMPERATURE if temperature is None else temperature,
                    seed=SEED,
                    repeat_penalty=REPEAT_PENALTY,
                    stop=formatted.stop,
                    stopping_criteria=stops,
                    grammar=self._grammar(schema) if schema is not None else None,
                )
            except (ValueError, RuntimeError) as e:
                if self._past_deadline():
                    raise self._timed_out() from None
                raise ModelError(f"The local model {self.name} failed: {e}.") from None
            finally:
                self._deadline = None
                self._set_abort(False)
                logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
            if stopped:  # the sampling loop stopped at the deadline: a cut-off answer
                raise self._timed_out()
            latency = time.perf_counter() - started
        text, finish, prompt_n, completion_n = self._checked(out, n_prompt)
        completion = Completion(
            text=text,
            model=self.name,
            usage=Usage(
                prompt_tokens=prompt_n,
                cached_prompt_tokens=min(reused, max(n_prompt - 1, 0)),
                completion_tokens=completion_n,
            ),
            latency=latency,
            finish_reason=finish,
        )
        if schema is not None:
            try:
                completion.parsed = structured.parse(completion.text, schema)
            except FormatError:
                pass  # left to the caller's re-ask loop
        return completion

    def _checked(self, out: Any, n_prompt: int) -> tuple[str, str | None, int, int]:
        """(text, finish reason, prompt tokens, completion tokens) of llama.cpp's answer,
        each checked: a result of another shape is a one-sentence ModelError."""
        def bad(problem: str) -> ModelError:
            return ModelError(f"The local model {self.name} returned an unusable result "
                              f"({problem}); reinstall llama-cpp-python or try another model.")

        choices = out.get("choices") if isinstance(out, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise bad("no choices")
        text, finish = choices[0].get("text"), choices[0].get("finish_reason")
        if not isinstance(text, str):
            raise bad("the text is not a string")
        usage = out.get("usage") if isinstance(out.get("usage"), dict) else {}
        counts = []
        for name, default in (("prompt_tokens", n_prompt), ("completion_tokens", 0)):
            v = usage.get(name, default)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(f"usage {name} is not a count")
            counts.append(v)
        return text, finish if isinstance(finish, str) else None, counts[0], counts[1]

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
        call = partial(self.generate, list(messages), schema=schema, temperature=temperature,
                       max_tokens=max_tokens, cancel=cancel)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except asyncio.CancelledError:
            cancel.set()  # a running generation stops at its next token
            raise
