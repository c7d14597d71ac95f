"""``-m local[:PATH]``: the local backend on the chosen runtime (xllamacpp in
:mod:`papercoder.models.local`, or llama-cpp-python in :mod:`papercoder.models.local_llamacpp`).
Kept apart from both so that neither imports the other's module back."""

from __future__ import annotations

from typing import Any

from papercoder.models import local


def local_model(path: str | None = None, *, n_ctx: int | None = None,
                timeout: float | None = None) -> Any:
    """The local backend for ``-m local[:PATH]`` on the chosen runtime."""
    if local.runtime_name() == "llama-cpp-python":
        from papercoder.models.local_llamacpp import LocalModel as LlamaCppModel

        return LlamaCppModel(path, n_ctx=n_ctx, timeout=timeout)
    return local.LocalModel(path, n_ctx=n_ctx, timeout=timeout)
