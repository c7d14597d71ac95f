"""The Anthropic backend against a real HTTP server on 127.0.0.1 speaking the messages API."""

from __future__ import annotations

import asyncio
import json
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
from papercoder.models.anthropic_api import AnthropicModel
from papercoder.models.settings import price_for
from papercoder.store import Store
from tests.fakes import FakeAnthropicServer, Reply, count_tokens


class Task(BaseModel):
    file: str
    depends_on: list[str]


GOOD = json.dumps({"file": "model.py", "depends_on": ["utils.py"]})
PAPER = "We propose a tiny network trained on toy data. " * 30


@pytest.fixture
def srv() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as s:
        yield s


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def one_sentence(msg: str) -> bool:
    return "\n" not in msg and msg.endswith(".") and "Traceback" not in msg and len(msg) < 400


def test_plain_completion_and_request_shape(srv: FakeAnthropicServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    srv.enqueue("Hello from Claude's stand-in.")
    m = get_model("anthropic/claude-haiku-4-5", base_url=srv.url)
    assert (m.name, m.provider, m.endpoint) == ("anthropic/claude-haiku-4-5", "anthropic",
                                                srv.url)
    c = run(m.complete([{"role": "system", "content": "Be brief."},
                        {"role": "user", "content": "Say hello."}], temperature=0.2))
    assert c.text == "Hello from Claude's stand-in."
    assert c.finish_reason == "end_turn" and c.model == "anthropic/claude-haiku-4-5"
    assert c.usage.completion_tokens == count_tokens(c.text) == 9
    body = srv.message_requests()[0]
    assert body["system"] == [{"type": "text", "text": "Be brief."}]
    assert body["messages"] == [{"role": "user",
                                 "content": [{"type": "text", "text": "Say hello."}]}]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 16000  # the table's 64000, capped
    headers = srv.requests[0].headers
    # SDK 2.x sends the key as a bearer token; older ones used x-api-key.
    assert "sk-ant-test" in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
    assert "anthropic-version" in headers


def test_max_tokens_default_follows_the_table(srv: FakeAnthropicServer) -> None:
    run(AnthropicModel("claude-unknown", base_url=srv.url).complete(
        [{"role": "user", "content": "a"}]))
    run(AnthropicModel("claude-haiku-4-5", base_url=srv.url).complete(
        [{"role": "user", "content": "b"}], max_tokens=123))
    assert [b["max_tokens"] for b in srv.message_requests()] == [4096, 123]


def test_consecutive_turns_are_merged_and_assistant_first_is_fixed(
        srv: FakeAnthropicServer) -> None:
    c = run(AnthropicModel("claude-haiku-4-5", base_url=srv.url).complete([
        {"role": "assistant", "content": "Earlier answer."},
        {"role": "user", "content": "part one"},
        {"role": "user", "content": "part two"},
    ]))
    assert c.text == "echo: part one part two"  # the fake rejects non-alternating turns
    roles = [m["role"] for m in srv.message_requests()[0]["messages"]]
    assert roles == ["user", "assistant", "user"]


def test_missing_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY") as e:
        AnthropicModel("claude-haiku-4-5")
    assert one_sentence(str(e.value))
    assert AnthropicModel("claude", base_url="http://127.0.0.1:9/").endpoint == \
        "http://127.0.0.1:9"


# -- prompt caching -------------------------------------------------------------------------
def test_cache_breakpoints_and_cache_usage(srv: FakeAnthropicServer) -> None:
    m = AnthropicModel("claude-haiku-4-5", base_url=srv.url)

    def ask(question: str) -> list[dict[str, Any]]:
        return [{"role": "system", "content": "You are a careful engineer.", "cache": True},
                {"role": "user", "content": PAPER, "cache": True},
                {"role": "assistant", "content": "Read it."},
                {"role": "user", "content": question}]

    first = run(m.complete(ask("Plan the repository.")))
    second = run(m.complete(ask("Now list the files.")))
    body = srv.message_requests()[0]
    assert body["system"] == [{"type": "text", "text": "You are a careful engineer.",
                               "cache_control": {"type": "ephemeral"}}]
    paper_block = body["messages"][0]["content"][-1]
    assert paper_block["text"] == PAPER
    assert paper_block["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in body["messages"][1]["content"][-1]
    assert "cache_control" not in body["messages"][2]["content"][-1]
    # First call writes the prefix to the cache, the second reads it.
    prefix = count_tokens("You are a careful engineer.") + count_tokens(PAPER)  # 6 + 300
    assert first.usage.cache_write_tokens == prefix and first.usage.cached_prompt_tokens == 0
    assert second.usage.cached_prompt_tokens == prefix and second.usage.cache_write_tokens == 0
    assert second.usage.prompt_tokens == prefix + count_tokens("Read it. Now list the files.")


def test_at_most_four_breakpoints_keeping_the_last(srv: FakeAnthropicServer) -> None:
    msgs = []
    for i in range(6):
        msgs += [{"role": "user", "content": f"chunk {i}", "cache": True},
                 {"role": "assistant", "content": f"ok {i}"}]
    msgs.append({"role": "user", "content": "go"})
    run(AnthropicModel("claude-haiku-4-5", base_url=srv.url).complete(msgs))
    marked = [b["text"] for m in srv.message_requests()[0]["messages"] for b in m["content"]
              if "cache_control" in b]
    assert marked == ["chunk 2", "chunk 3", "chunk 4", "chunk 5"]


def test_usage_and_cost_with_cache_read_and_write(tmp_path: Path,
                                                  srv: FakeAnthropicServer) -> None:
    srv.enqueue(Reply(text="a", usage={"input_tokens": 100, "cache_read_input_tokens": 0,
                                       "cache_creation_input_tokens": 5000,
                                       "output_tokens": 400}),
                Reply(text="b", usage={"input_tokens": 120, "cache_read_input_tokens": 5000,
                                       "cache_creation_input_tokens": 0,
                                       "output_tokens": 300}))
    store = Store(tmp_path / "s.db")
    caller = Caller(AnthropicModel("claude-haiku-4-5", base_url=srv.url), store, "run1")
    a = run(caller.call([{"role": "user", "content": "one"}], stage="plan"))
    b = run(caller.call([{"role": "user", "content": "two"}], stage="plan"))
    p = price_for("anthropic/claude-haiku-4-5")
    assert p is not None and p.cache_write is not None and p.cached_input is not None
    assert a.usage.prompt_tokens == 5100 and a.usage.cache_write_tokens == 5000
    assert a.cost == pytest.approx((100 * p.input + 5000 * p.cache_write + 400 * p.output) / 1e6)
    assert b.usage.prompt_tokens == 5120 and b.usage.cached_prompt_tokens == 5000
    assert b.cost == pytest.approx((120 * p.input + 5000 * p.cached_input + 300 * p.output)
                                   / 1e6)
    # With the published prices: $1 in, $1.25 write, $0.10 read, $5 out per million.
    assert a.cost == pytest.approx(0.00835) and b.cost == pytest.approx(0.00212)
    rows = store.exchanges("run1")
    assert [(r.cached_prompt_tokens, r.cache_write_tokens) for r in rows] == [(0, 5000),
                                                                             (5000, 0)]
    assert store.run_cost("run1") == pytest.approx(a.cost + b.cost)


# -- structured output via a forced tool ------------------------------------------------------
def test_structured_output_through_a_forced_tool(srv: FakeAnthropicServer) -> None:
    srv.enqueue(GOOD)
    c = run(AnthropicModel("claude-sonnet-4", base_url=srv.url).complete(
        [{"role": "user", "content": "Which file?"}], schema=Task))
    assert isinstance(c.parsed, Task) and c.parsed.depends_on == ["utils.py"]
    assert json.loads(c.text) == json.loads(GOOD)
    assert c.finish_reason == "tool_use"
    body = srv.message_requests()[0]
    assert body["tool_choice"] == {"type": "tool", "name": "Task"}
    assert [t["name"] for t in body["tools"]] == ["Task"]
    assert body["tools"][0]["input_schema"] == Task.model_json_schema()


def test_invalid_tool_input_is_reasked_quoting_the_error(tmp_path: Path,
                                                         srv: FakeAnthropicServer) -> None:
    srv.enqueue(json.dumps({"file": "model.py"}), GOOD)
    caller = Caller(AnthropicModel("claude-haiku-4-5", base_url=srv.url),
                    Store(tmp_path / "s.db"), None)
    c = run(caller.call([{"role": "user", "content": "Which file?"}], stage="analysis",
                        schema=Task))
    assert isinstance(c.parsed, Task)
    reask = srv.message_requests()[1]["messages"]
    assert reask[-2]["content"][0]["text"] == '{"file": "model.py"}'
    assert "depends_on" in reask[-1]["content"][0]["text"]
    assert "Field required" in reask[-1]["content"][0]["text"]


def test_non_object_schema_is_wrapped(srv: FakeAnthropicServer) -> None:
    schema = {"type": "array", "items": {"type": "string"}, "title": "Files"}
    srv.enqueue(json.dumps({"answer": ["a.py", "b.py"]}))
    c = run(AnthropicModel("claude-sonnet-4", base_url=srv.url).complete(
        [{"role": "user", "content": "Files?"}], schema=schema))
    assert c.parsed == ["a.py", "b.py"] and json.loads(c.text) == ["a.py", "b.py"]
    tool = srv.message_requests()[0]["tools"][0]
    assert tool["input_schema"]["properties"]["answer"]["type"] == "array"


def test_plain_text_answer_to_a_schema_leaves_parsing_to_the_caller(
        srv: FakeAnthropicServer) -> None:
    srv.enqueue("I think: " + GOOD)  # not JSON as a whole: the fake answers with text
    c = run(AnthropicModel("claude-haiku-4-5", base_url=srv.url).complete(
        [{"role": "user", "content": "Which file?"}], schema=Task))
    assert isinstance(c.parsed, Task)  # extracted from the text


# -- failures -------------------------------------------------------------------------------
def test_bad_key_and_unknown_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "wrong")
    with FakeAnthropicServer(api_key="right", models={"claude-haiku-4-5"}) as s:
        with pytest.raises(AuthError) as e:
            run(AnthropicModel("claude-haiku-4-5", base_url=s.url).complete(
                [{"role": "user", "content": "hi"}]))
        assert "rejected the API key" in str(e.value) and "ANTHROPIC_API_KEY" in str(e.value)
        assert one_sentence(str(e.value))
        monkeypatch.setenv("ANTHROPIC_API_KEY", "right")
        with pytest.raises(UnknownModelError, match="claude-nope") as e2:
            run(AnthropicModel("claude-nope", base_url=s.url).complete(
                [{"role": "user", "content": "hi"}]))
        assert one_sentence(str(e2.value))
        assert len(s.requests) == 2


def test_context_overflow() -> None:
    with FakeAnthropicServer(context_limit=10) as s:
        with pytest.raises(ContextOverflowError, match="prompt is too long") as e:
            run(AnthropicModel("claude-haiku-4-5", base_url=s.url).complete(
                [{"role": "user", "content": "word " * 40}]))
    assert one_sentence(str(e.value))


def test_overloaded_then_success_and_retry_after(srv: FakeAnthropicServer) -> None:
    srv.enqueue(Reply(status=529, body={"type": "error", "error": {
                    "type": "overloaded_error", "message": "Overloaded"}}),
                Reply(status=429, headers={"retry-after": "1"}, body={"type": "error", "error": {
                    "type": "rate_limit_error", "message": "slow down"}}),
                "done")
    c = run(AnthropicModel("claude-haiku-4-5", base_url=srv.url, max_retries=3).complete(
        [{"role": "user", "content": "hi"}]))
    assert c.text == "done" and len(srv.requests) == 3
    assert srv.requests[2].arrived - srv.requests[1].arrived >= 0.95


def test_server_errors_through_every_retry_and_timeout(srv: FakeAnthropicServer) -> None:
    for _ in range(2):
        srv.enqueue(Reply(status=500, headers={"retry-after-ms": "10"}, body={
            "type": "error", "error": {"type": "api_error", "message": "Internal error"}}))
    with pytest.raises(RetriesExhaustedError, match="HTTP 500") as e:
        run(AnthropicModel("claude-haiku-4-5", base_url=srv.url, max_retries=1).complete(
            [{"role": "user", "content": "hi"}]))
    assert one_sentence(str(e.value))
    srv.enqueue(Reply(delay=1.0, text="late"))
    with pytest.raises(RetriesExhaustedError, match="0.25 seconds") as e2:
        run(AnthropicModel("claude-haiku-4-5", base_url=srv.url, timeout=0.25,
                           max_retries=0).complete([{"role": "user", "content": "hi"}]))
    assert "--timeout" in str(e2.value) and one_sentence(str(e2.value))


def test_malformed_body(srv: FakeAnthropicServer) -> None:
    srv.enqueue(Reply(raw=b"<html>proxy error</html>"), Reply(raw=b'{"type": "message"}'))
    for _ in range(2):
        with pytest.raises(ModelError, match="not a valid answer") as e:
            run(AnthropicModel("claude-haiku-4-5", base_url=srv.url, max_retries=0).complete(
                [{"role": "user", "content": "hi"}]))
        assert one_sentence(str(e.value))
