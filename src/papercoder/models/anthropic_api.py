"""Anthropic's messages API through the official SDK.

System messages go in ``system``; a message marked ``"cache": True`` gets a
``cache_control`` breakpoint on its block, so the long stable prefix (the paper, resent at
every stage) is billed at the cache-read rate after the first call. Structured output is a
single tool whose input schema is the answer's schema, forced with ``tool_choice``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

import anthropic
import httpx

from papercoder.errors import ConfigError, FormatError, ModelError
from papercoder.models.base import Completion, Message, Schema, Usage, schema_json, schema_name
from papercoder.models.clientpool import ClientPool
from papercoder.models.failures import (
    Failure,
    api_key,
    body_detail,
    body_object,
    describe,
    endpoint_from,
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
from papercoder.models.structured import loads_bounded, parse, validate

DEFAULT_MAX_TOKENS_CAP = 16000
"""Default answer cap: room for a large source file, and below the size at which the SDK
refuses a non-streaming request."""
MAX_BREAKPOINTS = 4
"""Anthropic accepts at most four cache_control blocks per request."""
_EPHEMERAL = {"type": "ephemeral"}


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
    name = re.sub(r"[^A-Za-z0-9_-]", "_", schema_name(schema))[:64] or "answer"
    tool = {"name": name, "input_schema": js,
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
        if temperature is not None:
            # The SDK no longer has a temperature argument (recent models fix sampling); an
            # explicit one is still sent for the models and proxies that take it.
            params["extra_body"] = {"temperature": temperature}
        wrapped = False
        if schema is not None:
            tool, wrapped = answer_tool(schema)
            params["tools"] = [tool]
            params["tool_choice"] = {"type": "tool", "name": tool["name"]}
        start = time.perf_counter()

        async def attempt() -> str:
            async with self._clients.use() as client:
                raw = await client.messages.with_raw_response.create(**params)
                return raw.http_response.text

        body = await with_retries(attempt, self._classify, self._fail,
                                  max_retries=self.max_retries, timeout=self.timeout,
                                  max_wait=self.max_wait)
        return self._completion(body, schema, wrapped, time.perf_counter() - start)

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

