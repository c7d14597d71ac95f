"""Model backends behind one async interface, chosen by name; SDKs are imported lazily."""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

from papercoder.config import load_user_config
from papercoder.errors import ConfigError
from papercoder.models.base import Completion, ImagePart, Message, Model, Usage

__all__ = ["Completion", "ImagePart", "Message", "Model", "Usage", "get_model", "resolve_name",
           "default_model_name", "takes_images", "PROVIDERS"]

# provider -> "module:Class"; imported only when used.
PROVIDERS: dict[str, str] = {
    "openai": "papercoder.models.openai_api:OpenAIModel",
    "anthropic": "papercoder.models.anthropic_api:AnthropicModel",
    "scripted": "papercoder.models.scripted:ScriptedModel",
    "local": "papercoder.models.embedded:local_model",
}

HOSTED_DEFAULTS = {"OPENAI_API_KEY": "openai/gpt-5.4", "ANTHROPIC_API_KEY":
                   "anthropic/claude-sonnet-4-6"}


def default_model_name() -> tuple[str, bool]:
    """The model to use when none is given, and whether it is the embedded offline one."""
    for var, name in HOSTED_DEFAULTS.items():
        if os.environ.get(var):
            return name, False
    return "local", True


def resolve_name(name: str, base_url: str | None = None) -> tuple[str, str | None]:
    """Expand an alias; returns (provider/model or provider:path, base_url)."""
    aliases = load_user_config().aliases
    seen = set()
    while name in aliases and name not in seen:
        seen.add(name)
        alias = aliases[name]
        name, base_url = alias.model, base_url or alias.base_url
    return name, base_url


def takes_images(model: Model) -> bool:
    """Whether a backend and model take image input: the hosted backends say so from the
    settings table (``vision``), the scripted model does, the local llama.cpp one does not."""
    return bool(getattr(model, "takes_images", False))


def _load(provider: str) -> Any:
    mod, _, cls = PROVIDERS[provider].partition(":")
    return getattr(import_module(mod), cls)


def get_model(name: str, *, base_url: str | None = None, timeout: float = 600.0,
              max_retries: int = 5, max_wait: float | None = None) -> Model:
    """Build a backend from ``provider/model``, ``scripted:PATH``, ``local[:PATH]`` or an alias."""
    name, base_url = resolve_name(name.strip(), base_url)
    if name == "local" or name.startswith("local:"):
        path = name.partition(":")[2] or None
        return _load("local")(path, timeout=timeout)
    if name.startswith("scripted:"):
        return _load("scripted").from_path(name.partition(":")[2])
    provider, sep, model = name.partition("/")
    if not sep or not model or provider not in ("openai", "anthropic"):
        raise ConfigError(
            f"Unknown model '{name}': use provider/model (openai/..., anthropic/...), "
            "local:PATH.gguf, scripted:PATH, or an alias from your config file."
        )
    from papercoder.models.retry import default_max_wait

    return _load(provider)(model, base_url=base_url, timeout=timeout, max_retries=max_retries,
                           max_wait=default_max_wait() if max_wait is None else max_wait)
