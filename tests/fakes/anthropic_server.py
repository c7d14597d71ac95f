"""A fake Anthropic messages server on 127.0.0.1 (``POST /v1/messages``).

It checks what the real API insists on (``max_tokens``, alternating roles starting with the
user, at most four ``cache_control`` breakpoints), answers forced tool use with a
``tool_use`` block, and simulates the prompt cache: the prefix up to a breakpoint is written
to the cache the first time (``cache_creation_input_tokens``) and read from it afterwards
(``cache_read_input_tokens``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from .contracts import anthropic_refusal
from .server import FakeServer, Recorded, Reply, Responder, count_tokens


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, Mapping)]


def _block_text(block: Mapping[str, Any]) -> str:
    if block.get("type") == "text":
        return str(block.get("text", ""))
    return json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)


def prompt_blocks(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The request as the cache sees it: tools, then system, then message blocks (a JSON
    output schema is part of the cached prefix too)."""
    fmt = (body.get("output_config") or {}).get("format")
    out: list[Mapping[str, Any]] = [{"type": "output_format", "format": fmt}] if fmt else []
    out += list(body.get("tools") or [])
    out += _blocks(body.get("system"))
    for m in body.get("messages") or []:
        out += [{**b, "_role": m.get("role")} for b in _blocks(m.get("content"))]
    return out


def last_user_text(body: Mapping[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            return " ".join(_block_text(b) for b in _blocks(m.get("content")))
    return ""


def echo(body: Mapping[str, Any]) -> str:
    return "echo: " + last_user_text(body)


class FakeAnthropicServer(FakeServer):
    def __init__(
        self,
        responder: Responder | None = echo,
        *,
        port: int = 0,
        delay: float = 0.0,
        api_key: str | None = None,
        models: Iterable[str] | None = None,
        context_limit: int | None = None,
        cache_min_tokens: int = 0,
    ) -> None:
        super().__init__(responder, port=port, delay=delay, api_key=api_key)
        self.models = set(models) if models is not None else None
        self.context_limit = context_limit
        self.cache_min_tokens = cache_min_tokens
        self._cache: set[str] = set()
        self._ids = 0

    @property
    def url(self) -> str:
        """The base URL for an Anthropic client (the SDK appends ``/v1/messages``)."""
        return self.root

    def message_requests(self) -> list[Mapping[str, Any]]:
        return [r.body for r in self.requests if r.path.endswith("/v1/messages")]

    @staticmethod
    def _error(status: int, type_: str, message: str) -> Reply:
        return Reply(status=status, body={"type": "error",
                                          "error": {"type": type_, "message": message}})

    def precheck(self, req: Recorded) -> Reply | None:
        if not req.path.endswith("/v1/messages"):
            return self._error(404, "not_found_error", f"Unknown path {req.path}")
        body = req.body
        if not isinstance(body, Mapping):
            return self._error(400, "invalid_request_error", "The body is not JSON.")
        bearer = req.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and self.api_key not in (req.headers.get("x-api-key"),
                                                             bearer):
            return self._error(401, "authentication_error", "invalid x-api-key")
        model = str(body.get("model"))
        if self.models is not None and model not in self.models:
            return self._error(404, "not_found_error", f"model: {model}")
        if not isinstance(body.get("max_tokens"), int):
            return self._error(400, "invalid_request_error", "max_tokens: Field required")
        roles = [m.get("role") for m in body.get("messages") or []]
        if not roles or roles[0] != "user" or any(
                roles[i] == roles[i + 1] for i in range(len(roles) - 1)):
            return self._error(400, "invalid_request_error", "messages: roles must alternate "
                               "between user and assistant, starting with user")
        refusal = anthropic_refusal(dict(body))
        if refusal is not None:
            return self._error(400, "invalid_request_error", refusal)
        blocks = prompt_blocks(body)
        marks = sum(1 for b in blocks if "cache_control" in b)
        if marks > 4:
            return self._error(400, "invalid_request_error", "A maximum of 4 blocks with "
                               f"cache_control may be provided. Found {marks}.")
        if self.context_limit is not None:
            n = sum(count_tokens(_block_text(b)) for b in blocks)
            if n > self.context_limit:
                return self._error(400, "invalid_request_error", f"prompt is too long: {n} "
                                   f"tokens > {self.context_limit} maximum")
        return None

    def _usage(self, body: Mapping[str, Any]) -> tuple[int, int, int]:
        """(uncached input, cache read, cache write) tokens."""
        blocks = prompt_blocks(body)
        total = sum(count_tokens(_block_text(b)) for b in blocks)
        h, acc, read, last_mark = hashlib.sha256(), 0, 0, 0
        new: list[str] = []
        for b in blocks:
            h.update(json.dumps({k: v for k, v in b.items() if k != "cache_control"},
                                sort_keys=True).encode())
            acc += count_tokens(_block_text(b))
            if "cache_control" in b and acc >= self.cache_min_tokens:
                digest = h.hexdigest()
                last_mark = acc
                with self._lock:
                    if digest in self._cache:
                        read = acc
                    else:
                        new.append(digest)
        with self._lock:
            self._cache.update(new)
        write = last_mark - read if last_mark > read else 0
        return total - read - write, read, write

    def success_body(self, req: Recorded, reply: Reply) -> Any:
        body = req.body
        text = reply.text or ""
        fresh, read, write = self._usage(body)
        choice = body.get("tool_choice") or {}
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        stop = "end_turn"
        if choice.get("type") == "tool":
            try:
                data = json.loads(text)
            except ValueError:
                data = None
            if isinstance(data, dict):
                content = [{"type": "tool_use", "id": "toolu_fake", "name": choice.get("name"),
                            "input": data}]
                stop = "tool_use"
        u = reply.usage
        with self._lock:
            self._ids += 1
            n = self._ids
        return {
            "id": f"msg_fake{n}", "type": "message", "role": "assistant",
            "model": body.get("model"), "content": content,
            "stop_reason": reply.finish_reason or stop, "stop_sequence": None,
            "usage": {
                "input_tokens": u.get("input_tokens", fresh),
                "cache_read_input_tokens": u.get("cache_read_input_tokens", read),
                "cache_creation_input_tokens": u.get("cache_creation_input_tokens", write),
                "output_tokens": u.get("output_tokens", count_tokens(text)),
            },
        }
