"""The one model interface every backend implements, and the types it exchanges."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypedDict, runtime_checkable

from pydantic import BaseModel


class _MessageBase(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ImagePart:
    """An image sent with a message (a rendered PDF page). Only its hash and size are ever
    logged or hashed into cache keys; the bytes go to the provider alone."""

    data: bytes
    media_type: str = "image/png"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def placeholder(self) -> dict[str, Any]:
        """What stands for the image in the log and in cache keys."""
        return {"image": self.media_type, "sha256": self.sha256, "bytes": len(self.data)}


class Message(_MessageBase, total=False):
    cache: bool
    """Mark the end of a long stable prefix: providers that need explicit prompt-cache
    breakpoints (Anthropic) put one after this message."""
    images: list[ImagePart]
    """Images that follow the text of this (user) message. Only backends that can see
    images take them (:func:`takes_images`); the others are refused before any call."""


def has_images(messages: Sequence[Message]) -> bool:
    return any(m.get("images") for m in messages)


def loggable(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The messages as they are logged and hashed: each image replaced by its placeholder
    (media type, SHA-256, size), so the log holds no image bytes and the cache key still
    changes with the page."""
    out: list[dict[str, Any]] = []
    for m in messages:
        d: dict[str, Any] = dict(m)
        if "images" in d:
            d["images"] = [im.placeholder() for im in d["images"] or []]
        out.append(d)
    return out


Schema = type[BaseModel] | Mapping[str, Any]
"""A pydantic model class, or a JSON Schema as a mapping."""


@dataclass
class Usage:
    prompt_tokens: int = 0
    """All input tokens, including those served from a provider's prompt cache."""
    cached_prompt_tokens: int = 0
    """Input tokens read from the provider's prompt cache (billed at the cached rate)."""
    completion_tokens: int = 0
    cache_write_tokens: int = 0
    """Input tokens written to the provider's prompt cache (Anthropic bills a premium)."""

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.cached_prompt_tokens + other.cached_prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Completion:
    text: str
    model: str
    usage: Usage = field(default_factory=Usage)
    latency: float = 0.0
    finish_reason: str | None = None
    parsed: Any = None
    """The validated object when a schema was given: a pydantic instance for a model
    class, plain JSON data for a JSON-Schema mapping."""
    cached: bool = False
    """True when the answer came from papercoder's own response cache (no call was made)."""
    cost: float | None = None
    """Dollars, or None when the model's price is unknown. Filled in by the caller."""
    exchanges: list[int] = field(default_factory=list)
    """The store's ids of the exchanges this answer came from (pieces of a continued one)."""


@runtime_checkable
class Model(Protocol):
    """A chat model. ``name`` is the full ``provider/model`` id used for cache keys and prices."""

    name: str
    provider: str

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        schema: Schema | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> Completion:
        """One exchange. ``meta`` (stage, file) is informational; only the scripted model
        uses it to pick an answer."""
        ...


def schema_json(schema: Schema) -> dict[str, Any]:
    """The JSON Schema of a pydantic class or mapping."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        return schema.model_json_schema()
    return dict(schema)


def schema_name(schema: Schema) -> str:
    if isinstance(schema, type):
        return schema.__name__
    return str(schema.get("title") or "answer").replace(" ", "_")


def strict_json_schema(schema: Schema) -> dict[str, Any]:
    """A copy of the schema in the strict form OpenAI's ``json_schema`` mode wants: every
    object closed, every property required, ``$defs`` kept."""
    def fix(node: Any, names: bool = False) -> Any:
        if isinstance(node, dict) and names:  # keys are property/definition names, keep all
            return {k: fix(v) for k, v in node.items()}
        if isinstance(node, dict):
            node = {k: fix(v, k in ("properties", "$defs", "definitions"))
                    for k, v in node.items() if k not in ("default", "title")}
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            return node
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return fix(schema_json(schema))


def schema_fingerprint(schema: Schema | None) -> str | None:
    if schema is None:
        return None
    return json.dumps(schema_json(schema), sort_keys=True)
