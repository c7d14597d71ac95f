"""Text that can always be encoded: what arrives from a model or a server may hold lone
surrogates (a JSON ``\\udXXX`` escape decodes to one), which UTF-8 cannot encode."""

from __future__ import annotations

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
