"""A fake OpenAI chat-completions server on 127.0.0.1.

In-process::

    with FakeOpenAIServer(responder=lambda body: "hi") as srv:
        model = OpenAIModel("x", base_url=srv.url)
        srv.enqueue(Reply(status=429, headers={"Retry-After": "1"}))

As a process (for tests that kill and restart papercoder)::

    python -m tests.fakes.openai_server --port-file PORT --script SCRIPT.json [--log REQ.jsonl]

The script is JSON or YAML: ``replies`` (queued, in order), ``rules`` (``{"contains": s,
"reply": r}``: the first rule whose text occurs in the request's messages answers, every
time), ``default`` (the answer otherwise), ``responder`` ("module:function" of the request
body), ``delay``, ``api_key``, ``models``, ``reject_formats``, ``prefix_cache_min``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .contracts import openai_refusal
from .server import (
    FakeServer,
    Recorded,
    Reply,
    Responder,
    count_tokens,
    serve_until_terminated,
)


def message_text(body: Mapping[str, Any]) -> str:
    """All message contents of a chat request, joined."""
    parts = []
    for m in body.get("messages") or []:
        c = m.get("content")
        if isinstance(c, list):
            parts.extend(str(b.get("text", "")) for b in c if isinstance(b, Mapping))
        else:
            parts.append(str(c or ""))
    return "\n".join(parts)


def last_user_text(body: Mapping[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def echo(body: Mapping[str, Any]) -> str:
    """A default responder: repeats the last user message."""
    return "echo: " + last_user_text(body)


class FakeOpenAIServer(FakeServer):
    """Speaks ``POST /v1/chat/completions`` and ``GET /v1/models``.

    Server-side rules (checked before the queue, so they never consume a scripted reply):
    ``api_key`` (else 401), ``models`` (else 404 model_not_found), ``reject_formats``
    (response_format types answered with 400), ``reject_params`` (request fields answered
    with 400), ``context_limit`` (prompt tokens above it: 400 context_length_exceeded).
    ``prefix_cache_min`` simulates OpenAI's automatic prompt cache: a prefix of whole messages
    seen before, of at least that many tokens, is reported as ``cached_tokens``.
    """

    def __init__(
        self,
        responder: Responder | None = echo,
        *,
        port: int = 0,
        delay: float = 0.0,
        api_key: str | None = None,
        models: Iterable[str] | None = None,
        reject_formats: Iterable[str] = (),
        reject_params: Iterable[str] = (),
        contracts: bool = True,
        context_limit: int | None = None,
        prefix_cache_min: int | None = None,
    ) -> None:
        super().__init__(responder, port=port, delay=delay, api_key=api_key)
        self.models = set(models) if models is not None else None
        self.contracts = contracts
        self.reject_formats = set(reject_formats)
        self.reject_params = set(reject_params)
        self.context_limit = context_limit
        self.prefix_cache_min = prefix_cache_min
        self._prefixes: set[str] = set()
        self._ids = 0

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client (ends in ``/v1``)."""
        return self.root + "/v1"

    def chat_requests(self) -> list[Mapping[str, Any]]:
        return [r.body for r in self.requests
                if r.method == "POST" and r.path.endswith("/chat/completions")]

    def format_attempts(self) -> list[str]:
        """The response_format type of every chat request ("none" when absent)."""
        return [str((b.get("response_format") or {}).get("type", "none"))
                for b in self.chat_requests()]

    # -- rules ------------------------------------------------------------------------------
    @staticmethod
    def _error(status: int, message: str, type_: str = "invalid_request_error",
               code: str | None = None, param: str | None = None,
               headers: dict[str, str] | None = None) -> Reply:
        return Reply(status=status, headers=dict(headers or {}),
                     body={"error": {"message": message, "type": type_, "code": code,
                                     "param": param}})

    def handle_get(self, req: Recorded) -> Reply:
        if req.path.rstrip("/").endswith("/models"):
            names = sorted(self.models or {"fake-model"})
            return Reply(body={"object": "list", "data": [
                {"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names]})
        return super().handle_get(req)

    def precheck(self, req: Recorded) -> Reply | None:
        if not req.path.endswith("/chat/completions"):
            return self._error(404, f"Unknown path {req.path}.")
        body = req.body
        if not isinstance(body, Mapping):
            return self._error(400, "We could not parse the JSON body of your request.")
        if self.api_key is not None and req.headers.get("authorization") != \
                f"Bearer {self.api_key}":
            return self._error(401, "Incorrect API key provided.", code="invalid_api_key")
        model = str(body.get("model"))
        if self.models is not None and model not in self.models:
            return self._error(404, f"The model `{model}` does not exist or you do not have "
                               "access to it.", code="model_not_found")
        refusal = openai_refusal(dict(body)) if self.contracts else None
        if refusal is not None:
            return self._error(400, refusal[0], param=refusal[1])
        fmt = (body.get("response_format") or {}).get("type")
        if fmt in self.reject_formats:
            return self._error(400, f"response_format type '{fmt}' is not supported by this "
                               "server.", param="response_format")
        for p in sorted(self.reject_params):
            if p in body:
                return self._error(400, f"Unsupported parameter: '{p}' is not supported with "
                                   "this model.", code="unsupported_parameter", param=p)
        if self.context_limit is not None:
            n = count_tokens(message_text(body))
            if n > self.context_limit:
                return self._error(400, f"This model's maximum context length is "
                                   f"{self.context_limit} tokens. However, your messages "
                                   f"resulted in {n} tokens.", code="context_length_exceeded")
        return None

    def _cached_tokens(self, messages: list[Mapping[str, Any]],
                       schema_first: Any = None) -> int:
        if self.prefix_cache_min is None:
            return 0
        best, acc, h = 0, 0, hashlib.sha256()
        found: list[str] = []
        # OpenAI caches the structured-output schema ahead of the messages.
        h.update(json.dumps(schema_first or None, sort_keys=True).encode())
        for m in messages:
            h.update(json.dumps([m.get("role"), m.get("content")]).encode())
            acc += count_tokens(str(m.get("content") or ""))
            digest = h.hexdigest()
            found.append(digest)
            with self._lock:
                if digest in self._prefixes and acc >= self.prefix_cache_min:
                    best = acc
        with self._lock:
            self._prefixes.update(found)
        return best

    def success_body(self, req: Recorded, reply: Reply) -> Any:
        body = req.body
        text = reply.text or ""
        prompt = count_tokens(message_text(body))
        fmt = body.get("response_format") or {}
        cached = self._cached_tokens(list(body.get("messages") or []),
                                     fmt.get("json_schema") if isinstance(fmt, Mapping) else None)
        u = reply.usage
        prompt = u.get("prompt_tokens", prompt)
        cached = u.get("cached_tokens", cached)
        completion = u.get("completion_tokens", count_tokens(text))
        with self._lock:
            self._ids += 1
            n = self._ids
        return {
            "id": f"chatcmpl-fake{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": reply.finish_reason or "stop", "logprobs": None}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                      "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": cached}},
        }


# -- as a process -------------------------------------------------------------------------
def _load_script(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    text = Path(path).read_text(encoding="utf-8")
    if path.endswith((".yaml", ".yml")):
        import yaml

        return dict(yaml.safe_load(text) or {})
    return dict(json.loads(text))


def responder_from_script(script: Mapping[str, Any]) -> Responder:
    """The default responder a script describes: rules, then ``responder``, then ``default``."""
    rules = list(script.get("rules") or [])
    fallback: Responder = echo
    if script.get("responder"):
        mod, _, fn = str(script["responder"]).partition(":")
        fallback = getattr(importlib.import_module(mod), fn)
    default = script.get("default")

    def respond(body: Any) -> Any:
        text = message_text(body) if isinstance(body, Mapping) else ""
        for rule in rules:
            if str(rule.get("contains", "")) in text:
                return rule.get("reply", "")
        if default is not None:
            return default
        return fallback(body)

    return respond


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--script", help="JSON/YAML script of replies and rules")
    ap.add_argument("--log", help="append every request as a JSON line here")
    args = ap.parse_args(argv)
    script = _load_script(args.script)
    srv = FakeOpenAIServer(
        responder_from_script(script), port=args.port, delay=float(script.get("delay", 0)),
        api_key=script.get("api_key"), models=script.get("models"),
        reject_formats=script.get("reject_formats") or (),
        prefix_cache_min=script.get("prefix_cache_min"),
    )
    if args.log:
        log_lock = threading.Lock()

        def log(req: Recorded) -> None:
            line = json.dumps({"time": time.time(), "method": req.method, "path": req.path,
                               "body": req.body})
            with log_lock, open(args.log, "a", encoding="utf-8") as f:
                f.write(line + "\n")

        srv.on_request = log
    srv.enqueue(*(script.get("replies") or []))
    serve_until_terminated(srv, args.port_file,
                           banner=lambda: f"fake OpenAI server on {srv.url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
