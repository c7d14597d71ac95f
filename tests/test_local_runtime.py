"""The local backend's runtime choice, thread count and GGUF header reader (fast: no model
is loaded)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from papercoder.errors import ConfigError
from papercoder.models import local


def _gguf(path: Path, pairs: list[tuple[str, int, bytes]]) -> Path:
    """A GGUF header with the given (key, type, packed value) pairs and no tensors."""
    out = b"GGUF" + struct.pack("<IQQ", 3, 0, len(pairs))
    for key, kind, value in pairs:
        k = key.encode()
        out += struct.pack("<Q", len(k)) + k + struct.pack("<I", kind) + value
    path.write_bytes(out)
    return path


def _str(s: str) -> bytes:
    return struct.pack("<Q", len(s)) + s.encode()


def test_context_length_comes_from_the_header(tmp_path: Path) -> None:
    tokens = struct.pack("<IQ", 8, 2) + _str("a") + _str("bb")  # an array of strings, skipped
    f = _gguf(tmp_path / "m.gguf", [("general.architecture", 8, _str("llama")),
                                    ("tokenizer.tokens", 9, tokens),
                                    ("llama.context_length", 4, struct.pack("<I", 8192))])
    assert local.read_context_length(f) == 8192
    none = _gguf(tmp_path / "n.gguf", [("general.architecture", 8, _str("llama"))])
    assert local.read_context_length(none) is None


@pytest.mark.parametrize("data", [b"", b"GGUF", b"not a model at all" * 10,
                                  b"GGUF" + struct.pack("<IQQ", 3, 0, 10**9),
                                  b"GGUF" + struct.pack("<IQQQ", 3, 0, 1, 2**40)])
def test_a_file_that_is_not_gguf_is_one_sentence(tmp_path: Path, data: bytes) -> None:
    f = tmp_path / "bad.gguf"
    f.write_bytes(data)
    with pytest.raises(ConfigError, match="Could not read .* as a GGUF model file") as e:
        local.read_context_length(f)
    assert "\n" not in str(e.value)


def test_thread_count_leaves_busy_cores_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(local.THREADS_ENV, raising=False)
    monkeypatch.setattr(local.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(local.os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert local.thread_count() == 2
    monkeypatch.setattr(local.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert local.thread_count() == 1
    monkeypatch.setattr(local.os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert local.thread_count() == 1
    monkeypatch.setenv(local.THREADS_ENV, "3")
    assert local.thread_count() == 3


def test_runtime_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    have: set[str] = set()
    monkeypatch.setattr(local, "_installed", lambda m: m in have)
    monkeypatch.delenv(local.RUNTIME_ENV, raising=False)
    with pytest.raises(ConfigError, match="need xllamacpp, which is not installed"):
        local.runtime_name()
    have.add("llama_cpp")
    assert local.runtime_name() == "llama-cpp-python"  # the user's own build, when alone
    have.add("xllamacpp")
    assert local.runtime_name() == "xllamacpp"
    monkeypatch.setenv(local.RUNTIME_ENV, "llama-cpp-python")
    assert local.runtime_name() == "llama-cpp-python"
    monkeypatch.setenv(local.RUNTIME_ENV, "vllm")
    with pytest.raises(ConfigError, match="not a local runtime"):
        local.runtime_name()


def test_small_model_grammars_are_packaged() -> None:
    for g in (local.PYTHON_GRAMMAR, local.EDIT_GRAMMAR, local.PROSE_GRAMMAR):
        assert g.is_file() and "start:" in g.read_text()
