"""The providers' published refusals, for the loopback fakes (written from the docs, apart
from papercoder's own code so the fakes do not share its mistakes).

- OpenAI strict structured outputs: every object ``additionalProperties: false``, every
  property in ``required``, only the supported keywords; the schema name
  ``^[a-zA-Z0-9_-]{1,64}$``. Model rules: reasoning models refuse ``temperature``;
  ``o1-mini`` refuses system messages and ``reasoning_effort``; ``gpt-5-chat-latest`` refuses
  ``reasoning_effort`` and strict ``json_schema``.
- Anthropic: forced tool use (``tool_choice`` type ``tool``/``any``) errors on Sonnet 5.5,
  Opus 5.5 and Fable 5.1; Claude 4.7 and later refuse ``temperature``/``top_p``; JSON outputs
  (``output_config.format``) need a closed strict schema and a Claude 4.5+ model; tool names
  ``^[a-zA-Z0-9_-]{1,64}$``.
"""

from __future__ import annotations

import re
from typing import Any

NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
SUPPORTED = {"type", "properties", "required", "additionalProperties", "items", "enum",
             "const", "anyOf", "$ref", "$defs", "definitions", "description", "pattern",
             "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
             "multipleOf", "minItems", "maxItems"}


def strict_violation(js: Any, path: str = "schema") -> str | None:
    """The first way the schema breaks strict mode, or None."""
    if isinstance(js, list):
        for i, v in enumerate(js):
            bad = strict_violation(v, f"{path}[{i}]")
            if bad:
                return bad
        return None
    if not isinstance(js, dict):
        return None
    for k in js:
        if k not in SUPPORTED:
            return f"{path}: '{k}' is not permitted"
    is_obj = js.get("type") == "object" or "properties" in js
    if is_obj:
        if js.get("additionalProperties") is not False:
            return f"{path}: 'additionalProperties' is required to be supplied and to be false"
        props = js.get("properties") or {}
        if sorted(js.get("required") or []) != sorted(props):
            return f"{path}: 'required' is required to be supplied and to be an array " \
                   "including every key in properties"
        for name, sub in props.items():
            bad = strict_violation(sub, f"{path}.properties.{name}")
            if bad:
                return bad
    for k in ("items", "anyOf", "$defs", "definitions"):
        v = js.get(k)
        if isinstance(v, dict) and k in ("$defs", "definitions"):
            for name, sub in v.items():
                bad = strict_violation(sub, f"{path}.{k}.{name}")
                if bad:
                    return bad
        elif v is not None:
            bad = strict_violation(v, f"{path}.{k}")
            if bad:
                return bad
    return None


def openai_refusal(body: dict[str, Any]) -> tuple[str, str | None] | None:
    """(message, param) of the 400 OpenAI gives this request, or None."""
    model = str(body.get("model"))
    reasoning = re.match(r"^(o\d|gpt-5)(?!-chat)", model) is not None
    if reasoning and "temperature" in body:
        return ("Unsupported parameter: 'temperature' is not supported with this model.",
                "temperature")
    if (model.startswith("o1-mini") or model.startswith("gpt-5-chat")) \
            and "reasoning_effort" in body:
        return ("Unrecognized request argument supplied: reasoning_effort", "reasoning_effort")
    if model.startswith("o1-mini") and any(
            m.get("role") == "system" for m in body.get("messages") or []):
        return ("Unsupported value: 'messages[0].role' does not support 'system' with this "
                "model.", "messages[0].role")
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        js = fmt.get("json_schema") or {}
        if model.startswith("gpt-5-chat"):
            return ("response_format json_schema is not supported with this model.",
                    "response_format")
        if not NAME_RE.match(str(js.get("name", ""))):
            return ("Invalid 'response_format.json_schema.name': string does not match "
                    "pattern.", "response_format.json_schema.name")
        if js.get("strict"):
            bad = strict_violation(js.get("schema"))
            if bad:
                return (f"Invalid schema for response_format '{js.get('name')}': {bad}.",
                        "response_format")
    return None


_NO_FORCED_TOOL = ("claude-sonnet-5-5", "claude-opus-5-5", "claude-fable-5-1")
_NO_SAMPLING = re.compile(r"^claude-(opus-4-[78]|(opus|sonnet|haiku|fable|mythos)-5|mythos)")
_JSON_OUTPUTS = re.compile(r"^claude-(opus-4-[5-8]|sonnet-4-[56]|haiku-4-5|"
                           r"(opus|sonnet|haiku|fable|mythos)-5)")


def anthropic_refusal(body: dict[str, Any]) -> str | None:
    """The message of the 400 invalid_request_error Anthropic gives this request, or None."""
    model = str(body.get("model"))
    choice = body.get("tool_choice") or {}
    if choice.get("type") in ("tool", "any") and model.startswith(_NO_FORCED_TOOL):
        return "tool_choice: forced tool use is not supported with this model."
    if _NO_SAMPLING.match(model):
        for p in ("temperature", "top_p", "top_k"):
            if p in body:
                return f"{p}: is not supported for this model; remove it or use the default."
    for t in body.get("tools") or []:
        if not NAME_RE.match(str(t.get("name", ""))):
            return "tools.0.name: String should match pattern '^[a-zA-Z0-9_-]{1,64}$'"
    fmt = (body.get("output_config") or {}).get("format") or body.get("output_format")
    if fmt:
        if not _JSON_OUTPUTS.match(model):
            return "output_config.format: structured outputs are not supported by this model."
        bad = strict_violation(fmt.get("schema"))
        if bad:
            return f"output_config.format.schema: {bad}"
    return None
