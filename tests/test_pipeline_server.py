"""The pipeline against a loopback OpenAI-protocol server: concurrency and kill -9 resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from papercoder.models import get_model
from papercoder.pipeline import RunOptions, run_pipeline
from papercoder.store import Store
from tests import pipeline_helpers as ph
from tests.fakes.anthropic_server import FakeAnthropicServer, prompt_blocks
from tests.fakes.openai_server import FakeOpenAIServer

ROOT = Path(__file__).resolve().parents[1]


def _stage_of(body: dict) -> str:
    last = body["messages"][-1]["content"]
    if "SEARCH/REPLACE" in json.dumps(body["messages"]):
        return "verify"  # the static repair after coding
    if last.startswith("Audit "):
        return "audit"  # the contract's audit, after coding
    if "detailed logic analysis for" in last:
        return "analysis"
    if "Now write" in last:
        return "coding"
    return "planning"


def test_analysis_calls_overlap(tmp_path: Path) -> None:
    paper = tmp_path / "paper.md"
    paper.write_text(ph.TINY_PAPER)
    # No timing luck: the server holds the analysis answers after the first (sent alone to
    # warm the prompt cache) until the other three are all in flight (or 60 s pass).
    seen = {"analysis": 0}
    cond = threading.Condition()

    def respond(body: dict) -> str:
        if _stage_of(body) == "analysis":
            with cond:
                seen["analysis"] += 1
                cond.notify_all()
                if seen["analysis"] > 1:
                    cond.wait_for(lambda: seen["analysis"] >= 4, timeout=60)
        return ph.respond(body)

    with FakeOpenAIServer(respond) as srv:
        model = get_model("openai/gpt-4.1-mini", base_url=srv.url)
        opts = RunOptions(paper=str(paper), out=tmp_path / "out", concurrency=4, quiet=True)
        m = run_pipeline(opts, model=model, store=Store(tmp_path / "s.db"))
        reqs = [r for r in srv.requests if r.method == "POST"]
    assert m.status == "done", m.error
    analysis = [r for r in reqs if _stage_of(r.body) == "analysis"]
    assert len(analysis) == 4
    overlap = max(sum(1 for o in analysis if o.arrived <= r.arrived < (o.finished or 1e18))
                  for r in analysis)
    assert overlap >= 3, overlap
    assert srv.max_concurrency >= 3


def test_resume_after_kill_repeats_no_answered_call(tmp_path: Path) -> None:
    paper = tmp_path / "paper.md"
    paper.write_text(ph.TINY_PAPER)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    # No timing luck: the server holds the third coding request until the process is killed.
    third_arrived, killed = threading.Event(), threading.Event()
    codings = {"n": 0}

    def respond(body: dict) -> str:
        if _stage_of(body) == "coding" and not killed.is_set():
            codings["n"] += 1
            if codings["n"] == 3:
                third_arrived.set()
                killed.wait(timeout=120)
        return ph.respond(body)

    with FakeOpenAIServer(respond) as srv:
        cmd = [sys.executable, "-m", "papercoder", "run", str(paper), "-m",
               "openai/gpt-4.1-mini", "--base-url", srv.url, "-o", str(out), "-q",
               "--concurrency", "1"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            while not third_arrived.wait(timeout=0.5):  # two answered, the third in flight
                assert proc.poll() is None, proc.communicate()
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
        first = list(srv.requests)
        answered = [json.dumps(r.body, sort_keys=True) for r in first
                    if r.method == "POST" and r.status == 200 and r.finished is not None]
        killed.set()  # release the held request (its client is gone)
        assert len(answered) >= 4 + 4 + 2  # planning, analysis, two coding answers
        manifest = json.loads((out / "run.json").read_text())
        assert manifest["status"] == "running"  # killed: no chance to record anything else

        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        second = [json.dumps(r.body, sort_keys=True) for r in srv.requests[len(first):]
                  if r.method == "POST" and _stage_of(r.body) != "verify"]
    assert not set(second) & set(answered), "an answered call was paid for twice"
    # the killed call and the last file, then the audit (never reached before the kill)
    assert len([b for b in second if '"Audit ' not in b]) == 2
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "done"
    assert all(s["status"] == "written" for s in manifest["files"].values())
    for f in ph.FILES:
        assert (out / "repo" / f).read_text() == ph.CODE[f]


def test_ctrl_c_stops_cleanly_and_rerun_resumes(tmp_path: Path) -> None:
    """Ctrl-C with a call in flight: that call finishes and is stored, no new call starts,
    exit 130, run.json says interrupted, and the rerun sends none of the requests the server
    answered. The server holds the third request until the CLI says it is stopping, so the
    answer arrives after the interrupt whatever the machine's load."""
    from tests.cli_proc import LONG, Cli

    paper = tmp_path / "paper.md"
    paper.write_text(ph.TINY_PAPER)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with FakeOpenAIServer(ph.respond) as srv:
        args = ["run", str(paper), "-m", "openai/gpt-4.1-mini", "--base-url", srv.url, "-o",
                str(out), "-q"]
        srv.hold(lambda r: r.method == "POST" and len(srv.requests) >= 3)
        cli = Cli(*args)
        try:
            srv.wait_held(1, timeout=LONG)
            cli.proc.send_signal(signal.SIGINT)
            cli.wait_for_stderr("Stopping")
            srv.release()
            code = cli.finish()
        finally:
            cli.kill()
        stdout, stderr = cli.stdout, cli.stderr
        assert code == 130, (stdout, stderr)
        assert "Traceback" not in stdout + stderr
        assert "Interrupted" in stderr and "resume" in stderr
        manifest = json.loads((out / "run.json").read_text())
        assert manifest["status"] == "interrupted"
        answered = {json.dumps(r.body, sort_keys=True) for r in srv.requests
                    if r.status == 200 and r.finished is not None}
        assert len(answered) == 3  # the held answer arrived after Ctrl-C and was kept
        n_first = len(srv.requests)
        done = subprocess.run([sys.executable, "-m", "papercoder", *args], env=env,
                              capture_output=True, text=True, timeout=LONG)
        assert done.returncode == 0, done.stderr
        again = {json.dumps(r.body, sort_keys=True) for r in srv.requests[n_first:]}
    assert not again & answered
    assert json.loads((out / "run.json").read_text())["status"] == "done"


def test_pipeline_through_the_anthropic_protocol_reads_the_prompt_cache(tmp_path: Path,
                                                                        monkeypatch) -> None:
    from tests.fakes.anthropic_server import FakeAnthropicServer

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test-not-a-real-key")
    paper = tmp_path / "paper.md"
    paper.write_text(ph.TINY_PAPER)
    with FakeAnthropicServer(ph.respond) as srv:
        model = get_model("anthropic/claude-sonnet-4-6", base_url=srv.root)
        opts = RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True)
        m = run_pipeline(opts, model=model, store=Store(tmp_path / "s.db"))
        bodies = [r.body for r in srv.requests if r.method == "POST"]
    assert m.status == "done", m.error
    assert all((tmp_path / "out" / "repo" / f).read_text() == ph.CODE[f] for f in ph.FILES)
    # every request after the first reuses the cached paper prefix
    assert m.stages["analysis"].cached_prompt_tokens > 0
    assert m.stages["coding"].cached_prompt_tokens > 0
    assert m.totals.cost_usd is not None and m.totals.cost_usd > 0
    for body in bodies:
        marks = sum(1 for msg in body["messages"] for b in msg["content"]
                    if isinstance(b, dict) and "cache_control" in b)
        assert 1 <= marks <= 4


def _shared(blocks: list) -> list[str]:
    """A request's blocks but the last (the file's own tail), each as exact JSON."""
    return [json.dumps({k: v for k, v in b.items() if k != "cache_control"}, sort_keys=True)
            for b in blocks[:-1]]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_coding_calls_share_a_growing_byte_identical_prefix(tmp_path: Path,
                                                            provider: str) -> None:
    """Each coding request, as it reaches the server, starts with the whole shared part of
    every coding request sent before it (paper, plan, earlier code in a fixed order); only the
    file's own analysis and instruction come after. The logged usage shows the provider cache
    read growing with it."""
    paper = tmp_path / "paper.md"
    paper.write_text(ph.TINY_PAPER)
    store = Store(tmp_path / "s.db")
    if provider == "openai":
        server: FakeOpenAIServer | FakeAnthropicServer = FakeOpenAIServer(
            ph.respond, prefix_cache_min=0)
    else:
        server = FakeAnthropicServer(ph.respond)
    with server as srv:
        base = srv.url if provider == "openai" else srv.root
        name = "gpt-4.1-mini" if provider == "openai" else "claude-sonnet-4-6"
        model = get_model(f"{provider}/{name}", base_url=base)
        # One call at a time: the cache reads then depend on the order alone, not on timing.
        m = run_pipeline(RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True,
                                    concurrency=1), model=model, store=store)
        bodies = [r.body for r in srv.requests if r.method == "POST"]
    assert m.status == "done", m.error

    def blocks(body: dict) -> list:
        if provider == "openai":
            return list(body["messages"])
        return list(prompt_blocks(body))

    coding = [b for b in bodies if "Your analysis of" in json.dumps(blocks(b)[-1])
              and "SEARCH/REPLACE" not in json.dumps(b)]  # not the repairs after coding
    analysis = [b for b in bodies if "detailed logic analysis for" in json.dumps(blocks(b)[-1])]
    assert len(coding) == len(ph.FILES) and analysis
    shared = [_shared(blocks(b)) for b in coding]
    plan_part = _shared(blocks(analysis[0]))
    assert all(s[:len(plan_part)] == plan_part for s in shared)
    for before, after in zip(shared, shared[1:], strict=False):
        assert after[:len(before)] == before
    assert len(shared[-1]) > len(shared[0])  # it grew: main.py sees the code of the others
    assert not any("Your analysis of" in "".join(s) for s in shared)  # own part is last
    logged = store.exchanges(stage="coding")
    reads = [x.cached_prompt_tokens for x in logged]
    assert all(r > 0 for r in reads) and reads == sorted(reads) and reads[-1] > reads[0]
