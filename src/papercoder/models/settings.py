"""Data tables for model settings and prices, merged with the user's overrides."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from papercoder.config import load_user_config
from papercoder.models.base import Usage


@cache
def _packaged(name: str) -> dict[str, Any]:
    text = resources.files("papercoder.models").joinpath("data", name).read_text("utf-8")
    return yaml.safe_load(text)


def split_model_id(model_id: str) -> tuple[str, str]:
    for special in ("local", "scripted"):
        if model_id == special or model_id.startswith(special + ":"):
            return special, model_id.partition(":")[2]
    provider, _, name = model_id.partition("/")
    return provider, name


def _lookup(table: dict[str, Any], model_id: str) -> dict[str, Any] | None:
    provider, name = split_model_id(model_id)
    if provider in ("local", "scripted"):
        name = ""
    section = table.get(provider) or {}
    for prefix in sorted(section, key=len, reverse=True):
        if name.startswith(prefix):
            return dict(section[prefix])
    # An OpenAI-compatible server may serve a model under its upstream name.
    if provider == "openai":
        for other in ("anthropic",):
            for prefix in sorted(table.get(other) or {}, key=len, reverse=True):
                if prefix and name.startswith(prefix):
                    return dict(table[other][prefix])
    return None


def _merged(kind: str) -> dict[str, Any]:
    base = {k: dict(v) if isinstance(v, dict) else v for k, v in _packaged(f"{kind}.yaml").items()}
    user = getattr(load_user_config(), kind)
    for provider, entries in user.items():
        if isinstance(entries, dict) and isinstance(base.get(provider), dict):
            base[provider].update(entries)
        else:
            base[provider] = entries
    return base


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None

    def cost(self, usage: Usage) -> float:
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
    return Price(
        input=float(entry.get("input", 0)),
        output=float(entry.get("output", 0)),
        cached_input=entry.get("cached_input"),
        cache_write=entry.get("cache_write"),
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


def settings_for(model_id: str) -> ModelSettings:
    table = _merged("model_settings")
    entry = dict(table.get("default") or {})
    entry.update(_lookup(table, model_id) or {})
    known = {k: entry[k] for k in ModelSettings.__dataclass_fields__ if k in entry}
    return ModelSettings(**known)
