"""Requests that follow the providers' published contracts (issue 20).

Every request body the backends send to the loopback fakes is validated against the official
SDKs' own request types (``openai.types.chat.completion_create_params`` and
``anthropic.types.MessageCreateParams``, TypedDicts checked with pydantic's TypeAdapter), and
the fakes answer with the refusals the providers document (tests/fakes/contracts.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming
from pydantic import BaseModel, TypeAdapter

from papercoder.evaluate.grading import FileRanking, LeafGrade
from papercoder.evaluate.judge import ScoreAnswer
from papercoder.llm import Caller
from papercoder.models.anthropic_api import AnthropicModel
from papercoder.models.base import (
    ImagePart,
    Message,
    Usage,
    schema_name,
    strict_json_schema,
    strict_problems,
    strict_ready,
)
from papercoder.models.openai_api import OpenAIModel
from papercoder.models.settings import cost_of, settings_for
from papercoder.pipeline.planning import SETTINGS_SCHEMA
from papercoder.pipeline.schemas import Architecture, LogicDesign, logic_for
from papercoder.store import Store
from tests.fakes import FakeAnthropicServer, FakeOpenAIServer, Reply
from tests.fakes.contracts import strict_violation

OPENAI_PARAMS = TypeAdapter(CompletionCreateParamsNonStreaming)
ANTHROPIC_PARAMS = TypeAdapter(MessageCreateParamsNonStreaming)
PAPER = "We propose a tiny network trained on toy data. " * 200
PLAN = "Files: model.py, train.py. " * 40


class Task(BaseModel):
    file: str
    depends_on: list[str]


GOOD = json.dumps({"file": "model.py", "depends_on": ["utils.py"]})
USER_SCHEMA = {"title": "Paper summary (v2)", "type": "object", "minProperties": 1,
               "properties": {"title": {"type": "string", "minLength": 1},
                              "year": {"type": "integer"}},
               "required": ["title"]}

EVERY_SCHEMA: list[Any] = [Architecture, LogicDesign, logic_for(["model.py", "train.py"]),
                           SETTINGS_SCHEMA, ScoreAnswer, FileRanking, LeafGrade, USER_SCHEMA,
                           Task, {"type": "array", "items": {"type": "string"}}]
"""Every schema the package sends: planning (architecture, logic), the config fallback,
evaluation (judge score, file ranking, leaf grade), a ``--schema`` file, and test shapes."""


class Official(OpenAIModel):
    """OpenAI's own API as far as the request layout goes, sent to the loopback fake."""

    official = True  # type: ignore[assignment]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def _known_keys(body: Mapping[str, Any], params: Any, allowed: set[str]) -> None:
    """TypeAdapter ignores unknown keys of a TypedDict: the request's own keys are checked
    against the type's here."""
    keys = set(params.__required_keys__) | set(params.__optional_keys__)
    assert set(body) - keys - allowed == set(), f"not in {params.__name__}"


def valid_openai(body: Mapping[str, Any]) -> None:
    OPENAI_PARAMS.validate_python(dict(body))
    _known_keys(body, CompletionCreateParamsNonStreaming, set())
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":  # OpenAI's form has no other key
        assert set(fmt) == {"type"}


def valid_anthropic(body: Mapping[str, Any]) -> None:
    ANTHROPIC_PARAMS.validate_python(dict(body))
    # temperature: the current SDK's type no longer names it (Claude 4.7+ refuse it); older
    # models still take it, so it is sent through extra_body to the models whose row allows.
    _known_keys(body, MessageCreateParamsNonStreaming, {"temperature"})


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")


@pytest.fixture
def oai() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(prefix_cache_min=64) as s:
        yield s


@pytest.fixture
def ant() -> Iterator[FakeAnthropicServer]:
    with FakeAnthropicServer() as s:
        yield s


def run_messages(stage_text: str) -> list[Message]:
    """The layout of a run's calls: system + paper + plan (the cached prefix), then the
    stage's own request."""
    return [{"role": "system", "content": "You implement papers as code."},
            {"role": "user", "content": PAPER},
            {"role": "assistant", "content": PLAN, "cache": True},
            {"role": "user", "content": stage_text}]


# -- the model table ------------------------------------------------------------------------
@pytest.mark.parametrize("model,window,out", [
    ("openai/gpt-5.4-mini", 400_000, 128_000),
    ("openai/gpt-5.4-nano", 400_000, 128_000),
    ("openai/gpt-5.4", 1_050_000, 128_000),
    ("openai/gpt-5.4-2026-03-05", 1_050_000, 128_000),
    ("anthropic/claude-haiku-5-5", 1_000_000, 128_000),
    ("anthropic/claude-opus-5-5", 1_000_000, 128_000),
    ("anthropic/claude-sonnet-4-6", 1_000_000, 64_000),
    ("anthropic/claude-sonnet-4-20250514", 200_000, 64_000),
])
def test_a_model_gets_its_own_row_not_a_siblings(model: str, window: int, out: int) -> None:
    s = settings_for(model)
    assert s.known and (s.context_window, s.max_output) == (window, out)


def test_sibling_rows_are_not_handed_out() -> None:
    chat = settings_for("openai/gpt-5-chat-latest")
    assert not chat.reasoning and chat.reasoning_effort is None and not chat.strict_schema
    mini = settings_for("openai/o1-mini")
    assert mini.reasoning_effort is None and not mini.system_role
    assert settings_for("openai/gpt-5").input_limit == 272_000
    assert settings_for("openai/gpt-5").window == 272_000 + 4096  # what a prompt may fill
    assert settings_for("openai/o3-pro").reasoning and settings_for("openai/o3-2025-04-16").known
    assert cost_of("anthropic/claude-opus-5-5", Usage(prompt_tokens=1_000_000)) == \
        pytest.approx(4.0)
    # A name that only shares a prefix with a row is unknown, not the row's sibling.
    assert not settings_for("anthropic/claude-fable-5-2").known
    assert cost_of("anthropic/claude-fable-5-2", Usage(prompt_tokens=10)) is None


def test_every_row_names_its_source_and_date() -> None:
    from papercoder.models.settings import _packaged
    for kind in ("model_settings.yaml", "prices.yaml"):
        for provider in ("openai", "anthropic"):
            for key, row in _packaged(kind)[provider].items():
                assert row.get("source"), f"{kind} {provider}/{key} has no source"


def test_a_model_without_a_row_is_said_once_with_the_defaults(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="papercoder"):
        for _ in range(3):
            settings_for("openai/some-new-model-xyz")
    said = [r.getMessage() for r in caplog.records if "some-new-model-xyz" in r.getMessage()]
    assert len(said) == 1 and "32,768-token window" in said[0]


def test_long_context_tier_and_cache_writes_are_priced() -> None:
    short = cost_of("openai/gpt-5.4", Usage(prompt_tokens=200_000, completion_tokens=1_000))
    long = cost_of("openai/gpt-5.4", Usage(prompt_tokens=300_000, completion_tokens=1_000))
    assert short == pytest.approx((200_000 * 2.5 + 1_000 * 15) / 1e6)
    assert long == pytest.approx((300_000 * 5.0 + 1_000 * 22.5) / 1e6)


def test_openai_cache_write_tokens_are_read_from_usage() -> None:
    def bad(why: str) -> Any:
        raise AssertionError(why)

    u = OpenAIModel._usage({"prompt_tokens": 5000, "completion_tokens": 2,
                            "prompt_tokens_details": {"cached_tokens": 1000,
                                                      "cache_write_tokens": 3000}},
                           [], "ok", bad)
    assert (u.cached_prompt_tokens, u.cache_write_tokens) == (1000, 3000)


# -- strict schemas -------------------------------------------------------------------------
@pytest.mark.parametrize("schema", EVERY_SCHEMA, ids=lambda s: schema_name(s))
def test_every_schema_sent_strict_satisfies_strict_mode(schema: Any) -> None:
    if not strict_ready(schema):
        return  # never sent with strict: true (checked below for the settings schema)
    sent = strict_json_schema(schema)
    assert strict_problems(sent) == []
    assert strict_violation(sent) is None  # the fake's own reading of the rules


def test_open_schemas_are_never_sent_strict() -> None:
    assert not strict_ready(SETTINGS_SCHEMA)
    assert strict_problems(SETTINGS_SCHEMA)  # as it stands it would break strict mode


def test_schema_names_are_cleaned() -> None:
    assert schema_name(USER_SCHEMA) == "Paper_summary_v2"
    assert schema_name({"title": "x" * 100}) == "x" * 64
    assert schema_name({"title": "(((  )))"}) == "answer"


# -- OpenAI requests ------------------------------------------------------------------------
def test_openai_requests_of_every_form_match_the_sdk_types(oai: FakeOpenAIServer) -> None:
    oai.enqueue(*[GOOD] * 6)
    m = Official("gpt-4.1", base_url=oai.url)
    run(m.complete([{"role": "user", "content": "Which file?"}], schema=Task))
    run(m.complete([{"role": "user", "content": "Summary?"}], schema=USER_SCHEMA))
    run(m.complete([{"role": "user", "content": "Config?"}], schema=SETTINGS_SCHEMA))
    run(m.complete(run_messages("Which file?"), schema=Task, temperature=0.2))
    page = ImagePart(b"\x89PNG fake page")
    run(m.complete([{"role": "user", "content": "Read the page.", "images": [page]}],
                   temperature=0.0))
    run(Official("o1-mini", base_url=oai.url).complete(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        temperature=0.0))
    bodies = oai.chat_requests()
    assert len(bodies) == 6  # nothing refused: every request followed the contract
    for b in bodies:
        valid_openai(b)
    assert bodies[0]["response_format"]["json_schema"]["name"] == "Task"
    assert bodies[1]["response_format"]["json_schema"]["name"] == "Paper_summary_v2"
    assert "minProperties" not in json.dumps(bodies[1]["response_format"])
    assert "json_schema" not in json.dumps(bodies[2].get("response_format") or {})
    o1 = bodies[5]
    assert [x["role"] for x in o1["messages"]] == ["user", "user"]
    assert "reasoning_effort" not in o1 and "temperature" not in o1
    assert o1["max_completion_tokens"] <= 128_000 - 2


def test_gpt5_chat_latest_gets_no_reasoning_effort_nor_strict_schema(
        oai: FakeOpenAIServer) -> None:
    oai.enqueue(GOOD)
    c = run(Official("gpt-5-chat-latest", base_url=oai.url).complete(
        [{"role": "user", "content": "Which file?"}], schema=Task))
    assert isinstance(c.parsed, Task)
    body = oai.chat_requests()[0]
    valid_openai(body)
    assert "reasoning_effort" not in body and body["response_format"]["type"] == "json_object"


def test_a_strict_schema_refusal_moves_down_the_chain(oai: FakeOpenAIServer) -> None:
    """The fake refuses a broken strict schema with 400 param=response_format (the real
    rule); a schema built outside strict_json_schema still completes through json_object."""
    oai.enqueue(GOOD, GOOD)
    m = OpenAIModel("gpt-4.1", base_url=oai.url)
    original = m._form

    def broken(form: str, messages: Any, params: Any, schema: Any) -> Any:
        msgs, p = original(form, messages, params, schema)
        if form == "json_schema":
            p["response_format"]["json_schema"]["schema"].pop("additionalProperties")
        return msgs, p

    m._form = broken  # type: ignore[method-assign]
    c = run(m.complete([{"role": "user", "content": "Which file?"}], schema=Task))
    assert isinstance(c.parsed, Task)
    assert oai.format_attempts() == ["json_schema", "json_object"]


def test_openai_cached_prefix_is_the_same_with_and_without_a_schema(
        oai: FakeOpenAIServer) -> None:
    oai.enqueue("plan", GOOD, GOOD, "code")
    m = Official("gpt-4.1", base_url=oai.url)
    run(m.complete(run_messages("Write the plan.")))
    a = run(m.complete(run_messages("Architecture?"), schema=Task))
    b = run(m.complete(run_messages("Logic?"), schema=Task))
    c = run(m.complete(run_messages("Write model.py.")))
    bodies = oai.chat_requests()
    for body in bodies:
        valid_openai(body)
    prefix = [json.dumps(x["messages"][:3], sort_keys=True) for x in bodies]
    assert len(set(prefix)) == 1
    assert all(x.usage.cached_prompt_tokens > 0 for x in (a, b, c))


def test_reasoning_models_leave_room_for_the_prompt(oai: FakeOpenAIServer) -> None:
    oai.enqueue("ok")
    big = "word " * 60_000
    run(OpenAIModel("o3", base_url=oai.url).complete([{"role": "user", "content": big}]))
    body = oai.chat_requests()[0]
    prompt = 60_000  # roughly: estimate_tokens of the text
    assert body["max_completion_tokens"] < 200_000 - prompt * 0.9


# -- Anthropic requests ---------------------------------------------------------------------
def test_anthropic_requests_of_every_form_match_the_sdk_types(ant: FakeAnthropicServer) -> None:
    ant.enqueue(*[GOOD] * 5)
    run(AnthropicModel("claude-haiku-4-5", base_url=ant.url).complete(
        [{"role": "user", "content": "Which file?"}], schema=Task))           # native
    run(AnthropicModel("claude-sonnet-4", base_url=ant.url).complete(
        [{"role": "user", "content": "Which file?"}], schema=USER_SCHEMA))    # tool
    run(AnthropicModel("claude-sonnet-4", base_url=ant.url).complete(
        run_messages("Which file?"), schema=Task))                            # instructions
    page = ImagePart(b"\x89PNG fake page")
    run(AnthropicModel("claude-sonnet-5", base_url=ant.url).complete(
        [{"role": "user", "content": "Read the page.", "images": [page]}], temperature=0.0))
    run(AnthropicModel("claude-3-7-sonnet", base_url=ant.url).complete(
        [{"role": "user", "content": "hi"}], temperature=0.0))
    bodies = ant.message_requests()
    assert len(bodies) == 5  # nothing refused
    for b in bodies:
        valid_anthropic(b)
    assert bodies[0]["output_config"]["format"]["type"] == "json_schema"
    assert bodies[1]["tools"][0]["name"] == "Paper_summary_v2"
    assert "tools" not in bodies[2] and "output_config" not in bodies[2]
    assert "temperature" not in bodies[3]  # Claude 5 refuses it
    assert bodies[4]["temperature"] == 0.0  # Claude 3.7 takes it


@pytest.mark.parametrize("model", ["claude-sonnet-5-5", "claude-opus-5-5", "claude-fable-5-1"])
def test_55_generation_models_complete_a_structured_call(ant: FakeAnthropicServer,
                                                         model: str) -> None:
    ant.enqueue(GOOD)
    c = run(AnthropicModel(model, base_url=ant.url).complete(
        [{"role": "user", "content": "Which file?"}], schema=Task, temperature=0.0))
    assert isinstance(c.parsed, Task)
    body = ant.message_requests()[0]
    valid_anthropic(body)
    assert "tool_choice" not in body and "temperature" not in body


def test_a_forced_tool_refusal_falls_to_instructions_and_is_remembered(
        ant: FakeAnthropicServer, tmp_path: Path) -> None:
    """A model the table does not know (defaults: forced tool) that refuses forced tool use:
    the 400 invalid_request_error moves it to instructions, and later calls start there."""
    ant.enqueue("Here: " + GOOD, GOOD)
    caller = Caller(AnthropicModel("claude-opus-5-5-preview", base_url=ant.url),
                    Store(tmp_path / "s.db"), None)
    c = run(caller.call([{"role": "user", "content": "Which file?"}], stage="architecture",
                        schema=Task))
    assert isinstance(c.parsed, Task)
    run(caller.call([{"role": "user", "content": "Which other file?"}], stage="logic",
                    schema=Task))
    bodies = ant.message_requests()
    assert ["tool_choice" in b for b in bodies] == [True, False, False]
    for b in bodies:
        valid_anthropic(b)
    assert "JSON Schema" in bodies[1]["messages"][-1]["content"][-1]["text"]


def test_a_native_refusal_moves_to_the_tool(ant: FakeAnthropicServer) -> None:
    """A server that refuses JSON outputs (an older proxy): native -> tool."""
    ant.enqueue(GOOD, GOOD)
    m = AnthropicModel("claude-3-7-sonnet", base_url=ant.url)
    m.settings = type(m.settings)(**{**m.settings.__dict__, "native_structured": True})
    c = run(m.complete([{"role": "user", "content": "Which file?"}], schema=Task))
    assert isinstance(c.parsed, Task)
    bodies = ant.message_requests()
    assert "output_config" in bodies[0] and bodies[1]["tool_choice"]["type"] == "tool"


def test_anthropic_cached_prefix_is_read_by_every_later_call(ant: FakeAnthropicServer) -> None:
    ant.enqueue("plan", GOOD, GOOD, "code", GOOD)
    m = AnthropicModel("claude-sonnet-5-5", base_url=ant.url)
    first = run(m.complete(run_messages("Write the plan.")))
    later = [run(m.complete(run_messages("Architecture?"), schema=Task)),
             run(m.complete(run_messages("Logic?"), schema=Task)),
             run(m.complete(run_messages("Write model.py."))),
             run(m.complete(run_messages("Grade it."), schema=ScoreAnswer))]
    assert first.usage.cache_write_tokens > 0
    assert all(c.usage.cached_prompt_tokens == first.usage.cache_write_tokens for c in later)
    bodies = ant.message_requests()
    for b in bodies:
        valid_anthropic(b)
    prefixes = {json.dumps([b.get("system"), b["messages"][:2], b.get("tools")],
                           sort_keys=True) for b in bodies}
    assert len(prefixes) == 1


# -- whole runs through the fallbacks -------------------------------------------------------
@pytest.mark.parametrize("model", ["claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5",
                                   "claude-opus-5-5-preview"])
def test_a_run_completes_on_current_claude_models(tmp_path: Path, model: str) -> None:
    """Planning (architecture, logic, config fallback), analysis and coding on models that
    refuse forced tool use and temperature (and on "-preview", which has no row: defaults).
    Every planning call carries the paper prefix, so its schema is asked for after that
    prefix (no tools, no output format): nothing is refused, and every call reads the cache.
    The forced-tool refusal path is shown at the Caller level above."""
    from papercoder.models import get_model
    from papercoder.pipeline import RunOptions, run_pipeline
    from tests import pipeline_helpers as ph

    paper = tmp_path / "paper.md"
    paper.write_text(ph.TINY_PAPER)
    with FakeAnthropicServer(ph.respond) as srv:
        m = run_pipeline(RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True),
                         model=get_model(f"anthropic/{model}", base_url=srv.root),
                         store=Store(tmp_path / "s.db"))
        bodies = srv.message_requests()
        refused = [r for r in srv.requests if r.method == "POST" and r.status == 400]
    assert m.status == "done", m.error
    assert all((tmp_path / "out" / "repo" / f).read_text() == ph.CODE[f] for f in ph.FILES)
    for b in bodies:
        valid_anthropic(b)
    assert refused == [] and not any("tool_choice" in b or "temperature" in b for b in bodies)
    assert m.stages["analysis"].cached_prompt_tokens > 0
    assert m.stages["coding"].cached_prompt_tokens > 0


@pytest.mark.parametrize("model", ["o1-mini", "gpt-5-chat-latest", "gpt-5.4-mini"])
def test_a_run_completes_on_openai_models_with_their_own_rules(tmp_path: Path,
                                                               model: str) -> None:
    from papercoder.models import get_model
    from papercoder.pipeline import RunOptions, run_pipeline
    from tests import pipeline_helpers as ph

    paper = tmp_path / "paper.md"
    paper.write_text(ph.TINY_PAPER)
    with FakeOpenAIServer(ph.respond) as srv:
        m = run_pipeline(RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True),
                         model=get_model(f"openai/{model}", base_url=srv.url),
                         store=Store(tmp_path / "s.db"))
        bodies = srv.chat_requests()
    assert m.status == "done", m.error
    for b in bodies:
        OPENAI_PARAMS.validate_python(dict(b))
        assert "temperature" not in b or not settings_for(f"openai/{model}").reasoning
        assert model != "o1-mini" or all(x["role"] != "system" for x in b["messages"])


def test_max_cost_projects_the_long_context_tier(tmp_path: Path, oai: FakeOpenAIServer) -> None:
    """A prompt over 272K tokens on gpt-5.4 is billed at the higher tier; --max-cost stops
    before such a call when the tier, not the base price, would pass the budget."""
    from papercoder.errors import BudgetExceeded
    from papercoder.models.settings import price_for
    from papercoder.tokens import estimate_messages

    msgs: list[Message] = [{"role": "user", "content": "token " * 300_000}]
    est = estimate_messages(msgs)
    assert est > 272_000
    p = price_for("openai/gpt-5.4")
    assert p is not None
    flat = (est * p.input + 4096 * p.output) / 1e6
    budget = flat * 1.2  # enough at the base price, not at the >272K price
    caller = Caller(OpenAIModel("gpt-5.4", base_url=oai.url), Store(tmp_path / "s.db"), None,
                    max_cost=budget)
    with pytest.raises(BudgetExceeded):
        run(caller.call(msgs, stage="coding", max_tokens=4096))
    assert oai.chat_requests() == []


def test_the_warm_up_does_not_fail_on_a_reasoning_model(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """A reasoning model spends the warm-up's small budget reasoning and stops on length with
    no text: the prompt is cached all the same, so the warm-up is not a failure."""
    from papercoder.models import get_model
    from papercoder.pipeline import RunOptions, run_pipeline
    from papercoder.pipeline.analysis import WARM
    from tests import pipeline_helpers as ph

    def respond(body: Any) -> Any:
        if body["messages"][-1]["content"] == WARM:
            return Reply(text="", finish_reason="length")
        return ph.respond(body)

    paper = tmp_path / "paper.md"
    paper.write_text(ph.TINY_PAPER)
    with caplog.at_level(logging.INFO, logger="papercoder"), FakeOpenAIServer(respond) as srv:
        m = run_pipeline(RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True),
                         model=get_model("openai/gpt-5.4-mini", base_url=srv.url),
                         store=Store(tmp_path / "s.db"))
        warm = [b for b in srv.chat_requests() if b["messages"][-1]["content"] == WARM]
    assert m.status == "done", m.error
    assert len(warm) == 1 and warm[0]["max_completion_tokens"] > 1
    assert not any("warm-up failed" in r.getMessage() for r in caplog.records)
