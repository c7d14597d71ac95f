"""Getting a validated object out of a model's text.

Real model output is not always clean JSON: it may sit between ``[CONTENT]`` tags or in a
fenced block, hold raw newlines inside strings, stray backslash escapes, ``//`` comments or
trailing commas. :func:`extract_json` recovers what it can; :func:`validate` checks it against
the schema and raises :class:`~papercoder.errors.FormatError` with a message for the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

from papercoder.errors import FormatError
from papercoder.models.base import Schema, schema_json
from papercoder.textsafe import storable

_CONTENT_RE = re.compile(r"\[CONTENT\](.*?)\[/CONTENT\]", re.S | re.I)
_FENCE_RE = re.compile(r"```(?:json|JSON)?[ \t]*\n(.*?)```", re.S)
_BAD_ESCAPE_RE = re.compile(r'\\(?!["\\/bfnrtu])')
_TRAILING_COMMA_RE = re.compile(r",(\s*[}\]])")
_STRING_OR_COMMENT_RE = re.compile(r'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|//[^\n]*', re.S)
"""A JSON string (an unterminated one runs to the end), or a ``//`` comment outside one."""

MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays accepted in a model's or a server's JSON."""
MAX_JSON_CHARS = 4_000_000
"""Longest JSON text parsed (a few MB; a real answer is far smaller)."""


class TooDeep(ValueError):
    """JSON text nested or sized beyond the bounds: refused before it is parsed."""


class _OutsideStrings:
    """The characters of JSON text that stand outside its strings (quotes left out), walked
    once; when the walk has ended, ``in_str`` says the text ended inside a string and ``esc``
    that it ended just after a backslash there."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.in_str = self.esc = False

    def __iter__(self) -> Iterator[str]:
        in_str = esc = False
        for c in self.text:
            if in_str:
                if esc:
                    esc = False
                elif c == "\\":
                    esc = True
                elif c == '"':
                    in_str = False
            elif c == '"':
                in_str = True
            else:
                yield c
        self.in_str, self.esc = in_str, esc


def json_depth(text: str) -> int:
    """The deepest bracket nesting in ``text``, counting only brackets outside strings."""
    depth = deepest = 0
    for c in _OutsideStrings(text):
        if c in "{[":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif c in "}]":
            depth = max(depth - 1, 0)
    return deepest


def loads_bounded(text: str | bytes, *, strict: bool = True,
                  max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that cannot recurse out of control: text nested deeper than
    ``max_depth`` or longer than MAX_JSON_CHARS raises :class:`TooDeep` (a ValueError)
    before parsing; a RecursionError/MemoryError while parsing becomes one too."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    if len(text) > MAX_JSON_CHARS:
        raise TooDeep(f"the JSON text is {len(text):,} characters long, over the limit of "
                      f"{MAX_JSON_CHARS:,}")
    depth = json_depth(text)
    if depth > max_depth:
        raise TooDeep(f"the JSON is nested {depth} levels deep, over the limit of {max_depth}")
    try:
        return storable(json.loads(text, strict=strict))
    except (RecursionError, MemoryError):
        raise TooDeep("the JSON is too deeply nested or too large to parse") from None


def instructions(schema: Schema) -> str:
    """The system-prompt addition used when an endpoint cannot constrain output itself."""
    return (
        "Answer with one JSON object and nothing else. It must validate against this "
        "JSON Schema:\n" + json.dumps(schema_json(schema), indent=1)
    )


def _candidates(text: str) -> list[str]:
    out = [m.group(1) for m in _CONTENT_RE.finditer(text)]
    out += [m.group(1) for m in _FENCE_RE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        out.append(text[start : end + 1])
    out.append(text)
    return out


def close_truncated(text: str) -> str | None:
    """A JSON object cut off mid-way (an answer that hit its length limit), closed: the open
    string ended, a dangling key given null, a trailing comma dropped, brackets closed."""
    start = text.find("{")
    if start == -1:
        return None
    stack: list[str] = []
    walk = _OutsideStrings(text[start:])
    for c in walk:
        if c in "{[":
            stack.append("}" if c == "{" else "]")
        elif c in "}]":
            if not stack:
                return None
            stack.pop()
            if not stack:
                return None  # a complete object: nothing to close
    if not stack:
        return None
    out = text[start:]
    if walk.in_str:
        out = out[:-1] if walk.esc else out
        out += '"'
    out = out.rstrip()
    if out.endswith(","):
        out = out[:-1]
    elif out.endswith(":"):
        out += " null"
    return out + "".join(reversed(stack))


def _strip_line_comments(s: str) -> str:
    """Drop ``// ...`` comments that are outside strings."""
    return _STRING_OR_COMMENT_RE.sub(lambda m: m.group(0) if m.group(0)[0] == '"' else "", s)


def _loads_lenient(s: str) -> Any:
    s = s.strip()
    attempts = [s]
    fixed = _BAD_ESCAPE_RE.sub(r"\\\\", s)
    attempts.append(fixed)
    attempts.append(_TRAILING_COMMA_RE.sub(r"\1", _strip_line_comments(fixed)))
    err: Exception | None = None
    for a in attempts:
        try:
            return loads_bounded(a, strict=False)
        except json.JSONDecodeError as e:
            err = e
    assert err is not None
    raise err


def extract_json(text: str) -> Any:
    """The first JSON value found in ``text``; raises FormatError if there is none."""
    last: Exception | None = None
    try:
        depth = json_depth(text)
    except RecursionError:  # pragma: no cover - json_depth is iterative
        depth = MAX_JSON_DEPTH + 1
    if depth > MAX_JSON_DEPTH or len(text) > MAX_JSON_CHARS:
        reason = (f"nested {depth} levels deep" if depth > MAX_JSON_DEPTH
                  else f"{len(text):,} characters long")
        raise FormatError(
            f"Your answer's JSON is {reason}, beyond what is accepted (at most "
            f"{MAX_JSON_DEPTH} levels). Reply with a flat, complete JSON object.",
            user_message=f"the model's JSON was {reason}, beyond the parsing bounds")
    for cand in _candidates(text):
        if not cand.strip():
            continue
        try:
            return _loads_lenient(cand)
        except TooDeep as e:  # pragma: no cover - refused above
            raise FormatError(f"Your answer's JSON is unusable: {e}. Reply with a flat JSON "
                              "object.", user_message=f"the model's JSON: {e}") from None
        except json.JSONDecodeError as e:
            last = e
    raise FormatError(
        "Your answer did not contain a valid JSON object"
        + (f" ({last})" if last else "")
        + ". Reply with the JSON object only.",
        user_message="the model's answer held no valid JSON object",
    )


def _got(value: Any) -> str:
    """The offending value, when it is short enough to quote."""
    if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 80:
        return f" (got {value!r})"
    return ""


def validate(data: Any, schema: Schema) -> Any:
    """Validate already-decoded JSON against the schema; FormatError quotes the problem."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        try:
            return schema.model_validate(data)
        except ValidationError as e:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"
                + _got(err.get("input"))
                for err in e.errors()[:8]
            )
            raise FormatError(
                f"Your JSON did not match the required schema: {problems}. "
                "Send the corrected JSON object.",
                user_message=f"the model's JSON did not match the schema ({problems})",
            ) from None
    try:
        jsonschema.validate(data, dict(schema))
    except jsonschema.ValidationError as e:
        path = ".".join(str(p) for p in e.absolute_path) or "answer"
        raise FormatError(
            f"Your JSON did not match the required schema: {path}: {e.message}. "
            "Send the corrected JSON object.",
            user_message=f"the model's JSON did not match the schema ({path}: {e.message})",
        ) from None
    return data


def parse(text: str, schema: Schema) -> Any:
    """Extract and validate: the whole text-to-object path."""
    return validate(extract_json(text), schema)


def parse_truncated(text: str, schema: Schema) -> Any:
    """For an answer cut off by its length limit: the object with its open parts closed,
    validated. Raises FormatError when that does not give a valid object either."""
    closed = close_truncated(text)
    if closed is None:
        raise FormatError("Your answer was cut off before the JSON object was complete. Send "
                          "a shorter, complete JSON object.",
                          user_message="the JSON answer was cut off by the length limit")
    try:
        data = _loads_lenient(closed)
    except (json.JSONDecodeError, TooDeep):
        raise FormatError("Your answer was cut off before the JSON object was complete. Send "
                          "a shorter, complete JSON object.",
                          user_message="the JSON answer was cut off by the length limit") \
            from None
    return validate(data, schema)
