"""Test-wide fixtures: a network guard, a private run store, the shared-data locator."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _is_loopback(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    if not isinstance(address, tuple) or not address:
        return False
    host = address[0]
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guard(sock: socket.socket, address: object) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise ConnectionRefusedError(f"tests may only connect to loopback, not {address!r}")


def _connect(self: socket.socket, address: object) -> None:
    _guard(self, address)
    return _real_connect(self, address)


def _connect_ex(self: socket.socket, address: object) -> int:
    _guard(self, address)
    return _real_connect_ex(self, address)


def _getaddrinfo(host, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost"):
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise socket.gaierror(f"tests may not resolve {host!r}")
        except ValueError:
            raise socket.gaierror(f"tests may not resolve {host!r}") from None
    return _real_getaddrinfo(host, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    socket.socket.connect = _connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own run store and config, and no real provider keys."""
    monkeypatch.setenv("PAPERCODER_DB", str(tmp_path / "store.db"))
    monkeypatch.setenv("PAPERCODER_CONFIG", str(tmp_path / "config.yaml"))
    monkeypatch.setenv("PAPERCODER_CACHE_DIR", str(tmp_path / "cache"))
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared is absent")
    return SHARED


def pytest_report_header(config: pytest.Config) -> str:
    state = "present" if SHARED.is_dir() else "absent"
    return f"network guard: loopback only; shared data: {state}"


os.environ.setdefault("NO_COLOR", "1")
