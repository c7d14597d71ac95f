"""Shared by the hosted backends: which endpoints may go without a key, and the one-sentence
errors a failed provider call turns into (after the SDK's own retries)."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from papercoder.errors import (
    AuthError,
    ContextOverflowError,
    MalformedResponseError,
    ModelError,
    RetriesExhaustedError,
    UnknownModelError,
)
from papercoder.models.structured import loads_bounded

_CONTEXT_HINTS = ("context_length_exceeded", "maximum context length", "context window",
                  "prompt is too long", "too many tokens", "context length")


def is_private_url(url: str | None) -> bool:
    """True for endpoints on this machine or a private network (no API key needed there)."""
    if not url:
        return False
    host = (urlsplit(url if "//" in url else "//" + url).hostname or "").lower()
    if not host:
        return False
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # a bare name such as a docker-compose service
    return ip.is_loopback or ip.is_private or ip.is_link_local


def one_line(text: object, limit: int = 180) -> str:
    """A server's error text squeezed into a clause: one line, no inner full stops."""
    s = re.sub(r"\s+", " ", str(text or "")).strip()
    s = re.sub(r"\.\s+(?=\S)", "; ", s).rstrip(" .")
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


@dataclass
class Failure:
    """A provider failure, reduced to what the user needs to hear."""

    kind: str
    """auth, permission, not_found, context, rate, quota, server, timeout, connection,
    malformed, or status (any other HTTP error)."""
    status: int | None = None
    detail: str = ""


def _attempts(retries: int) -> str:
    return "1 attempt" if retries == 0 else f"{retries + 1} attempts"


def looks_like_context_overflow(text: str) -> bool:
    low = text.lower()
    return any(h in low for h in _CONTEXT_HINTS)


def to_error(
    f: Failure,
    *,
    where: str,
    model: str,
    key_var: str,
    retries: int,
    timeout: float,
    attempts: int | None = None,
) -> ModelError:
    """The user-facing error for a failure; ``where`` is e.g. "The OpenAI API". ``attempts``
    is the number of attempts really made (default: every retry was used)."""
    tries = _attempts(retries) if attempts is None else _attempts(attempts - 1)
    detail = one_line(f.detail)
    said = f" ({detail})" if detail else ""
    if f.kind == "auth":
        return AuthError(f"{where} rejected the API key{said}; check {key_var}.")
    if f.kind == "permission":
        return AuthError(f"{where} refused access to {model}{said}; check that the key in "
                         f"{key_var} may use this model.")
    if f.kind == "not_found":
        if "model" in detail.lower() or not detail:
            return UnknownModelError(f"{where} does not know the model '{model}'{said}; check "
                                     "the name after the provider prefix.")
        return ModelError(f"{where} answered 404 Not Found{said}; check the base URL (for "
                          "OpenAI-compatible servers it usually ends in /v1).")
    if f.kind == "context":
        return ContextOverflowError(f"The request does not fit the context window of {model}"
                                    f"{said}; use a model with a larger window.")
    if f.kind == "quota":
        return ModelError(f"{where} says the account has no quota left{said}; check your plan "
                          "and billing.")
    if f.kind == "rate":
        return RetriesExhaustedError(f"{where} answered 429 Too Many Requests after {tries}; "
                                     "wait a while and retry later.")
    if f.kind == "server":
        return RetriesExhaustedError(f"{where} failed with HTTP {f.status}{said} after {tries}; "
                                     "retry later.")
    if f.kind == "timeout":
        unit = "second" if timeout == 1 else "seconds"
        return RetriesExhaustedError(f"{where} did not answer within {timeout:g} {unit} "
                                     f"({tries}); retry later or raise --timeout.")
    if f.kind == "connection":
        target = where[:1].lower() + where[1:]  # "the server at ..." / "the OpenAI API"
        return RetriesExhaustedError(f"Could not connect to {target} ({tries}); "
                                     "check that it is running and the URL is right, or retry "
                                     "later.")
    if f.kind == "malformed":
        return ModelError(f"{where} sent a response that is not a valid answer{said}; check "
                          "that the URL points at the right kind of API.")
    return ModelError(f"{where} answered HTTP {f.status}{said}; check the model settings.")


def body_detail(body: object, fallback: str) -> str:
    """The human part of an error body: ``{"error": {"message": ...}}`` or similar."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            return str(err.get("message") or err.get("code") or err.get("type") or "")
        return str(err)
    return str(body or fallback)


def status_failure(status: int, detail: str, code: str = "") -> Failure:
    """Classify an HTTP error status the same way for every provider."""
    kinds = {401: "auth", 403: "permission", 404: "not_found", 402: "quota"}
    if status in kinds:
        return Failure(kinds[status], status, detail)
    if status == 429:
        quota = code == "insufficient_quota" or "quota" in detail.lower()
        return Failure("quota" if quota else "rate", status, detail)
    if status in (400, 413, 422) and looks_like_context_overflow(f"{code} {detail}"):
        return Failure("context", status, detail)
    return Failure("server" if status >= 500 else "status", status, detail)


NO_KEY = "not-needed"
"""Placeholder key for self-hosted servers that check none (the SDKs insist on one)."""


def endpoint_from(base_url: str | None, env_var: str) -> str | None:
    """The endpoint to use: the argument, else the environment variable, without a final /."""
    url = base_url or os.environ.get(env_var) or None
    return url.rstrip("/") if url else None


def api_key(env_var: str, endpoint: str | None) -> str | None:
    """The key from the environment; a placeholder for a private endpoint; else None."""
    key = os.environ.get(env_var, "").strip()
    if key:
        return key
    return NO_KEY if endpoint and is_private_url(endpoint) else None


def shape_error(where: str, problem: str) -> str:
    """One sentence for a 200 answer whose body has the wrong shape."""
    return (f"{where} sent a response that is not a valid answer ({problem}); check that the "
            "URL points at the right kind of API.")


def describe(value: Any) -> str:
    """The JSON type of a value, for shape errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def body_object(
    body: str, where: str,
) -> tuple[dict[str, Any], Callable[[str], MalformedResponseError]]:
    """The JSON object in a 200 body, and ``bad``: the MalformedResponseError (carrying the
    body, which the Caller stores) for a problem the caller finds in it. A body that is not
    JSON, or not an object, is already such an error."""
    def bad(problem: str) -> MalformedResponseError:
        return MalformedResponseError(shape_error(where, problem), raw=body)

    try:
        data = loads_bounded(body)
    except ValueError as e:
        raise bad(f"the body is not JSON: {one_line(e, 80)}") from None
    if not isinstance(data, dict):
        raise bad(f"the body is {describe(data)}, not an object")
    return data, bad
