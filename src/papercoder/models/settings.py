"""Data tables for model settings and prices, merged with the user's overrides."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from papercoder.config import load_user_config
from papercoder.models.base import Usage


@cache
def _packaged(name: str) -> dict[str, Any]:
    text = resources.files("papercoder.models").joinpath("data").joinpath(name).read_text("utf-8")
    return yaml.safe_load(text)


def split_model_id(model_id: str) -> tuple[str, str]:
    for special in ("local", "scripted"):
        if model_id == special or model_id.startswith(special + ":"):
            return special, model_id.partition(":")[2]
    provider, _, name = model_id.partition("/")
    return provider, name


_RELEASE_SUFFIX = re.compile(
    r"(?:-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{4}|latest|v\d[\w.]*)|[@:].*)*\Z")
"""What may follow a row's name in a model id and still be that model: a dated snapshot
(-20250514, -2025-04-14, -0613), -latest, a -v1 version, or a platform's @/: tail."""


def matches(key: str, name: str) -> bool:
    """Whether a table row's key covers a model name: the same name, or that name with a
    release suffix; never a sibling (``gpt-5.4`` is not ``gpt-5.4-mini``). A key ending in
    ``*`` covers every name that starts with the rest."""
    if key.endswith("*"):
        return name.startswith(key[:-1])
    if not name.startswith(key):
        return False
    return _RELEASE_SUFFIX.match(name[len(key):]) is not None


def _lookup(table: dict[str, Any], model_id: str) -> dict[str, Any] | None:
    provider, name = split_model_id(model_id)
    if provider in ("local", "scripted"):
        name = ""
    section = table.get(provider) or {}
    if not isinstance(section, dict):
        return None
    for key in sorted(section, key=lambda k: len(str(k)), reverse=True):
        if matches(str(key), name) and isinstance(section[key], dict):
            return dict(section[key])
    # An OpenAI-compatible server may serve a model under its upstream name.
    if provider == "openai":
        for other in ("anthropic",):
            section = table.get(other) or {}
            for key in sorted(section, key=lambda k: len(str(k)), reverse=True):
                if key and matches(str(key), name) and isinstance(section[key], dict):
                    return dict(section[key])
    return None


def _merged(kind: str) -> dict[str, Any]:
    base = {k: dict(v) if isinstance(v, dict) else v for k, v in _packaged(f"{kind}.yaml").items()}
    user = getattr(load_user_config(), kind)
    for provider, entries in user.items():
        if isinstance(entries, dict) and isinstance(base.get(provider), dict):
            section = base[provider]
            for key, row in entries.items():
                key = str(key)
                if key in section and isinstance(section[key], dict) and isinstance(row, dict):
                    section[key] = {**section[key], **row}  # a tweak to a packaged row
                elif key in section or key.endswith("*") or key == "":
                    section[key] = row
                else:
                    # The user's own rows cover names that start with them ("qwq" covers
                    # "qwq-32b"), as they always have.
                    section[key + "*"] = row
        else:
            base[provider] = entries
    return base


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    long_context: Price | None = None
    """Rates for a whole call whose prompt is over ``long_above`` tokens (OpenAI's tier)."""
    long_above: int | None = None

    def cost(self, usage: Usage) -> float:
        if self.long_context is not None and self.long_above is not None \
                and usage.prompt_tokens > self.long_above:
            return self.long_context.cost(usage)
        cached = usage.cached_prompt_tokens
        write = usage.cache_write_tokens
        fresh = max(usage.prompt_tokens - cached - write, 0)
        return (
            fresh * self.input
            + cached * (self.cached_input if self.cached_input is not None else self.input)
            + write * (self.cache_write if self.cache_write is not None else self.input)
            + usage.completion_tokens * self.output
        ) / 1_000_000


def price_for(model_id: str) -> Price | None:
    """The price of a model, or None when unknown (its cost then shows as "unknown")."""
    entry = _lookup(_merged("prices"), model_id)
    if entry is None:
        return None
    return _price(entry)


def _price(entry: dict[str, Any]) -> Price:
    long = entry.get("long_context")
    tier, above = None, None
    if isinstance(long, dict) and long.get("above"):
        tier = _price({k: v for k, v in long.items() if k != "above"})
        above = int(long["above"])
    return Price(
        input=float(entry.get("input", 0)),
        output=float(entry.get("output", 0)),
        cached_input=entry.get("cached_input"),
        cache_write=entry.get("cache_write"),
        long_context=tier,
        long_above=above,
    )


def cost_of(model_id: str, usage: Usage) -> float | None:
    p = price_for(model_id)
    return None if p is None else p.cost(usage)


@dataclass(frozen=True)
class ModelSettings:
    context_window: int = 32768
    max_output: int = 4096
    reasoning: bool = False
    reasoning_effort: str | None = None
    rpm: float | None = None
    """Requests per minute your account may send (batch runs share it); None: no limit."""
    tpm: float | None = None
    """Tokens per minute, likewise."""
    vision: bool = True
    """Takes image input (``--pdf-reader model``). False for models known to take none;
    unknown models are assumed to take images (a server that refuses them fails the
    first page's call with its own error)."""
    input_limit: int | None = None
    """The most prompt tokens the model accepts, where that is less than the window."""
    sampling: bool = True
    """Takes temperature/top_p; False for reasoning models and Claude 4.7 and later."""
    system_role: bool = True
    """Takes system messages; False (o1-mini): they are sent as user text."""
    strict_schema: bool = True
    """OpenAI ``response_format: json_schema`` with ``strict: true``."""
    native_structured: bool = False
    """Anthropic JSON outputs (``output_config.format``)."""
    forced_tool: bool = True
    """Anthropic ``tool_choice: {type: tool}``; False where the model refuses it."""
    source: str = ""
    known: bool = True
    """False when the model has no row of its own and these are the defaults."""

    @property
    def takes_sampling(self) -> bool:
        """Whether temperature/top_p may be sent (never to reasoning models)."""
        return self.sampling and not self.reasoning

    @property
    def window(self) -> int:
        """The window a prompt may fill: the input limit plus room for a default answer,
        when the model has an input limit below its window."""
        if self.input_limit and self.input_limit < self.context_window:
            return min(self.context_window, self.input_limit + min(self.max_output, 4096))
        return self.context_window

    def completion_room(self, prompt_tokens: int) -> int:
        """The largest answer that fits beside a prompt of this size (at least 1)."""
        return max(1, min(self.max_output, self.context_window - prompt_tokens))


_SAID: set[str] = set()
log = logging.getLogger("papercoder")


def settings_for(model_id: str) -> ModelSettings:
    table = _merged("model_settings")
    entry = dict(table.get("default") or {})
    row = _lookup(table, model_id)
    entry.update(row or {})
    known = {k: entry[k] for k in ModelSettings.__dataclass_fields__ if k in entry}
    known["known"] = row is not None
    s = ModelSettings(**known)
    if row is None and model_id not in _SAID and \
            split_model_id(model_id)[0] not in ("local", "scripted"):
        # (A local GGUF model's window comes from its own metadata, not this table.)
        _SAID.add(model_id)
        log.warning("%s has no row in the model table; using the defaults: a %s-token window, "
                    "%s-token answers, %s (add it under model_settings: in your config).",
                    model_id, f"{s.context_window:,}", f"{s.max_output:,}",
                    "temperature sent" if s.sampling else "no temperature")
    return s
