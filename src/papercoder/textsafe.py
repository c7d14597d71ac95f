"""Text from outside made harmless, written once.

- :func:`safe`: for a terminal (and every other place text is shown): control characters,
  escape sequences, bidirectional overrides and lone surrogates made visible.
- :func:`storable`: text that can always be encoded: what arrives from a model or a server
  may hold lone surrogates (a JSON ``\\udXXX`` escape decodes to one), which UTF-8 cannot
  encode."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


def storable(value: Any) -> Any:
    """``value`` with every string safe to encode as UTF-8: lone surrogates (which a JSON
    ``\\udXXX`` escape in a server's answer can produce) become U+FFFD, which no later
    step (a file path, a file's content) can mistake for anything else. The store itself
    keeps lone surrogates it is given directly as visible ``\\udXXX`` escapes
    (``store.db.escape_surrogates``)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, Mapping):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u061c\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff]"
)


def _escape(ch: str) -> str:
    n = ord(ch)
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}"


def safe(text: Any, *, newlines: bool = True) -> str:
    """``text`` made inert for a terminal: C0/C1 control characters (so every ANSI, OSC or
    DCS escape sequence), DEL, bidirectional overrides, line separators and lone surrogates
    are shown as ``\\xNN``/``\\uNNNN``; newlines and tabs are kept (newlines only when
    ``newlines``, else shown as ``\\n`` too). Never raises."""
    if not isinstance(text, str):
        try:
            text = str(text)
        except Exception:  # noqa: BLE001 - a hostile __str__
            text = repr(type(text))
    out = _UNSAFE.sub(lambda m: _escape(m.group()), text)
    if not newlines:
        out = out.replace("\n", "\\n").replace("\t", "\\t")
    return out
