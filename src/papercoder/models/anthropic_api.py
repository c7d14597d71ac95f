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

from papercoder.errors import ConfigError, FormatError, ModelError
from papercoder.models.base import Completion, Message, Schema, Usage, schema_json, schema_name
from papercoder.models.clientpool import ClientPool
from papercoder.models.failures import (
    Failure,
    api_key,
    body_detail,
    endpoint_from,
    one_line,
    status_failure,
    to_error,
)
from papercoder.models.settings import settings_for
from papercoder.models.structured import parse, validate

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
        if i in marked:
            block["cache_control"] = dict(_EPHEMERAL)
        if m["role"] == "system":
            system.append(block)
        elif turns and turns[-1]["role"] == m["role"]:
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": m["role"], "content": [block]})
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
    ) -> None:
        self.model = model
        self.name = f"anthropic/{model}"
        self.endpoint = endpoint_from(base_url, "ANTHROPIC_BASE_URL")
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.settings = settings_for(self.name)
        key = api_key("ANTHROPIC_API_KEY", self.endpoint)
        if key is None:
            raise ConfigError("ANTHROPIC_API_KEY is not set; set it to your Anthropic API key.")
        self._clients = ClientPool(lambda: anthropic.AsyncAnthropic(
            api_key=key, base_url=self.endpoint, timeout=self.timeout,
            max_retries=self.max_retries))
        self.where = (f"The server at {self.endpoint}" if self.endpoint
                      else "The Anthropic API")

    # -- errors ---------------------------------------------------------------------------
    def _raise(self, f: Failure) -> ModelError:
        return to_error(f, where=self.where, model=self.name, key_var="ANTHROPIC_API_KEY",
                        retries=self.max_retries, timeout=self.timeout)

    @staticmethod
    def _detail(e: anthropic.APIStatusError) -> str:
        return body_detail(e.body, e.message)

    def _failure(self, e: Exception) -> Failure:
        if isinstance(e, anthropic.APITimeoutError):
            return Failure("timeout")
        if isinstance(e, anthropic.APIConnectionError):
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
        try:
            async with self._clients.use() as client:
                resp = await client.messages.create(**params)
        except anthropic.AnthropicError as e:
            raise self._raise(self._failure(e)) from None
        except ValueError as e:  # the body was not JSON
            raise self._raise(Failure("malformed", 200, f"{type(e).__name__}: {e}")) from None
        latency = time.perf_counter() - start
        content = getattr(resp, "content", None)
        u = getattr(resp, "usage", None)
        if not isinstance(content, list) or u is None:
            raise self._raise(Failure("malformed", 200, "no content or usage in the answer"))
        return self._completion(resp, content, u, schema, wrapped, latency)

    def _completion(self, resp: Any, content: list[Any], u: Any, schema: Schema | None,
                    wrapped: bool, latency: float) -> Completion:
        texts = [getattr(b, "text", "") for b in content if getattr(b, "type", "") == "text"]
        text = "".join(texts)
        parsed = None
        tool_input = next((b.input for b in content if getattr(b, "type", "") == "tool_use"),
                          None)
        if schema is not None:
            try:
                if tool_input is not None:
                    if isinstance(tool_input, str):  # some proxies pass the input as text
                        text = tool_input
                        tool_input = json.loads(tool_input)
                    data = tool_input
                    if wrapped and isinstance(data, Mapping):
                        data = data.get("answer")
                    text = json.dumps(data, ensure_ascii=False)
                    parsed = validate(data, schema)
                else:
                    parsed = parse(text, schema)
            except (FormatError, ValueError):
                parsed = None  # the Caller re-asks, quoting the problem
        read = int(getattr(u, "cache_read_input_tokens", 0) or 0)
        write = int(getattr(u, "cache_creation_input_tokens", 0) or 0)
        usage = Usage(
            prompt_tokens=int(u.input_tokens or 0) + read + write,
            cached_prompt_tokens=read,
            completion_tokens=int(u.output_tokens or 0),
            cache_write_tokens=write,
        )
        model = resp.model if isinstance(getattr(resp, "model", None), str) else self.model
        return Completion(text=text, model=f"anthropic/{model}", usage=usage, latency=latency,
                          finish_reason=getattr(resp, "stop_reason", None), parsed=parsed)
