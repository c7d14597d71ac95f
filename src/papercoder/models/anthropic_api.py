"""Anthropic's messages API through the official SDK.

System messages go in ``system``; a message marked ``"cache": True`` gets a
``cache_control`` breakpoint on its block, so the long stable prefix (the paper, resent at
every stage) is billed at the cache-read rate after the first call.

Structured output tries, per model and endpoint, and remembers what was refused:

1. ``native``: JSON outputs, ``output_config.format`` with the strict schema (models whose
   settings row says ``native_structured``, schemas strict mode can express);
2. ``tool``: one tool whose input schema is the answer schema, forced with ``tool_choice``
   (not for models that refuse forced tool use: Sonnet 5.5, Opus 5.5, Fable 5.1);
3. ``instructions``: the schema described after the last user text; the Caller extracts,
   validates and re-asks.

A 400 ``invalid_request_error`` to a structured form moves the model down the chain (the
status and the error type decide, not the wording). Anthropic renders tools before the
system prompt, and a JSON-output schema changes the cached prefix too, so a request whose
messages carry a cache breakpoint (the paper and plan) starts at ``instructions``: its prefix
is then byte-identical with and without a schema. Temperature is sent only to models whose
settings row takes it (Claude 4.7 and later refuse it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import anthropic
import httpx

from papercoder.errors import ConfigError, FormatError, ModelError
from papercoder.models.base import (
    Completion,
    Message,
    Schema,
    Usage,
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
    one_line,
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
from papercoder.models.structured import instructions, loads_bounded, parse, validate

DEFAULT_MAX_TOKENS_CAP = 16000
"""Default answer cap: room for a large source file, and below the size at which the SDK
refuses a non-streaming request."""
MAX_BREAKPOINTS = 4
"""Anthropic accepts at most four cache_control blocks per request."""
_EPHEMERAL = {"type": "ephemeral"}
FORMS = ("native", "tool", "instructions")
_REFUSED: dict[str, set[str]] = {}
"""endpoint|model -> structured-output forms refused there; shared by all instances."""


def refused_forms(endpoint: str | None, model: str) -> set[str]:
    return _REFUSED.setdefault(f"{endpoint or 'https://api.anthropic.com'}|{model}", set())


class _Refused(Exception):
    """A structured-output form answered with 400 invalid_request_error."""


def with_instructions(turns: list[dict[str, Any]], schema: Schema) -> list[dict[str, Any]]:
    """The turns with the schema described in a text block after the last user content: the
    cached prefix (system, earlier blocks and their breakpoints) is left as it was."""
    block = {"type": "text", "text": instructions(schema)}
    if turns and turns[-1]["role"] == "user":
        return [*turns[:-1], dict(turns[-1], content=[*turns[-1]["content"], block])]
    return [*turns, {"role": "user", "content": [block]}]


def to_anthropic(messages: Sequence[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, alternating turns), with cache breakpoints on marked messages (the last
    four, if more are marked)."""
    marked = [i for i, m in enumerate(messages) if m.get("cache")][-MAX_BREAKPOINTS:]
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        block: dict[str, Any] = {"type": "text", "text": m["content"] or "(empty)"}
        blocks = [block] + [
            {"type": "image", "source": {"type": "base64", "media_type": im.media_type,
                                         "data": im.base64()}}
            for im in m.get("images") or []]
        if i in marked:
            blocks[-1]["cache_control"] = dict(_EPHEMERAL)
        if m["role"] == "system":
            system.append(block)
        elif turns and turns[-1]["role"] == m["role"]:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": m["role"], "content": blocks})
    if not turns or turns[0]["role"] != "user":
        turns.insert(0, {"role": "user", "content": [{"type": "text", "text": "Begin."}]})
    return system, turns


def answer_tool(schema: Schema) -> tuple[dict[str, Any], bool]:
    """The forced tool carrying the schema; True when a non-object schema had to be wrapped
    (tool input must be an object) in ``{"answer": ...}``."""
    js = schema_json(schema)
    wrapped = js.get("type") != "object"
    if wrapped:
        defs = js.pop("$defs", None)
        js = {"type": "object", "properties": {"answer": js}, "required": ["answer"],
              **({"$defs": defs} if defs else {})}
    tool = {"name": schema_name(schema), "input_schema": js,
            "description": "Give your complete answer as this tool's input."}
    return tool, wrapped


class AnthropicModel:
    provider = "anthropic"

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
        self.name = f"anthropic/{model}"
        self.max_wait = float(max_wait)
        self.endpoint = endpoint_from(base_url, "ANTHROPIC_BASE_URL")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.settings = settings_for(self.name)
        self.takes_images = self.settings.vision
        """From the settings table: False for models known to take no image input."""
        key = api_key("ANTHROPIC_API_KEY", self.endpoint)
        if key is None:
            raise ConfigError("ANTHROPIC_API_KEY is not set; set it to your Anthropic API key.")
        self._clients = ClientPool(lambda: anthropic.AsyncAnthropic(
            api_key=key, base_url=self.endpoint, timeout=self.timeout,
            max_retries=0))  # retries are papercoder's own (models/retry.py)
        self.where = (f"The server at {self.endpoint}" if self.endpoint
                      else "The Anthropic API")

    # -- errors ---------------------------------------------------------------------------
    def _fail(self, a: Attempted) -> ModelError:
        if a.asked_wait is not None:
            return waited_too_long(self.where, a.failure.status, a.asked_wait, self.max_wait,
                                   a.attempts)
        return to_error(a.failure, where=self.where, model=self.name,
                        key_var="ANTHROPIC_API_KEY", retries=self.max_retries,
                        timeout=self.timeout, attempts=a.attempts)

    def _classify(self, e: BaseException) -> tuple[Failure, float | None] | None:
        if isinstance(e, anthropic.APIStatusError):
            return self._failure(e), retry_after(e.response.headers)
        if isinstance(e, (anthropic.AnthropicError, httpx.HTTPError)):
            return self._failure(e), None
        return None

    @staticmethod
    def _detail(e: anthropic.APIStatusError) -> str:
        return body_detail(e.body, e.message)

    def _failure(self, e: Exception) -> Failure:
        if isinstance(e, (anthropic.APITimeoutError, httpx.TimeoutException)):
            return Failure("timeout")
        if isinstance(e, (anthropic.APIConnectionError, httpx.HTTPError)):
            return Failure("connection")
        if isinstance(e, anthropic.APIStatusError):
            return status_failure(e.status_code, self._detail(e))
        return Failure("malformed", None, f"{type(e).__name__}: {one_line(e, 80)}")

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
        system, turns = to_anthropic(messages)
        params: dict[str, Any] = {
            "model": self.model, "messages": turns, "timeout": self.timeout,
            "max_tokens": max_tokens or min(self.settings.max_output, DEFAULT_MAX_TOKENS_CAP),
        }
        if system:
            params["system"] = system
        if temperature is not None and self.settings.takes_sampling:
            params["temperature"] = temperature
        start = time.perf_counter()
        if schema is None:
            body = await self._send(params, structured=False)
            return self._completion(body, None, False, time.perf_counter() - start)
        refused = refused_forms(self.endpoint, self.model)
        for form in self.forms(schema, messages):
            if form in refused:
                continue
            sent, wrapped = self.request(form, params, schema)
            try:
                body = await self._send(sent, structured=form != "instructions")
            except _Refused:
                refused.add(form)
                continue
            return self._completion(body, schema, wrapped, time.perf_counter() - start)
        raise ModelError(f"{self.where} refused every structured-output form for "
                         f"{self.name}; try another model.")

    def forms(self, schema: Schema, messages: Sequence[Message]) -> list[str]:
        """The structured-output forms to try for this request, best first."""
        if any(m.get("cache") for m in messages):
            return ["instructions"]  # keeps the cached prefix byte-identical
        forms = []
        if self.settings.native_structured and strict_ready(schema):
            forms.append("native")
        if self.settings.forced_tool:
            forms.append("tool")
        return [*forms, "instructions"]

    @staticmethod
    def request(form: str, params: dict[str, Any],
                schema: Schema) -> tuple[dict[str, Any], bool]:
        """(the create() arguments for one structured form, whether the answer is wrapped)."""
        if form == "native":
            fmt = {"type": "json_schema", "schema": strict_json_schema(schema)}
            return {**params, "output_config": {"format": fmt}}, False
        if form == "tool":
            tool, wrapped = answer_tool(schema)
            return {**params, "tools": [tool],
                    "tool_choice": {"type": "tool", "name": tool["name"]}}, wrapped
        return {**params, "messages": with_instructions(params["messages"], schema)}, False

    async def _send(self, params: dict[str, Any], *, structured: bool) -> str:
        sdk_params = dict(params)
        extra: dict[str, Any] = {}
        for name in ("temperature", "output_config"):
            # Sent as raw body fields: SDK versions differ in which of these they name.
            if name in sdk_params:
                extra[name] = sdk_params.pop(name)
        if extra:
            sdk_params["extra_body"] = extra

        async def attempt() -> str:
            try:
                async with self._clients.use() as client:
                    raw = await client.messages.with_raw_response.create(**sdk_params)
                    return raw.http_response.text
            except anthropic.APIStatusError as e:
                if structured and self._is_refusal(e):
                    raise _Refused(self._detail(e)) from None
                raise

        return await with_retries(attempt, self._classify, self._fail,
                                  max_retries=self.max_retries, timeout=self.timeout,
                                  max_wait=self.max_wait)

    def _is_refusal(self, e: anthropic.APIStatusError) -> bool:
        """A structured form refused: HTTP 400 with error type invalid_request_error (and not
        a prompt over the window, which every form would meet)."""
        if e.status_code != 400:
            return False
        body = e.body if isinstance(e.body, dict) else {}
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        kind = err.get("type") if isinstance(err, dict) else None
        return kind == "invalid_request_error" and \
            not looks_like_context_overflow(self._detail(e))

    def _completion(self, body: str, schema: Schema | None, wrapped: bool,
                    latency: float) -> Completion:
        """The answer in a 200 body, every field checked before it is used."""
        data, bad = body_object(body, self.where)
        content, u = data.get("content"), data.get("usage")
        if not isinstance(content, list):
            raise bad("no content in the answer" if content is None
                      else f"content is {describe(content)}, not a list")
        if not isinstance(u, dict):
            raise bad("no usage in the answer" if u is None
                      else f"usage is {describe(u)}, not an object")
        texts: list[str] = []
        tool_input: Any = None
        for i, b in enumerate(content):
            if not isinstance(b, dict):
                raise bad(f"content[{i}] is {describe(b)}, not an object")
            if b.get("type") == "text":
                if not isinstance(b.get("text"), str):
                    raise bad(f"content[{i}].text is {describe(b.get('text'))}, not text")
                texts.append(b["text"])
            elif b.get("type") == "tool_use" and tool_input is None:
                tool_input = b.get("input")
        stop = data.get("stop_reason")
        if stop is not None and not isinstance(stop, str):
            raise bad(f"stop_reason is {describe(stop)}, not text")
        counts = {}
        for name in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                     "cache_creation_input_tokens"):
            v = u.get(name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise bad(f"usage {name} is {v!r:.40}, not a count")
            counts[name] = v or 0
        text = "".join(texts)
        parsed = None
        if schema is not None:
            text, parsed = self._structured(text, tool_input, schema, wrapped)
        read, write = counts["cache_read_input_tokens"], counts["cache_creation_input_tokens"]
        usage = Usage(
            prompt_tokens=counts["input_tokens"] + read + write,
            cached_prompt_tokens=read,
            completion_tokens=counts["output_tokens"],
            cache_write_tokens=write,
        )
        model = data.get("model") if isinstance(data.get("model"), str) else self.model
        return Completion(text=text, model=f"anthropic/{model}", usage=usage, latency=latency,
                          finish_reason=stop, parsed=parsed)

    @staticmethod
    def _structured(text: str, tool_input: Any, schema: Schema,
                    wrapped: bool) -> tuple[str, Any]:
        """(text to store, validated object or None) of a forced-tool answer."""
        try:
            if tool_input is None:
                return text, parse(text, schema)
            if isinstance(tool_input, str):  # some proxies pass the input as text
                text = tool_input
                tool_input = loads_bounded(tool_input)
            data = tool_input
            if wrapped and isinstance(data, Mapping):
                data = data.get("answer")
            text = json.dumps(data, ensure_ascii=False)
            return text, validate(data, schema)
        except (FormatError, ValueError, RecursionError):
            return text, None  # the Caller re-asks, quoting the problem

