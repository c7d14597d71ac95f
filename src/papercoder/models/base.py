"""The one model interface every backend implements, and the types it exchanges."""

from __future__ import annotations

import base64
import hashlib
import json
import re
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
    """The schema's name as OpenAI's json_schema ``name`` and Anthropic's tool ``name`` accept
    it: ``[a-zA-Z0-9_-]{1,64}`` ("Paper summary (v2)" becomes "Paper_summary_v2")."""
    raw = schema.__name__ if isinstance(schema, type) else str(schema.get("title") or "answer")
    name = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_-]", "_", raw)).strip("_")[:64]
    return name or "answer"


STRICT_KEYWORDS = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "enum", "const",
    "anyOf", "$ref", "$defs", "definitions", "description", "pattern", "format",
    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minItems", "maxItems"})
"""The JSON Schema keywords strict structured output accepts (OpenAI's supported subset;
Anthropic's JSON outputs take the same closed-object form). Others (minProperties,
maxProperties, allOf, not, if/then/else, patternProperties, minLength, default, title, ...)
are dropped from what is sent; the Caller still validates the answer against the full schema."""


def strict_json_schema(schema: Schema) -> dict[str, Any]:
    """A copy of the schema in strict form: every object closed with
    ``additionalProperties: false``, every property required, only :data:`STRICT_KEYWORDS`."""
    def fix(node: Any, names: bool = False) -> Any:
        if isinstance(node, dict) and names:  # keys are property/definition names, keep all
            return {k: fix(v) for k, v in node.items()}
        if isinstance(node, dict):
            node = {k: fix(v, k in ("properties", "$defs", "definitions"))
                    for k, v in node.items() if k in STRICT_KEYWORDS}
            is_object = node.get("type") == "object" or (
                isinstance(node.get("type"), list) and "object" in node["type"])
            if is_object or "properties" in node:
                node.setdefault("properties", {})
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            return node
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    return fix(schema_json(schema))


def strict_problems(js: Any, path: str = "schema") -> list[str]:
    """Where a JSON Schema breaks strict mode: an object not closed, a property not
    required, a keyword outside :data:`STRICT_KEYWORDS`. Empty when it is strict."""
    out: list[str] = []
    if isinstance(js, list):
        for i, v in enumerate(js):
            out += strict_problems(v, f"{path}[{i}]")
        return out
    if not isinstance(js, dict):
        return out
    for k, v in js.items():
        if k not in STRICT_KEYWORDS:
            out.append(f"{path}: keyword {k!r} is not supported")
        elif k in ("properties", "$defs", "definitions") and isinstance(v, dict):
            for name, sub in v.items():
                out += strict_problems(sub, f"{path}.{k}.{name}")
        elif k in ("items", "anyOf", "additionalProperties") and isinstance(v, (dict, list)):
            out += strict_problems(v, f"{path}.{k}")
    t = js.get("type")
    if t == "object" or (isinstance(t, list) and "object" in t) or "properties" in js:
        if js.get("additionalProperties") is not False:
            out.append(f"{path}: object without additionalProperties: false")
        props = js.get("properties")
        if not isinstance(props, dict) or not props:
            out.append(f"{path}: object without properties")
        elif sorted(js.get("required") or []) != sorted(props):
            out.append(f"{path}: not every property is required")
    return out


def strict_ready(schema: Schema) -> bool:
    """Whether the schema keeps its meaning in strict form: no open maps (objects whose
    keys are free, e.g. ``dict[str, X]`` or a settings object), which strict mode cannot
    express. A schema that is not ready is sent by the instructions forms instead."""
    def open_maps(node: Any) -> bool:
        if isinstance(node, list):
            return any(open_maps(v) for v in node)
        if not isinstance(node, dict):
            return False
        t = node.get("type")
        if (t == "object" or (isinstance(t, list) and "object" in t)) and \
                not node.get("properties"):
            return True
        if node.get("additionalProperties") not in (None, False) or "patternProperties" in node:
            return True
        return any(open_maps(v) for k, v in node.items()
                   if k not in ("enum", "const", "description"))

    return not open_maps(schema_json(schema))


def schema_fingerprint(schema: Schema | None) -> str | None:
    if schema is None:
        return None
    return json.dumps(schema_json(schema), sort_keys=True)
