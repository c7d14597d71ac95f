"""Prompt templates: packaged Jinja2 files, one per step, rendered with StrictUndefined.

A user can override any template by putting a file of the same name in the folder named by
``$PAPERCODER_PROMPTS`` (or ``--prompts``); it takes precedence over the packaged one.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from papercoder.errors import ConfigError


@lru_cache(maxsize=8)
def _env(override: str | None) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if override:
        loaders.append(jinja2.FileSystemLoader(override))
    loaders.append(jinja2.PackageLoader("papercoder", "prompts"))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(name: str, override_dir: str | Path | None = None, **variables: Any) -> str:
    override = str(override_dir) if override_dir else os.environ.get("PAPERCODER_PROMPTS")
    try:
        return _env(override).get_template(f"{name}.j2").render(**variables).strip()
    except jinja2.UndefinedError as e:
        raise ConfigError(f"The prompt template {name}.j2 uses an unknown variable ({e}); "
                          "fix the template override.") from None
    except jinja2.TemplateError as e:
        raise ConfigError(f"The prompt template {name}.j2 is broken ({e}); fix the override.") \
            from None
