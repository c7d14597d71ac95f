"""User configuration: the config file, where things live, and environment variables.

The config file is YAML at ``$PAPERCODER_CONFIG`` or ``~/.config/papercoder/config.yaml``::

    aliases:
      fast: openai/gpt-4.1-mini
      mybox: {model: openai/qwen2.5-coder, base_url: http://127.0.0.1:8000/v1}
    prices:             # merged over the packaged table
      openai:
        my-finetune: {input: 1.0, cached_input: 0.5, output: 4.0}
    model_settings:     # merged over the packaged table
      openai:
        qwen2.5-coder: {context_window: 32768}
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from papercoder import yamlsafe
from papercoder.errors import ConfigError


class Alias(BaseModel):
    model: str
    """The full ``provider/model`` id the alias stands for."""
    base_url: str | None = None
    """An OpenAI-compatible endpoint, for self-hosted servers."""


class UserConfig(BaseModel):
    aliases: dict[str, Alias] = Field(default_factory=dict)
    """Short names for models."""
    prices: dict[str, dict[str, dict[str, float]]] = Field(default_factory=dict)
    """Price overrides, same layout as the packaged ``prices.yaml``."""
    model_settings: dict[str, Any] = Field(default_factory=dict)
    """Model-settings overrides, same layout as the packaged ``model_settings.yaml``."""


def config_path() -> Path:
    env = os.environ.get("PAPERCODER_CONFIG")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "papercoder" / "config.yaml"


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "papercoder"


def default_db_path() -> Path:
    """The per-user run store and response cache (``$PAPERCODER_DB`` moves it)."""
    env = os.environ.get("PAPERCODER_DB")
    return Path(env).expanduser() if env else data_dir() / "papercoder.db"


def _normalize_aliases(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: ({"model": v} if isinstance(v, str) else v) for k, v in (raw or {}).items()}


@lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> UserConfig:
    p = Path(path)
    try:
        raw = yamlsafe.load(p.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as e:
        raise ConfigError(
            f"The config file {p} could not be read ({type(e).__name__}); fix or remove it."
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"The config file {p} must hold a YAML mapping; fix or remove it.")
    raw["aliases"] = _normalize_aliases(raw.get("aliases") or {})
    try:
        return UserConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(
            f"The config file {p} is invalid at {where}: {first['msg']}; fix or remove it."
        ) from None


def load_user_config() -> UserConfig:
    p = config_path()
    if not p.exists():
        return UserConfig()
    return _load(str(p), p.stat().st_mtime)
