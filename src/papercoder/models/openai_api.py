"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, OpenRouter).

Structured output tries, in order, the forms an endpoint may support and remembers refusals
per endpoint and model, so a refused form is never sent there again:

1. ``response_format: json_schema`` with the strict schema (OpenAI, vLLM, recent servers);
2. ``response_format: json_object`` carrying the schema (the llama.cpp server form);
3. a plain call with the schema described in the system prompt; the text is returned and the
   :class:`~papercoder.llm.Caller` extracts, validates and re-asks.

Retries (429, 5xx, timeouts, dropped connections, with backoff and ``Retry-After``) are the
SDK's own; what still fails becomes a one-sentence :class:`~papercoder.errors.ModelError`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import openai

from papercoder.errors import ConfigError, FormatError, ModelError
from papercoder.models.base import (
    Completion,
    Message,
    Schema,
    Usage,
    schema_fingerprint,
    schema_json,
    schema_name,
    strict_json_schema,
)
from papercoder.models.clientpool import ClientPool
from papercoder.models.failures import (
    Failure,
    api_key,
    body_detail,
    endpoint_from,
    looks_like_context_overflow,
    one_line,
    status_failure,
    to_error,
)
from papercoder.models.settings import settings_for
from papercoder.models.structured import instructions, parse
from papercoder.tokens import estimate_messages, estimate_tokens

FORMS = ("json_schema", "json_object", "instructions")
DEFAULT_ENDPOINT = "https://api.openai.com/v1"
"""Sent to self-hosted servers when OPENAI_API_KEY is unset (the SDK wants some key)."""

_FORM_HINTS = ("response_format", "json_schema", "json_object", "schema")
_REFUSED: dict[str, set[str]] = {}
_CONFIRMED: set[tuple[str | None, str, str]] = set()
"""(endpoint, model, form) that answered once: later calls get the full retry budget."""
"""endpoint|model -> structured-output forms that endpoint refused; shared by all instances."""


def refused_forms(endpoint: str | None, model: str, schema: Schema | None = None) -> set[str]:
    """The forms refused by this endpoint for this model (for one schema when given: a
    server may reject one schema, e.g. outside OpenAI's strict subset, and accept others)."""
    key = f"{endpoint or DEFAULT_ENDPOINT}|{model}"
    if schema is not None:
        key += "|" + hashlib.sha256((schema_fingerprint(schema) or "").encode()).hexdigest()
    return _REFUSED.setdefault(key, set())


class _Refused(Exception):
    """The endpoint answered a structured-output form with 'not supported'."""


def _with_instructions(messages: list[dict[str, Any]], schema: Schema) -> list[dict[str, Any]]:
    extra = instructions(schema)
    if messages and messages[0]["role"] == "system":
        first = dict(messages[0], content=f"{messages[0]['content']}\n\n{extra}")
        return [first, *messages[1:]]
    return [{"role": "system", "content": extra}, *messages]


class OpenAIModel:
    provider = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 5,
    ) -> None:
        self.model = model
        self.name = f"openai/{model}"
        self.endpoint = endpoint_from(base_url, "OPENAI_BASE_URL")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.settings = settings_for(self.name)
        key = api_key("OPENAI_API_KEY", self.endpoint)
        if key is None:
            raise ConfigError(
                "OPENAI_API_KEY is not set; set it to your OpenAI API key, or pass --base-url "
                "for a self-hosted server." if not self.endpoint else
                f"No API key for {self.endpoint}; set OPENAI_API_KEY to the key that server "
                "expects.")
        self._clients = ClientPool(lambda: openai.AsyncOpenAI(
            api_key=key, base_url=self.endpoint, timeout=self.timeout,
            max_retries=self.max_retries))
        self.where = (f"The server at {self.endpoint}" if self.endpoint else "The OpenAI API")

    # -- plumbing -------------------------------------------------------------------------
    def _params(self, temperature: float | None, max_tokens: int | None) -> dict[str, Any]:
        s = self.settings
        if s.reasoning:
            params: dict[str, Any] = {"max_completion_tokens": max_tokens or s.max_output}
            if s.reasoning_effort:
                params["reasoning_effort"] = s.reasoning_effort
            return params
        params = {}
        if temperature is not None:
            params["temperature"] = temperature
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        return params

    def _error(self, e: Exception) -> ModelError:
        return to_error(self._failure(e), where=self.where, model=self.name,
                        key_var="OPENAI_API_KEY", retries=self.max_retries, timeout=self.timeout)

    @staticmethod
    def _detail(e: openai.APIStatusError) -> str:
        return body_detail(e.body, e.message)

    def _failure(self, e: Exception) -> Failure:
        if isinstance(e, openai.APITimeoutError):
            return Failure("timeout")
        if isinstance(e, openai.APIConnectionError):
            return Failure("connection")
        if isinstance(e, openai.APIStatusError):
            return status_failure(e.status_code, self._detail(e), str(e.code or ""))
        return Failure("malformed", None, f"{type(e).__name__}: {e}")

    def _unproven(self, form: str) -> bool:
        """A self-hosted endpoint that has not yet answered this form: a 500 there is more
        likely a refusal than an outage, so it is not retried at length."""
        return bool(self.endpoint) and "api.openai.com" not in str(self.endpoint) and \
            (self.endpoint, self.model, form) not in _CONFIRMED

    def _is_refusal(self, e: openai.APIStatusError) -> bool:
        text = f"{e.param or ''} {e.code or ''} {self._detail(e)}".lower()
        if e.status_code == 500:
            # llama-cpp-python's server answers an unknown response_format type with a 500
            # whose body names the field; a plain server error says nothing of the kind.
            return "response_format" in text
        if e.status_code not in (400, 415, 422, 501):
            return False
        return not looks_like_context_overflow(text) and any(h in text for h in _FORM_HINTS)

    async def _create(self, messages: list[dict[str, Any]], params: dict[str, Any],
                      *, structured: bool, probe: bool = False) -> Any:
        try:
            async with self._clients.use() as client:
                if probe:  # a form this endpoint has not answered yet: do not retry a refusal
                    client = client.with_options(max_retries=min(self.max_retries, 1))
                resp = await client.chat.completions.create(
                    model=self.model, messages=messages,  # type: ignore[arg-type]
                    timeout=self.timeout, **params)
        except openai.APIStatusError as e:
            if structured and self._is_refusal(e):
                raise _Refused(self._detail(e)) from None
            raise self._error(e) from None
        except openai.OpenAIError as e:
            raise self._error(e) from None
        except ValueError as e:  # the body was not JSON
            raise to_error(Failure("malformed", 200, f"{type(e).__name__}: {one_line(e, 80)}"),
                           where=self.where, model=self.name, key_var="OPENAI_API_KEY",
                           retries=self.max_retries, timeout=self.timeout) from None
        choices = getattr(resp, "choices", None)
        if not choices or getattr(choices[0], "message", None) is None:
            raise to_error(Failure("malformed", 200, "no choices in the answer"),
                           where=self.where, model=self.name, key_var="OPENAI_API_KEY",
                           retries=self.max_retries, timeout=self.timeout)
        return resp

    # -- the interface -------------------------------------------------------------------
    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: Schema | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> Completion:
        plain = [{"role": m["role"], "content": m["content"]} for m in messages]
        params = self._params(temperature, max_tokens)
        start = time.perf_counter()
        resp = None
        if schema is None:
            resp = await self._create(plain, params, structured=False)
        else:
            refused = refused_forms(self.endpoint, self.model)
            refused_here = refused_forms(self.endpoint, self.model, schema)
            for form in FORMS:
                if form in refused or form in refused_here:
                    continue
                try:
                    resp = await self._create(*self._form(form, plain, params, schema),
                                              structured=form != "instructions",
                                              probe=self._unproven(form))
                    _CONFIRMED.add((self.endpoint, self.model, form))
                    break
                except _Refused as e:
                    # "Invalid schema ..." is about this schema, not the form in general.
                    scope = refused_here if "invalid schema" in str(e).lower() else refused
                    scope.add(form)
        assert resp is not None
        return self._completion(resp, plain, schema, time.perf_counter() - start)

    @staticmethod
    def _form(form: str, messages: list[dict[str, Any]], params: dict[str, Any],
              schema: Schema) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if form == "json_schema":
            fmt = {"type": "json_schema", "json_schema": {
                "name": schema_name(schema)[:64], "schema": strict_json_schema(schema),
                "strict": True}}
            return messages, {**params, "response_format": fmt}
        with_text = _with_instructions(messages, schema)
        if form == "json_object":
            fmt = {"type": "json_object", "schema": schema_json(schema)}
            return with_text, {**params, "response_format": fmt}
        return with_text, params

    def _completion(self, resp: Any, sent: list[dict[str, Any]], schema: Schema | None,
                    latency: float) -> Completion:
        choice = resp.choices[0]
        text = choice.message.content or getattr(choice.message, "refusal", None) or ""
        u = getattr(resp, "usage", None)
        if u is not None and isinstance(getattr(u, "prompt_tokens", None), int):
            details = getattr(u, "prompt_tokens_details", None)
            usage = Usage(
                prompt_tokens=u.prompt_tokens,
                cached_prompt_tokens=int(getattr(details, "cached_tokens", 0) or 0),
                completion_tokens=int(u.completion_tokens or 0),
            )
        else:  # some servers send no usage: estimate rather than report zero
            usage = Usage(prompt_tokens=estimate_messages(sent),
                          completion_tokens=estimate_tokens(text))
        parsed = None
        if schema is not None:
            try:
                parsed = parse(text, schema)
            except FormatError:
                parsed = None  # the Caller re-asks, quoting the problem
        model = resp.model if isinstance(getattr(resp, "model", None), str) else self.model
        return Completion(text=text, model=f"openai/{model}", usage=usage, latency=latency,
                          finish_reason=getattr(choice, "finish_reason", None), parsed=parsed)
