"""The OpenAI backend against a real HTTP server on 127.0.0.1 speaking chat completions."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from papercoder.errors import (
    AuthError,
    ConfigError,
    ContextOverflowError,
    ModelError,
    RetriesExhaustedError,
    UnknownModelError,
)
from papercoder.llm import Caller
from papercoder.models import get_model
from papercoder.models.openai_api import OpenAIModel
from papercoder.store import Store
from tests.fakes import FakeOpenAIServer, Reply

TESTS = Path(__file__).resolve().parent


class Step(BaseModel):
    name: str
    minutes: int


class Recipe(BaseModel):
    title: str
    steps: list[Step]


GOOD = json.dumps({"title": "tea", "steps": [{"name": "boil", "minutes": 3}]})
MISSING_MINUTES = json.dumps({"title": "tea", "steps": [{"name": "boil"}]})
ASK = [{"role": "system", "content": "You write recipes."},
       {"role": "user", "content": "How do I make tea?"}]


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def one_sentence(msg: str) -> bool:
    return "\n" not in msg and msg.endswith(".") and "Traceback" not in msg and len(msg) < 400


# -- plain calls and parameters ---------------------------------------------------------------
def test_plain_completion(srv: FakeOpenAIServer) -> None:
    srv.enqueue("Hello from the fake.")
    m = OpenAIModel("gpt-4.1", base_url=srv.url)
    assert (m.name, m.provider, m.endpoint) == ("openai/gpt-4.1", "openai", srv.url)
    msgs = [{"role": "system", "content": "Be brief.", "cache": True},
            {"role": "user", "content": "Say hello."}]
    c = run(m.complete(msgs, temperature=0.3, max_tokens=50))
    assert c.text == "Hello from the fake."
    assert c.finish_reason == "stop" and c.model == "openai/gpt-4.1"
    assert c.usage.prompt_tokens == 6 and c.usage.completion_tokens == 5  # the fake's counts
    assert c.latency > 0
    body = srv.chat_requests()[0]
    assert body["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "Say hello."}]  # no "cache" key
    assert body["temperature"] == 0.3 and body["max_tokens"] == 50
    assert "response_format" not in body and "max_completion_tokens" not in body
    # No key set and a loopback server: a placeholder key is sent.
    assert srv.requests[0].headers["authorization"] == "Bearer not-needed"


def test_key_from_environment_and_env_base_url(srv: FakeOpenAIServer,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-123")
    monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
    m = get_model("openai/gpt-4.1-mini")
    assert m.endpoint == srv.url
    run(m.complete([{"role": "user", "content": "hi"}]))
    assert srv.requests[0].headers["authorization"] == "Bearer sk-test-123"


def test_missing_key_for_public_endpoints_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY") as e:
        OpenAIModel("gpt-4.1")
    assert one_sentence(str(e.value))
    with pytest.raises(ConfigError, match="set OPENAI_API_KEY"):
        OpenAIModel("some/model", base_url="https://openrouter.example.com/api/v1")
    # Private-network servers need no key.
    assert OpenAIModel("qwen", base_url="http://192.168.1.20:8000/v1").endpoint
    assert OpenAIModel("qwen", base_url="http://localhost:11434/v1").endpoint


def test_reasoning_models_get_effort_and_completion_tokens_never_temperature() -> None:
    with FakeOpenAIServer(reject_params={"temperature", "max_tokens"}) as s:
        m = OpenAIModel("o3-mini", base_url=s.url)
        c = run(m.complete([{"role": "user", "content": "think"}], temperature=0.7,
                           max_tokens=300))
        assert c.text == "echo: think"
        body = s.chat_requests()[0]
        assert body["reasoning_effort"] == "medium"
        assert body["max_completion_tokens"] == 300
        assert "temperature" not in body and "max_tokens" not in body
        # Without max_tokens the table's max_output is sent.
        run(m.complete([{"role": "user", "content": "again"}]))
        assert s.chat_requests()[1]["max_completion_tokens"] == 100000
        # A non-reasoning model to the same strict server is refused with one sentence.
        with pytest.raises(ModelError, match="temperature") as e:
            run(OpenAIModel("gpt-4o", base_url=s.url).complete(
                [{"role": "user", "content": "x"}], temperature=0.2))
        assert one_sentence(str(e.value))


# -- structured output ------------------------------------------------------------------------
def test_json_schema_form_sends_strict_schema_and_parses(srv: FakeOpenAIServer) -> None:
    srv.enqueue(GOOD)
    c = run(OpenAIModel("gpt-4.1", base_url=srv.url).complete(ASK, schema=Recipe))
    assert isinstance(c.parsed, Recipe) and c.parsed.steps[0].minutes == 3
    fmt = srv.chat_requests()[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "Recipe"
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["title", "steps"]
    assert schema["$defs"]["Step"]["required"] == ["name", "minutes"]
    # No instructions are added in this form: the server constrains the output itself.
    assert srv.chat_requests()[0]["messages"] == ASK


def test_invalid_answer_in_json_schema_form_leaves_parsed_none(srv: FakeOpenAIServer) -> None:
    srv.enqueue(MISSING_MINUTES)
    c = run(OpenAIModel("gpt-4.1", base_url=srv.url).complete(ASK, schema=Recipe))
    assert c.parsed is None and c.text == MISSING_MINUTES


def test_json_object_form_when_json_schema_is_refused() -> None:
    with FakeOpenAIServer(reject_formats={"json_schema"}) as s:
        s.enqueue(GOOD, GOOD)
        m = OpenAIModel("llama", base_url=s.url)
        c = run(m.complete(ASK, schema=Recipe))
        assert isinstance(c.parsed, Recipe)
        assert s.format_attempts() == ["json_schema", "json_object"]
        body = s.chat_requests()[1]
        assert body["response_format"]["schema"]["properties"]["title"]["type"] == "string"
        # The schema goes after the last user text; the first message (the cached prefix)
        # is sent unchanged.
        assert body["messages"][0]["content"] == "You write recipes."
        assert "JSON Schema" in body["messages"][-1]["content"]
        assert body["messages"][0]["content"].startswith("You write recipes.")
        # A second call, even from a new instance, does not try json_schema again.
        run(OpenAIModel("llama", base_url=s.url).complete(ASK, schema=Recipe))
        assert s.format_attempts() == ["json_schema", "json_object", "json_object"]


def test_whole_fallback_chain_with_extraction_and_reask(tmp_path: Path) -> None:
    with FakeOpenAIServer(reject_formats={"json_schema", "json_object"}) as s:
        # Plain text around the JSON, and a missing field: the Caller extracts, validates,
        # and re-asks quoting the validation error; the second answer is fenced.
        s.enqueue("Sure! Here it is: " + MISSING_MINUTES + " Enjoy.", f"```json\n{GOOD}\n```")
        m = OpenAIModel("tiny", base_url=s.url)
        caller = Caller(m, Store(tmp_path / "s.db"), None)
        c = run(caller.call([{"role": "user", "content": "Tea recipe?"}], stage="plan",
                            schema=Recipe))
        assert isinstance(c.parsed, Recipe) and c.parsed.title == "tea"
        assert s.format_attempts() == ["json_schema", "json_object", "none", "none"]
        first_plain, reask = s.chat_requests()[2], s.chat_requests()[3]
        assert first_plain["messages"][-1]["role"] == "user"
        assert first_plain["messages"][-1]["content"].startswith("Tea recipe?")
        assert "JSON Schema" in first_plain["messages"][-1]["content"]
        assert '"minutes"' in first_plain["messages"][-1]["content"]
        quoted = reask["messages"][-1]["content"]
        assert "steps.0.minutes" in quoted and "Field required" in quoted
        assert reask["messages"][-2] == {"role": "assistant",
                                         "content": "Sure! Here it is: " + MISSING_MINUTES
                                         + " Enjoy."}
        # Refused forms are remembered for this endpoint: straight to instructions now.
        s.enqueue(GOOD)
        run(caller.call([{"role": "user", "content": "Another?"}], stage="plan",
                        schema=Recipe))
        assert s.format_attempts()[4:] == ["none"]


def test_refusal_memory_is_per_endpoint(srv: FakeOpenAIServer) -> None:
    with FakeOpenAIServer(reject_formats={"json_schema"}) as picky:
        picky.enqueue(GOOD)
        run(OpenAIModel("m", base_url=picky.url).complete(ASK, schema=Recipe))
    srv.enqueue(GOOD)
    run(OpenAIModel("m", base_url=srv.url).complete(ASK, schema=Recipe))
    assert srv.format_attempts() == ["json_schema"]


# -- retries and failures -----------------------------------------------------------------
def test_429_retry_after_is_honoured(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply(status=429, headers={"Retry-After": "1"},
                      body={"error": {"message": "Rate limit reached", "type": "requests"}}),
                "finally")
    c = run(OpenAIModel("gpt-4.1", base_url=srv.url, max_retries=2).complete(
        [{"role": "user", "content": "hi"}]))
    assert c.text == "finally"
    first, second = srv.requests
    assert second.arrived - first.arrived >= 0.95


def test_500_then_success(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply(status=500, body={"error": {"message": "boom", "type": "server_error"}}),
                "recovered")
    c = run(OpenAIModel("gpt-4.1", base_url=srv.url, max_retries=2).complete(
        [{"role": "user", "content": "hi"}]))
    assert c.text == "recovered" and len(srv.requests) == 2


def test_rate_limit_through_every_retry(srv: FakeOpenAIServer) -> None:
    for _ in range(3):
        srv.enqueue(Reply(status=429, headers={"Retry-After-Ms": "20"},
                          body={"error": {"message": "slow down"}}))
    with pytest.raises(RetriesExhaustedError, match="429") as e:
        run(OpenAIModel("gpt-4.1", base_url=srv.url, max_retries=2).complete(
            [{"role": "user", "content": "hi"}]))
    assert len(srv.requests) == 3 and one_sentence(str(e.value))
    assert "retry later" in str(e.value)


def test_timeout_after_retries(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply(delay=1.5, text="too late"), Reply(delay=1.5, text="too late"))
    m = OpenAIModel("gpt-4.1", base_url=srv.url, timeout=0.3, max_retries=1)
    t = time.monotonic()
    with pytest.raises(RetriesExhaustedError) as e:
        run(m.complete([{"role": "user", "content": "hi"}]))
    assert time.monotonic() - t < 2.5
    assert len(srv.requests) == 2
    assert "0.3 seconds" in str(e.value) and "--timeout" in str(e.value)
    assert one_sentence(str(e.value))


def test_dropped_connections_and_unreachable_server(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply(drop=True), "after a dropped connection")
    c = run(OpenAIModel("gpt-4.1", base_url=srv.url, max_retries=1).complete(
        [{"role": "user", "content": "hi"}]))
    assert c.text == "after a dropped connection"
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(RetriesExhaustedError, match="Could not connect") as e:
        run(OpenAIModel("gpt-4.1", base_url=f"http://127.0.0.1:{port}/v1",
                        max_retries=0).complete([{"role": "user", "content": "hi"}]))
    assert one_sentence(str(e.value))


@pytest.mark.parametrize("raw", [b"<html>Bad gateway</html>", b'{"unexpected": true}',
                                 b"[1, 2, 3]"])
def test_malformed_body_is_one_clear_sentence(srv: FakeOpenAIServer, raw: bytes) -> None:
    srv.enqueue(Reply(raw=raw))
    with pytest.raises(ModelError, match="not a valid answer") as e:
        run(OpenAIModel("gpt-4.1", base_url=srv.url, max_retries=0).complete(
            [{"role": "user", "content": "hi"}]))
    assert one_sentence(str(e.value))


def test_bad_key_is_one_sentence_and_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with FakeOpenAIServer(api_key="sk-right") as s:
        with pytest.raises(AuthError) as e:
            run(OpenAIModel("gpt-4.1", base_url=s.url).complete(
                [{"role": "user", "content": "hi"}]))
        assert len(s.requests) == 1
    msg = str(e.value)
    assert "rejected the API key" in msg and "check OPENAI_API_KEY" in msg
    assert one_sentence(msg)


def test_unknown_model_and_context_overflow() -> None:
    with FakeOpenAIServer(models={"gpt-4.1"}, context_limit=20) as s:
        with pytest.raises(UnknownModelError, match="nope") as e:
            run(OpenAIModel("nope", base_url=s.url).complete(
                [{"role": "user", "content": "hi"}]))
        assert one_sentence(str(e.value))
        with pytest.raises(ContextOverflowError, match="context") as e2:
            run(OpenAIModel("gpt-4.1", base_url=s.url).complete(
                [{"role": "user", "content": "word " * 50}]))
        assert one_sentence(str(e2.value))
        assert len(s.requests) == 2  # neither is retried


# -- usage, concurrency, event loops -------------------------------------------------------
def test_cached_tokens_are_reported() -> None:
    paper = "The paper text. " * 40  # 160 tokens for the fake
    with FakeOpenAIServer(prefix_cache_min=100) as s:
        m = OpenAIModel("gpt-4.1", base_url=s.url)
        first = run(m.complete([{"role": "system", "content": paper},
                                {"role": "user", "content": "Plan it."}]))
        second = run(m.complete([{"role": "system", "content": paper},
                                 {"role": "user", "content": "Now analyze."}]))
    assert first.usage.cached_prompt_tokens == 0
    assert second.usage.cached_prompt_tokens == 160
    assert second.usage.prompt_tokens == 160 + 3


def test_concurrent_calls_share_one_client(srv: FakeOpenAIServer) -> None:
    # No timing luck: the server answers only once all four requests are in flight.
    gate = threading.Barrier(4, timeout=60)
    srv.on_request = lambda _req: gate.wait()
    m = OpenAIModel("gpt-4.1", base_url=srv.url)

    async def many() -> list[str]:
        got = await asyncio.gather(*(m.complete([{"role": "user", "content": f"q{i}"}])
                                     for i in range(4)))
        return [c.text for c in got]

    assert sorted(run(many())) == [f"echo: q{i}" for i in range(4)]
    srv.on_request = None
    assert srv.max_concurrency == 4
    # A second event loop gets its own client and still works.
    assert run(m.complete([{"role": "user", "content": "again"}])).text == "echo: again"


def test_fake_runs_as_a_separate_process(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({
        "replies": ["first queued"],
        "rules": [{"contains": "architecture", "reply": "rule answer"}],
        "default": "default answer",
    }))
    port_file, log = tmp_path / "port", tmp_path / "requests.jsonl"
    env = dict(os.environ, PYTHONPATH=str(TESTS.parent))
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.openai_server", "--port-file",
                             str(port_file), "--script", str(script), "--log", str(log)],
                            cwd=TESTS.parent, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        m = OpenAIModel("gpt-4.1", base_url=f"http://127.0.0.1:{port_file.read_text()}/v1")
        texts = [run(m.complete([{"role": "user", "content": q}])).text
                 for q in ("hello", "the architecture please", "bye")]
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
    assert texts == ["first queued", "rule answer", "default answer"]
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["body"]["messages"][0]["content"] for x in lines] == [
        "hello", "the architecture please", "bye"]


def test_an_invalid_schema_is_remembered_for_that_schema_only(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply(status=400, body={"error": {
        "message": "Invalid schema for response_format 'Recipe': In context=(), "
                   "'additionalProperties' is required to be supplied and to be false.",
        "type": "invalid_request_error", "param": "response_format"}}), GOOD, GOOD,
        json.dumps({"name": "boil", "minutes": 3}))
    m = OpenAIModel("gpt-4.1", base_url=srv.url)
    assert isinstance(run(m.complete(ASK, schema=Recipe)).parsed, Recipe)
    assert isinstance(run(m.complete(ASK, schema=Recipe)).parsed, Recipe)
    assert isinstance(run(m.complete(ASK, schema=Step)).parsed, Step)
    assert srv.format_attempts() == ["json_schema", "json_object", "json_object", "json_schema"]
