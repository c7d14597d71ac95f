"""The foundation commands (models, prompt, runs, logs, cost) run in-process with CliRunner,
against the scripted model and a real loopback server speaking the OpenAI protocol."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from papercoder.cli import app
from papercoder.console import console
from papercoder.store import Store
from tests.fakes import FakeAnthropicServer, FakeOpenAIServer, Reply

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables are not squeezed to 80 columns, so cells can be asserted whole."""
    monkeypatch.setattr(console, "_width", 250)


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


def cli(*args: str) -> Result:
    return runner.invoke(app, list(args))


def ok(*args: str) -> str:
    r = cli(*args)
    assert r.exit_code == 0, r.output
    return r.output


def failed_with_one_sentence(r: Result, code: int | None = None) -> str:
    assert r.exit_code != 0
    if code is not None:
        assert r.exit_code == code
    out = r.output.strip()
    assert "Traceback" not in out and out.startswith("Error: ") and "\n" not in out
    assert out.endswith(".")
    return out


def test_prompt_with_the_scripted_model_then_runs_logs_cost(tmp_path: Path) -> None:
    script = tmp_path / "answers.json"
    script.write_text(json.dumps(["hello back", "second answer"]))
    out = ok("prompt", "hello", "-m", f"scripted:{script}")
    assert out.startswith("hello back\n") and "scripted:answers.json" in out
    runs = ok("runs")
    assert "prompt" in runs and "scripted:answers.json" in runs and "done" in runs
    logs = ok("logs")
    assert "hello back" in logs and "ok" in logs
    full = ok("logs", "--full")
    assert "user:" in full and "hello" in full and "response" in full
    assert "$0.0000" in ok("cost")


def test_prompt_against_an_openai_server_and_what_is_logged(srv: FakeOpenAIServer) -> None:
    srv.enqueue(Reply(text="Paris.", usage={"prompt_tokens": 10000, "cached_tokens": 8000,
                                            "completion_tokens": 1000}))
    out = ok("prompt", "Capital of France?", "-m", "openai/gpt-4.1", "--base-url", srv.url,
             "--system", "Answer in one word.")
    assert "Paris." in out
    # gpt-4.1: $2 input, $0.50 cached input, $8 output per million tokens.
    expected = (2000 * 2.00 + 8000 * 0.50 + 1000 * 8.00) / 1e6
    assert "10000 in (8000 cached) / 1000 out" in out and f"${expected:.6f}" in out
    body = srv.chat_requests()[0]
    assert body["messages"][0] == {"role": "system", "content": "Answer in one word."}

    logs = ok("logs")
    assert "Paris." in logs and "openai/gpt-4.1" in logs and "10000" in logs
    assert "8000" in logs and f"${expected:.4f}" in logs
    cost = ok("cost")
    assert "prompt" in cost and "10000" in cost and "8000" in cost and "1000" in cost
    assert f"${expected:.4f}" in cost

    # The same prompt again is answered from the cache: no request reaches the server.
    again = ok("prompt", "Capital of France?", "-m", "openai/gpt-4.1", "--base-url", srv.url,
               "--system", "Answer in one word.")
    assert "Paris." in again and "cached, $0" in again
    assert len(srv.requests) == 1
    assert "cached" in ok("logs") and "(cache hit of #1)" in ok("logs")
    runs = ok("runs")
    assert runs.count("openai/gpt-4.1") == 2 and runs.count("done") == 2
    # --no-cache asks again.
    srv.enqueue("Paris, again.")
    assert "Paris, again." in ok("prompt", "Capital of France?", "-m", "openai/gpt-4.1",
                                 "--base-url", srv.url, "--system", "Answer in one word.",
                                 "--no-cache")
    assert len(srv.requests) == 2


def test_logs_and_cost_select_a_run(srv: FakeOpenAIServer) -> None:
    ok("prompt", "first", "-m", "openai/gpt-4.1", "--base-url", srv.url)
    ok("prompt", "second", "-m", "openai/gpt-4.1", "--base-url", srv.url)
    first_run = Store(Path(os.environ["PAPERCODER_DB"])).runs()[-1].id
    logs = ok("logs", first_run)
    assert "echo: first" in logs and "echo: second" not in logs
    r = cli("logs", "no-such-run")
    assert "papercoder runs" in failed_with_one_sentence(r)


def test_prompt_with_a_schema_file_falls_back_and_reasks(tmp_path: Path) -> None:
    schema = tmp_path / "answer.json"
    schema.write_text(json.dumps({"type": "object", "properties": {
        "answer": {"type": "integer"}}, "required": ["answer"]}))
    with FakeOpenAIServer(reject_formats={"json_schema"}) as s:
        s.enqueue('{"answer": "seven"}', '{"answer": 7}')
        out = ok("prompt", "3+4?", "-m", "openai/small", "--base-url", s.url,
                 "--schema", str(schema))
        assert json.loads(out[: out.rindex("}") + 1]) == {"answer": 7}
        assert s.format_attempts() == ["json_schema", "json_object", "json_object"]
        assert "answer: 'seven' is not of type 'integer'" in \
            s.chat_requests()[2]["messages"][-1]["content"]
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        failed_with_one_sentence(cli("prompt", "x", "-m", "openai/small", "--base-url", s.url,
                                     "--schema", str(bad)), code=2)


def test_budget_stops_before_the_call(srv: FakeOpenAIServer) -> None:
    r = cli("prompt", "hello " * 200, "-m", "openai/gpt-4.1", "--base-url", srv.url,
            "--max-cost", "0.001")
    out = failed_with_one_sentence(r, code=3)
    assert "Stopped before the next call" in out and "--max-cost" in out
    assert srv.requests == []
    assert "failed" in ok("runs")
    # A budget that covers the call lets it through.
    ok("prompt", "hello", "-m", "openai/gpt-4.1", "--base-url", srv.url, "--max-cost", "0.1")
    assert len(srv.requests) == 1


def test_unknown_models_exit_with_one_sentence() -> None:
    failed_with_one_sentence(cli("prompt", "hi", "-m", "nosuchprovider/x"), code=2)
    failed_with_one_sentence(cli("prompt", "hi", "-m", "gpt-4.1"), code=2)
    with FakeOpenAIServer(models={"gpt-4.1"}) as s:
        out = failed_with_one_sentence(cli("prompt", "hi", "-m", "openai/gpt-9",
                                           "--base-url", s.url))
    assert "does not know the model 'openai/gpt-9'" in out


def test_bad_key_exits_with_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with FakeOpenAIServer(api_key="sk-right") as s:
        out = failed_with_one_sentence(cli("prompt", "hi", "-m", "openai/gpt-4.1",
                                           "--base-url", s.url), code=1)
    assert "rejected the API key" in out and "check OPENAI_API_KEY" in out
    logs = ok("logs")
    assert "failed" in logs and "rejected the API key" in logs


def test_missing_key_and_timeout_option(srv: FakeOpenAIServer) -> None:
    out = failed_with_one_sentence(cli("prompt", "hi", "-m", "openai/gpt-4.1"), code=2)
    assert "OPENAI_API_KEY is not set" in out
    srv.enqueue(Reply(delay=1.0, text="slow"))
    out = failed_with_one_sentence(cli("prompt", "hi", "-m", "openai/gpt-4.1", "--base-url",
                                       srv.url, "--timeout", "0.3", "--max-retries", "0"))
    assert "did not answer within 0.3 seconds" in out and "--timeout" in out


def test_anthropic_through_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant")
    with FakeAnthropicServer() as s:
        out = ok("prompt", "hi there", "-m", "anthropic/claude-haiku-4-5", "--base-url", s.url)
    assert "echo: hi there" in out and "anthropic/claude-haiku-4-5" in out


def test_models_lists_backends_keys_and_aliases(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    out = ok("models")
    for word in ("openai", "anthropic", "local", "scripted", "OPENAI_API_KEY not set",
                 "Default model: local"):
        assert word in out
    Path(tmp_path / "config.yaml").write_text(
        "aliases:\n  mybox: {model: openai/qwen, base_url: http://127.0.0.1:8000/v1}\n")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    out = ok("models")
    assert "mybox" in out and "openai/qwen" in out and "OPENAI_API_KEY found" in out
    assert "Default model: openai/gpt-5.4" in out


def test_logs_say_what_became_of_each_answer(tmp_path: Path) -> None:
    """A cut-off answer is `cut off`, an answer sent back is `rejected: <why>`: from the logs
    a user can see why a file failed. `--json` is JSON Lines; a bad `--stage` is an error."""
    from tests import pipeline_helpers as ph

    paper, _ = ph.write_fixture(tmp_path)
    full = ph.code_answer("model.py")
    cut = full.index("def fit")
    script = tmp_path / "script.json"
    script.write_text(json.dumps(ph.script(**{
        "coding:main.py": "No code, sorry.",
        "coding:model.py": [{"text": full[:cut], "finish_reason": "length"},
                            {"text": "```python\n" + full[cut:]}]})))
    r = cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(tmp_path / "out"), "-q")
    assert r.exit_code == 4, r.output
    logs = ok("logs", "--stage", "coding")
    rows = [ln for ln in logs.splitlines() if ln.startswith("#")]
    main = [ln for ln in rows if " coding main.py " in ln]
    assert main and all("rejected: " in ln for ln in main), logs
    model = [ln for ln in rows if " coding model.py " in ln]
    assert [("cut off" in ln, " ok " in ln) for ln in model] == [(True, False), (False, True)]
    lines = ok("logs", "--json").splitlines()
    records = [json.loads(ln) for ln in lines]  # every line is one JSON object
    assert len(records) >= len(rows) and {"id", "stage", "status"} <= set(records[0])
    assert any(x["status"].startswith("rejected: ") and x["file"] == "main.py"
               for x in records)
    out = failed_with_one_sentence(cli("logs", "--stage", "bogus"), code=2)
    assert "coding" in out and "plan" in out and "bogus" in out
    assert "audit" in out and "repair" in out  # the contract's stages, before any such call


def test_runs_tell_a_dead_run_and_its_output_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose process died without saying so (an eval killed in the middle) is listed as
    `interrupted`, not `running` forever; a long model path does not hide the output folder."""
    import subprocess
    import sys

    from tests.cli_proc import env

    model = "local:/root/.cache/papercoder/models/SmolLM2-1.7B-Instruct-Q4_1.gguf"
    code = ("from papercoder.cli.common import db_path\nfrom papercoder.store import Store\n"
            f"Store(db_path()).create_run('eval', model={model!r}, "
            f"out_dir={str(tmp_path / 'evals' / 'judge-one')!r})\n")
    subprocess.run([sys.executable, "-c", code], env=env(), check=True, timeout=120)
    live = Store(Path(os.environ["PAPERCODER_DB"])).create_run(
        "eval", model=model, out_dir=str(tmp_path / "evals" / "judge-two"))
    monkeypatch.setattr(console, "_width", 80)
    out = ok("runs")
    lines = out.splitlines()
    dead = next(i for i, ln in enumerate(lines) if " eval " in ln and live not in ln)
    assert "interrupted" in lines[dead] and "running" not in lines[dead], out
    assert lines[dead + 1].rstrip().endswith("judge-one"), out
    here = next(i for i, ln in enumerate(lines) if live in ln)
    assert "running" in lines[here] and lines[here + 1].rstrip().endswith("judge-two"), out
