"""The SQLite store (log + response cache), prices and settings tables, budget and cost."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from papercoder.errors import BudgetExceeded, ConfigError, ModelError
from papercoder.llm import Caller
from papercoder.models.base import Usage
from papercoder.models.openai_api import OpenAIModel
from papercoder.models.settings import cost_of, price_for, settings_for
from papercoder.store import Store, cache_key
from tests.fakes import FakeOpenAIServer, Reply

PRICES = yaml.safe_load(resources.files("papercoder.models").joinpath(
    "data", "prices.yaml").read_text("utf-8"))


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store.db")


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# -- prices ---------------------------------------------------------------------------------
def test_openai_cost_with_cached_tokens_follows_the_table() -> None:
    row = PRICES["openai"]["gpt-4.1-mini"]
    u = Usage(prompt_tokens=12_000, cached_prompt_tokens=10_000, completion_tokens=2_000)
    expected = (2_000 * row["input"] + 10_000 * row["cached_input"] + 2_000 * row["output"]) / 1e6
    assert cost_of("openai/gpt-4.1-mini", u) == pytest.approx(expected)
    # Dated snapshots use their family's price; the longest prefix wins.
    assert cost_of("openai/gpt-4.1-mini-2025-04-14", u) == pytest.approx(expected)
    assert price_for("openai/gpt-4.1-2025-04-14") != price_for("openai/gpt-4.1-mini")
    assert price_for("openai/gpt-5-mini").input == PRICES["openai"]["gpt-5-mini"]["input"]


def test_anthropic_cost_with_cache_read_and_write_follows_the_table() -> None:
    row = PRICES["anthropic"]["claude-opus-4-5"]
    u = Usage(prompt_tokens=30_500, cached_prompt_tokens=20_000, cache_write_tokens=10_000,
              completion_tokens=1_500)
    expected = (500 * row["input"] + 20_000 * row["cached_input"]
                + 10_000 * row["cache_write"] + 1_500 * row["output"]) / 1e6
    assert cost_of("anthropic/claude-opus-4-5", u) == pytest.approx(expected)
    assert expected == pytest.approx((500 * 5 + 20_000 * 0.5 + 10_000 * 6.25 + 1_500 * 25) / 1e6)


def test_unknown_and_free_models() -> None:
    u = Usage(prompt_tokens=100, completion_tokens=100)
    assert cost_of("openai/my-own-finetune", u) is None
    assert cost_of("local", u) == 0 and cost_of("scripted:x.json", u) == 0


def test_user_overrides_for_prices_and_settings(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(
        "prices:\n  openai:\n    my-ft: {input: 1.0, cached_input: 0.25, output: 4.0}\n"
        "model_settings:\n  openai:\n    qwq: {reasoning: true, reasoning_effort: high,"
        " context_window: 65536}\n")
    u = Usage(prompt_tokens=1_000_000, cached_prompt_tokens=400_000, completion_tokens=100_000)
    assert cost_of("openai/my-ft", u) == pytest.approx(0.6 + 0.1 + 0.4)
    s = settings_for("openai/qwq-32b")
    assert s.reasoning and s.reasoning_effort == "high" and s.context_window == 65536
    assert settings_for("openai/o3-mini").reasoning
    assert not settings_for("openai/gpt-4.1-mini").reasoning


def test_a_user_reasoning_override_changes_the_request(tmp_path: Path,
                                                       srv: FakeOpenAIServer) -> None:
    (tmp_path / "config.yaml").write_text(
        "model_settings:\n  openai:\n    qwq: {reasoning: true, reasoning_effort: low}\n")
    run(OpenAIModel("qwq", base_url=srv.url).complete(ask("hi"), temperature=0.5))
    body = srv.chat_requests()[0]
    assert body["reasoning_effort"] == "low" and "temperature" not in body


# -- cost through the caller and the store ----------------------------------------------
def test_cost_is_logged_per_exchange_and_summed(store: Store, srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply(text="a", usage={"prompt_tokens": 50_000, "cached_tokens": 0,
                                       "completion_tokens": 2_000}),
                Reply(text="b", usage={"prompt_tokens": 52_000, "cached_tokens": 48_000,
                                       "completion_tokens": 3_000}))
    rid = store.create_run("test", model="openai/gpt-4o")
    caller = Caller(OpenAIModel("gpt-4o", base_url=srv.url), store, rid)
    a = run(caller.call(ask("plan"), stage="planning"))
    b = run(caller.call(ask("analyze"), stage="analysis"))
    row = PRICES["openai"]["gpt-4o"]
    assert a.cost == pytest.approx((50_000 * row["input"] + 2_000 * row["output"]) / 1e6)
    assert b.cost == pytest.approx((4_000 * row["input"] + 48_000 * row["cached_input"]
                                    + 3_000 * row["output"]) / 1e6)
    assert caller.totals.cost == pytest.approx(a.cost + b.cost)
    assert caller.totals.usage.cached_prompt_tokens == 48_000
    summary = {r["stage"]: r for r in store.cost_summary(rid)}
    assert summary["analysis"]["cached_prompt_tokens"] == 48_000
    assert summary["planning"]["cost"] == pytest.approx(a.cost)
    assert store.run_cost(rid) == pytest.approx(a.cost + b.cost)


def test_unpriced_model_cost_is_unknown_not_zero(store: Store, srv: FakeOpenAIServer) -> None:
    rid = store.create_run("test")
    c = run(Caller(OpenAIModel("my-llama", base_url=srv.url), store, rid).call(
        ask("hi"), stage="s"))
    assert c.cost is None
    assert store.cost_summary(rid)[0]["cost"] is None


# -- the response cache -----------------------------------------------------------------
def test_rerun_is_answered_from_the_cache(store: Store, srv: FakeOpenAIServer) -> None:
    first = run(Caller(OpenAIModel("gpt-4.1", base_url=srv.url), store, "r1").call(
        ask("same question"), stage="planning"))
    # A new process would build a new model and caller: the store still answers.
    again = run(Caller(OpenAIModel("gpt-4.1", base_url=srv.url), store, "r2").call(
        ask("same question"), stage="planning"))
    assert len(srv.requests) == 1
    assert again.cached and again.text == first.text and again.cost == 0
    logged = store.exchanges("r2")
    assert logged[0].status == "cached" and logged[0].cached_from == store.exchanges("r1")[0].id
    # Anything that changes the answer misses the cache: sampling, schema, endpoint.
    run(Caller(OpenAIModel("gpt-4.1", base_url=srv.url), store, "r3").call(
        ask("same question"), stage="planning", temperature=0.9))
    assert len(srv.requests) == 2
    with FakeOpenAIServer() as other:
        run(Caller(OpenAIModel("gpt-4.1", base_url=other.url), store, "r4").call(
            ask("same question"), stage="planning"))
        assert len(other.requests) == 1
    # use_cache=False always asks.
    run(Caller(OpenAIModel("gpt-4.1", base_url=srv.url), store, "r5", use_cache=False).call(
        ask("same question"), stage="planning"))
    assert len(srv.requests) == 3


def test_failures_are_logged_but_never_served_from_the_cache(store: Store,
                                                             srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply(status=503, body={"error": {"message": "down for maintenance"}}))
    m = OpenAIModel("gpt-4.1", base_url=srv.url, max_retries=0)
    with pytest.raises(ModelError, match="HTTP 503"):
        run(Caller(m, store, "r1").call(ask("q"), stage="s"))
    assert store.exchanges("r1")[0].status == "error"
    assert "503" in (store.exchanges("r1")[0].error or "")
    c = run(Caller(m, store, "r2").call(ask("q"), stage="s"))
    assert not c.cached and len(srv.requests) == 2


def test_cache_key_covers_what_determines_the_answer() -> None:
    msgs = ask("x")
    k = cache_key("openai/gpt-4.1", msgs, schema=None, temperature=None)
    assert k == cache_key("openai/gpt-4.1", [dict(m) for m in msgs], temperature=None,
                          schema=None)
    assert k != cache_key("openai/gpt-4.1-mini", msgs, schema=None, temperature=None)
    assert k != cache_key("openai/gpt-4.1", ask("y"), schema=None, temperature=None)
    assert k != cache_key("openai/gpt-4.1", msgs, schema="{}", temperature=None)


# -- the budget ---------------------------------------------------------------------------
def test_budget_stops_before_a_call_that_would_exceed_it(store: Store,
                                                        srv: FakeOpenAIServer) -> None:
    caller = Caller(OpenAIModel("gpt-4.1", base_url=srv.url), store, "r", max_cost=0.001)
    with pytest.raises(BudgetExceeded) as e:
        run(caller.call(ask("word " * 400), stage="planning"))
    assert srv.requests == []
    msg = str(e.value)
    assert msg.startswith("Stopped before the next call") and "--max-cost" in msg
    assert "\n" not in msg and e.value.exit_code == 3


def test_budget_counts_what_the_run_already_spent(store: Store, srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply(text="x", usage={"prompt_tokens": 100_000, "completion_tokens": 10_000}))
    m = OpenAIModel("gpt-4.1", base_url=srv.url)
    spent = run(Caller(m, store, "r").call(ask("big"), stage="planning")).cost
    assert spent == pytest.approx(0.28)  # 100k * $2 + 10k * $8 per million
    # Resuming the same run with a budget just above what was spent: the next call would
    # (by its estimate of ~2000 output tokens at $8/M) cross it, so it stops.
    resumed = Caller(m, store, "r", max_cost=0.29)
    assert resumed.spent == pytest.approx(0.28)
    with pytest.raises(BudgetExceeded, match=r"\$0\.2800 spent"):
        run(resumed.call(ask("next"), stage="analysis"))
    assert len(srv.requests) == 1
    # Cache hits cost nothing and are allowed even at the limit.
    assert run(resumed.call(ask("big"), stage="planning")).cached


# -- the store itself -----------------------------------------------------------------------
def test_store_persists_and_finds_runs_by_prefix(tmp_path: Path) -> None:
    s = Store(tmp_path / "a.db")
    rid = s.create_run("run", paper="p.pdf", model="openai/gpt-4.1", out_dir="out",
                       settings={"concurrency": 4})
    s.log(run_id=rid, stage="planning", file=None, model="openai/gpt-4.1", key="k1",
          request={"messages": ask("q")}, response="a", parsed={"x": 1},
          usage={"prompt_tokens": 5, "completion_tokens": 2}, cost=0.5, latency=1.0,
          finish_reason="stop")
    s.set_run_status(rid, "done")
    s.close()
    again = Store(tmp_path / "a.db")
    rec = again.get_run(rid[:-2])
    assert rec is not None and rec.id == rid and rec.status == "done"
    assert rec.settings == {"concurrency": 4} and rec.paper == "p.pdf"
    hit = again.lookup("k1")
    assert hit is not None and hit.parsed == {"x": 1} and hit.prompt_tokens == 5
    assert again.exchanges(rid, stage="analysis") == []
    assert again.get_run("nope") is None


def test_store_logs_from_many_threads(store: Store) -> None:
    def work(i: int) -> None:
        for j in range(25):
            store.log(run_id="r", stage="coding", file=f"f{i}.py", model="m", key=f"{i}-{j}",
                      request={}, response="x", cost=0.001)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.exchanges("r")) == 100
    assert store.run_cost("r") == pytest.approx(0.1)


def test_a_damaged_store_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(ConfigError, match="PAPERCODER_DB") as e:
        Store(bad)
    assert "\n" not in str(e.value)
