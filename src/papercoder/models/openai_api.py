"""OpenAI and every OpenAI-compatible server (vLLM, Ollama, llama.cpp, LM Studio, OpenRouter).

Structured output tries, in order, the forms an endpoint may support and remembers refusals
per endpoint and model, so a refused form is never sent there again:

1. ``response_format: json_schema`` with the strict schema (OpenAI, vLLM, recent servers),
   for models whose settings row allows it and schemas strict mode can express;
2. ``response_format: json_object`` (carrying the schema for self-hosted servers: the llama.cpp
   server form) with the schema described after the messages;
3. a plain call with the schema described after the messages; the text is returned and the
   :class:`~papercoder.llm.Caller` extracts, validates and re-asks.

OpenAI caches the ``json_schema`` schema ahead of the messages, so a request whose messages
carry a cached prefix (a ``cache`` mark: the paper and plan) skips form 1 on OpenAI's own API:
the prefix then stays byte-identical across the plan, the structured planning calls, the
analyses and coding. The schema text always goes after the last message's text, never into
the first message. Temperature, reasoning effort and system messages are sent only to models
whose settings row takes them.

Retries (429, 5xx, timeouts, dropped connections, with backoff and ``Retry-After``) are the
SDK's own; what still fails becomes a one-sentence :class:`~papercoder.errors.ModelError`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import httpx
import openai

from papercoder.errors import ConfigError, FormatError, MalformedResponseError, ModelError
from papercoder.models.base import (
    Completion,
    Message,
    Schema,
    Usage,
    schema_fingerprint,
    schema_json,
    schema_name,
    strict_json_schema,
    strict_ready,
)
from papercoder.models.clientpool import ClientPool
from papercoder.models.failures import (
    Failure,
    api_key,
    body_detail,
    body_object,
    describe,
    endpoint_from,
    looks_like_context_overflow,
    status_failure,
    to_error,
)
from papercoder.models.retry import (
    DEFAULT_MAX_RETRY_WAIT,
    Attempted,
    retry_after,
    waited_too_long,
    with_retries,
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


def to_openai(m: Message) -> dict[str, Any]:
    """One chat message; a message with images gets OpenAI's content-part array: the text,
    then each image as a ``data:`` URL."""
    images = m.get("images") or []
    if not images:
        return {"role": m["role"], "content": m["content"]}
    parts: list[dict[str, Any]] = [{"type": "text", "text": m["content"]}]
    for im in images:
        parts.append({"type": "image_url", "image_url": {
            "url": f"data:{im.media_type};base64,{im.base64()}"}})
    return {"role": m["role"], "content": parts}


class _Refused(Exception):
    """The endpoint answered a structured-output form with 'not supported'."""


def _with_instructions(messages: list[dict[str, Any]], schema: Schema) -> list[dict[str, Any]]:
    """The messages with the schema described after the last user text: the prefix (the
    first messages, which a provider caches) is left exactly as it was."""
    extra = instructions(schema)
    if messages and messages[-1]["role"] == "user":
        last = messages[-1]
        content = last["content"]
        if isinstance(content, list):
            content = [*content, {"type": "text", "text": extra}]
        else:
            content = f"{content}\n\n{extra}"
        return [*messages[:-1], dict(last, content=content)]
    return [*messages, {"role": "user", "content": extra}]


def _no_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For models that refuse system messages (o1-mini): the same text as user messages."""
    return [dict(m, role="user") if m["role"] == "system" else m for m in messages]


class OpenAIModel:
    provider = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        timeout: float = 600.0,
        max_retries: int = 5,
        max_wait: float = DEFAULT_MAX_RETRY_WAIT,
    ) -> None:
        self.model = model
        self.name = f"openai/{model}"
        self.max_wait = float(max_wait)
        self.endpoint = endpoint_from(base_url, "OPENAI_BASE_URL")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.settings = settings_for(self.name)
        self.takes_images = self.settings.vision
        """From the settings table: False for models known to take no image input."""
        key = api_key("OPENAI_API_KEY", self.endpoint)
        if key is None:
            raise ConfigError(
                "OPENAI_API_KEY is not set; set it to your OpenAI API key, or pass --base-url "
                "for a self-hosted server." if not self.endpoint else
                f"No API key for {self.endpoint}; set OPENAI_API_KEY to the key that server "
                "expects.")
        self._clients = ClientPool(lambda: openai.AsyncOpenAI(
            api_key=key, base_url=self.endpoint, timeout=self.timeout,
            max_retries=0))  # retries are papercoder's own (models/retry.py)
        self.where = (f"The server at {self.endpoint}" if self.endpoint else "The OpenAI API")

    # -- plumbing -------------------------------------------------------------------------
    def _params(self, temperature: float | None, max_tokens: int | None,
                prompt_tokens: int = 0) -> dict[str, Any]:
        """Only the parameters this model takes (its settings row): reasoning models get
        ``max_completion_tokens`` that leaves room for the prompt in the window, and a
        reasoning effort where the row names one; temperature only where sampling is taken."""
        s = self.settings
        params: dict[str, Any] = {}
        if s.reasoning:
            params["max_completion_tokens"] = min(max_tokens or s.max_output,
                                                  s.completion_room(prompt_tokens))
            if s.reasoning_effort:
                params["reasoning_effort"] = s.reasoning_effort
        elif max_tokens is not None:
            params["max_tokens"] = max_tokens
        if temperature is not None and s.takes_sampling:
            params["temperature"] = temperature
        return params

    @property
    def official(self) -> bool:
        """OpenAI's own API (not a self-hosted or compatible server)."""
        return not self.endpoint or "api.openai.com" in str(self.endpoint)

    def forms(self, schema: Schema, messages: Sequence[Message]) -> list[str]:
        """The structured-output forms to try for this request, best first."""
        forms = list(FORMS)
        if not self.settings.strict_schema or not strict_ready(schema) or (
                self.official and any(m.get("cache") for m in messages)):
            forms.remove("json_schema")
        return forms

    @staticmethod
    def _detail(e: openai.APIStatusError) -> str:
        return body_detail(e.body, e.message)

    def _failure(self, e: Exception) -> Failure:
        if isinstance(e, (openai.APITimeoutError, httpx.TimeoutException)):
            return Failure("timeout")
        if isinstance(e, (openai.APIConnectionError, httpx.HTTPError)):
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
        if e.status_code == 400 and str(e.param or "").startswith("response_format"):
            return True  # OpenAI names the refused parameter: no guess at wording
        text = f"{e.param or ''} {e.code or ''} {self._detail(e)}".lower()
        if e.status_code == 500:
            # llama-cpp-python's server answers an unknown response_format type with a 500
            # whose body names the field; a plain server error says nothing of the kind.
            return "response_format" in text
        if e.status_code not in (400, 415, 422, 501):
            return False
        return not looks_like_context_overflow(text) and any(h in text for h in _FORM_HINTS)

    def _fail(self, a: Attempted) -> ModelError:
        if a.asked_wait is not None:
            return waited_too_long(self.where, a.failure.status, a.asked_wait, self.max_wait,
                                   a.attempts)
        return to_error(a.failure, where=self.where, model=self.name, key_var="OPENAI_API_KEY",
                        retries=self.max_retries, timeout=self.timeout, attempts=a.attempts)

    def _classify(self, e: BaseException) -> tuple[Failure, float | None] | None:
        if isinstance(e, _Refused):
            return None
        if isinstance(e, openai.APIStatusError):
            return self._failure(e), retry_after(e.response.headers)
        if isinstance(e, (openai.OpenAIError, httpx.HTTPError)):
            return self._failure(e), None
        return None

    async def _create(self, messages: list[dict[str, Any]], params: dict[str, Any],
                      *, structured: bool, probe: bool = False) -> str:
        """The body of one answered request (retried and bounded by :func:`with_retries`)."""

        async def attempt() -> str:
            try:
                async with self._clients.use() as client:
                    raw = await client.chat.completions.with_raw_response.create(
                        model=self.model, messages=messages,  # type: ignore[arg-type]
                        timeout=self.timeout, **params)
                    return raw.http_response.text
            except openai.APIStatusError as e:
                if structured and self._is_refusal(e):
                    raise _Refused(self._detail(e)) from None
                raise

        # A form this endpoint has not answered yet: do not retry a refusal at length.
        retries = min(self.max_retries, 1) if probe else self.max_retries
        return await with_retries(attempt, self._classify, self._fail, max_retries=retries,
                                  timeout=self.timeout, max_wait=self.max_wait)

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
        plain = [to_openai(m) for m in messages]
        if not self.settings.system_role:
            plain = _no_system(plain)
        text_only = [{"role": m["role"], "content": m["content"]} for m in messages]
        params = self._params(temperature, max_tokens, estimate_messages(text_only))
        start = time.perf_counter()
        resp: str | None = None
        if schema is None:
            resp = await self._create(plain, params, structured=False)
        else:
            refused = refused_forms(self.endpoint, self.model)
            refused_here = refused_forms(self.endpoint, self.model, schema)
            for form in self.forms(schema, messages):
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
        if resp is None:  # every form refused (the last is a plain call, so not reached)
            raise ModelError(f"{self.where} refused every structured-output form for "
                             f"{self.name}; try another model.")
        return self._completion(resp, text_only, schema, time.perf_counter() - start)

    def _form(self, form: str, messages: list[dict[str, Any]], params: dict[str, Any],
              schema: Schema) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        if form == "json_schema":
            fmt: dict[str, Any] = {"type": "json_schema", "json_schema": {
                "name": schema_name(schema), "schema": strict_json_schema(schema),
                "strict": True}}
            return messages, {**params, "response_format": fmt}
        with_text = _with_instructions(messages, schema)
        if form == "json_object":
            fmt = {"type": "json_object"}
            if not self.official:  # llama.cpp's server constrains output to this schema
                fmt["schema"] = schema_json(schema)
            return with_text, {**params, "response_format": fmt}
        return with_text, params

    def _completion(self, body: str, sent: list[dict[str, Any]], schema: Schema | None,
                    latency: float) -> Completion:
        """The answer in a 200 body, every field checked before it is used: a body of the
        wrong shape is a MalformedResponseError carrying the body (the Caller stores it)."""
        data, bad = body_object(body, self.where)
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            raise bad("no choices in the answer" if choices in (None, [])
                      else f"choices is {describe(choices)}, not a list")
        choice = choices[0]
        if not isinstance(choice, dict):
            raise bad(f"choices[0] is {describe(choice)}, not an object")
        message = choice.get("message")
        if not isinstance(message, dict):
            raise bad(f"the message is {describe(message)}, not an object")
        content, refusal = message.get("content"), message.get("refusal")
        finish = choice.get("finish_reason")
        if content is not None and not isinstance(content, str):
            raise bad(f"the message content is {describe(content)}, not text")
        if refusal is not None and not isinstance(refusal, str):
            raise bad(f"the message refusal is {describe(refusal)}, not text")
        if finish is not None and not isinstance(finish, str):
            raise bad(f"finish_reason is {describe(finish)}, not text")
        text = content or ""
        if not text and refusal:
            text, finish = refusal, "refusal"
        usage = self._usage(data.get("usage"), sent, text, bad)
        model = data.get("model") if isinstance(data.get("model"), str) else self.model
        parsed = None
        if schema is not None:
            try:
                parsed = parse(text, schema)
            except FormatError:
                parsed = None  # the Caller re-asks, quoting the problem
        return Completion(text=text, model=f"openai/{model}", usage=usage, latency=latency,
                          finish_reason=finish, parsed=parsed)

    @staticmethod
    def _usage(u: Any, sent: list[dict[str, Any]], text: str,
               bad: Callable[[str], MalformedResponseError]) -> Usage:
        if u is None:  # some servers send no usage: estimate rather than report zero
            return Usage(prompt_tokens=estimate_messages(sent),
                         completion_tokens=estimate_tokens(text))
        if not isinstance(u, dict):
            raise bad(f"usage is {describe(u)}, not an object")
        details = u.get("prompt_tokens_details")
        details = details if isinstance(details, dict) else {}
        counts = {"prompt_tokens": u.get("prompt_tokens"),
                  "completion_tokens": u.get("completion_tokens"),
                  "cached_tokens": details.get("cached_tokens"),
                  "cache_write_tokens": details.get("cache_write_tokens")}
        for name, v in counts.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise bad(f"usage {name} is {v!r:.40}, not a count")
        if counts["prompt_tokens"] is None:
            return Usage(prompt_tokens=estimate_messages(sent),
                         completion_tokens=counts["completion_tokens"] or estimate_tokens(text))
        cached = min(counts["cached_tokens"] or 0, counts["prompt_tokens"])
        return Usage(prompt_tokens=counts["prompt_tokens"],
                     cached_prompt_tokens=cached,
                     completion_tokens=counts["completion_tokens"] or 0,
                     cache_write_tokens=min(counts["cache_write_tokens"] or 0,
                                            counts["prompt_tokens"] - cached))
