"""Hardening, concurrency and signals: one run per output folder, a store that many
processes can create at once, and Ctrl-C that keeps every answer that arrived.

Timing never decides an outcome here: the loopback server holds chosen requests until the
test releases them, and the test waits for the CLI to say it is stopping before it does."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from papercoder.errors import Interrupted, OutputBusyError
from papercoder.llm import Caller
from papercoder.models.scripted import ScriptedModel
from papercoder.outdir.lock import LOCK_NAME, holder, out_lock
from papercoder.store import Store
from tests import pipeline_helpers as ph
from tests.cli_proc import LONG, Cli, env
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.server import Recorded


def stage_of(body: dict) -> str:
    last = body["messages"][-1]["content"]
    if "detailed logic analysis for" in last:
        return "analysis"
    if "Now write" in last:
        return "coding"
    return "planning"


def analysis_of(r: Recorded, files: tuple[str, ...]) -> bool:
    return r.method == "POST" and stage_of(r.body) == "analysis" and any(
        f"analysis for {f}," in r.body["messages"][-1]["content"] for f in files)


def _pipeline(r: object) -> bool:
    """A request of the pipeline proper, not of verify's static repair after coding."""
    return r.method == "POST" and "SEARCH/REPLACE" not in json.dumps(r.body)


def answered(srv: FakeOpenAIServer, start: int = 0) -> list[str]:
    return [json.dumps(r.body, sort_keys=True) for r in srv.requests[start:]
            if _pipeline(r) and r.status == 200 and r.finished is not None]


def sent(srv: FakeOpenAIServer, start: int = 0) -> list[str]:
    return [json.dumps(r.body, sort_keys=True) for r in srv.requests[start:] if _pipeline(r)]


def run_args(paper: Path, srv: FakeOpenAIServer, out: Path, *extra: str) -> list[str]:
    return ["run", str(paper), "-m", "openai/gpt-4.1-mini", "--base-url", srv.url, "-o",
            str(out), "-q", *extra]


@pytest.fixture
def paper(tmp_path: Path) -> Path:
    p = tmp_path / "paper.md"
    p.write_text(ph.TINY_PAPER)
    return p


# -- Ctrl-C ------------------------------------------------------------------------------
def test_ctrl_c_lets_calls_in_flight_finish_and_rerun_pays_nothing_twice(
        tmp_path: Path, paper: Path) -> None:
    out = tmp_path / "out"
    late = tuple(ph.FILES)  # every analysis is held: all four are in flight at the signal
    with FakeOpenAIServer(ph.respond) as srv:
        srv.hold(lambda r: analysis_of(r, late))
        # the published method's calls (the contract's own resume is in test_contract.py)
        cli = Cli(*run_args(paper, srv, out, "--concurrency", "4", "--no-contract"))
        try:
            srv.wait_held(4, timeout=LONG)  # four answers are being prepared
            cli.proc.send_signal(signal.SIGINT)
            cli.wait_for_stderr("Stopping")
            assert "4 calls in flight" in cli.stderr
            n_at_stop = len(srv.requests)
            srv.release()  # the answers arrive only after the interrupt
            code = cli.finish()
        finally:
            cli.kill()
        assert code == 130, cli.stderr
        assert "Traceback" not in cli.stdout + cli.stderr
        assert "Interrupted" in cli.stderr and "resume" in cli.stderr
        assert len(srv.requests) == n_at_stop, "a call was started after Ctrl-C"
        manifest = json.loads((out / "run.json").read_text())
        assert manifest["status"] == "interrupted"
        first = answered(srv)
        # planning, the four held analyses, and any 1-token prompt-cache warm-up before them
        warmups = [r for r in first if json.loads(r).get("max_tokens") == 1]
        assert len(first) == 4 + 4 + len(warmups)
        store = Store(tmp_path / "store.db")
        stored = [x for x in store.exchanges() if x.stage == "analysis" and x.status == "ok"]
        assert {x.file for x in stored} - {"(prompt cache)"} == set(late)

        n_first = len(srv.requests)
        done = subprocess.run([sys.executable, "-m", "papercoder", *run_args(
            paper, srv, out, "--no-contract")], env=env(), capture_output=True, text=True,
            timeout=LONG)
        assert done.returncode == 0, done.stderr
        again = sent(srv, n_first)
    assert not set(again) & set(first), "an answered request was sent twice"
    assert len(again) == len(ph.FILES)  # only the coding calls were left
    assert json.loads((out / "run.json").read_text())["status"] == "done"
    for f in ph.FILES:
        assert (out / "repo" / f).read_text() == ph.CODE[f]


@pytest.mark.parametrize(("grace", "second_ctrl_c", "said"), [
    ("3600", True, "Stopping"),  # a second Ctrl-C exits at once
    ("0.5", False, "waiting up to 0.5 s"),  # no release, no second Ctrl-C: the grace ends it
], ids=["second-ctrl-c-exits-at-once", "grace-period-bounds-the-wait"])
def test_ctrl_c_while_a_request_is_held(tmp_path: Path, paper: Path, grace: str,
                                        second_ctrl_c: bool, said: str) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(ph.respond) as srv:
        srv.hold()
        cli = Cli(*run_args(paper, srv, out, "--grace", grace))
        try:
            srv.wait_held(1, timeout=LONG)
            cli.proc.send_signal(signal.SIGINT)
            cli.wait_for_stderr("Stopping")
            if second_ctrl_c:
                cli.proc.send_signal(signal.SIGINT)
            code = cli.finish()  # the held request is never answered
        finally:
            cli.kill()
            srv.release()
    assert code == 130, cli.stderr
    assert said in cli.stderr
    assert "Traceback" not in cli.stdout + cli.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


def test_a_stopped_caller_starts_no_call(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    model = ScriptedModel({"plan": "a plan"})
    caller = Caller(model, store, store.create_run("test"))
    caller.stop()
    with pytest.raises(Interrupted):
        asyncio.run(caller.call([{"role": "user", "content": "Step 1 of the plan"}],
                                stage="planning"))
    assert store.exchanges() == []


# -- one run per output folder ------------------------------------------------------------
def test_second_run_on_the_same_out_is_refused_naming_the_first(tmp_path: Path,
                                                                paper: Path) -> None:
    out = tmp_path / "out"
    with FakeOpenAIServer(ph.respond) as srv:
        srv.hold()
        first = Cli(*run_args(paper, srv, out))
        try:
            srv.wait_held(1, timeout=LONG)
            n = len(srv.requests)
            second = subprocess.run([sys.executable, "-m", "papercoder",
                                     *run_args(paper, srv, out)], env=env(),
                                    capture_output=True, text=True, timeout=LONG)
            assert len(srv.requests) == n, "the refused run called the model"
            plan = subprocess.run([sys.executable, "-m", "papercoder", "plan", str(paper),
                                   "-m", "openai/gpt-4.1-mini", "--base-url", srv.url, "-o",
                                   str(out), "-q"], env=env(), capture_output=True, text=True,
                                  timeout=LONG)
            srv.release()
            code = first.finish()
        finally:
            first.kill()
            srv.release()
    assert code == 0, first.stderr
    for refused in (second, plan):
        assert refused.returncode == 2, refused.stderr
        err = refused.stderr.strip()
        assert err.startswith("Error: ") and "\n" not in err and "Traceback" not in err
        assert f"process {first.proc.pid}" in err and "papercoder run" in err
    assert json.loads((out / "run.json").read_text())["status"] == "done"


_HOLDER = """
import sys, time
from pathlib import Path
from papercoder.outdir.lock import out_lock
with out_lock(Path(sys.argv[1]), "holder-for-test"):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path, paper: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], env=env(),
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        with pytest.raises(OutputBusyError, match=f"process {proc.pid} \\(holder-for-test\\)"):
            with out_lock(out):
                pass
    finally:
        proc.kill()
        proc.wait(timeout=LONG)
    assert holder(out)["pid"] == proc.pid  # the dead holder's note is still there
    _, script = ph.write_fixture(tmp_path)
    done = subprocess.run([sys.executable, "-m", "papercoder", "run", str(paper), "-m",
                           f"scripted:{script}", "-o", str(out), "-q"], env=env(),
                          capture_output=True, text=True, timeout=LONG)
    assert done.returncode == 0, done.stderr
    assert "took over the lock" in (out / "papercoder.log").read_text()


def test_stale_lock_file_naming_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait(timeout=LONG)
    (out / LOCK_NAME).write_text(json.dumps({"pid": dead.pid, "command": "papercoder run x"}))
    with out_lock(out, "me"):
        assert holder(out)["pid"] == os.getpid()
        with out_lock(out):  # nested use in one process shares the lock
            pass
        assert holder(out)["pid"] == os.getpid()
    assert holder(out) is None  # released: nobody named


def test_lock_inside_one_process(tmp_path: Path) -> None:
    """The holder's own code (and tasks it starts) may lock again; another thread or an
    unrelated task of the same process may not."""
    out = tmp_path / "out"
    out.mkdir()
    refused: list[BaseException] = []

    def other_thread() -> None:
        try:
            with out_lock(out):
                pass
        except OutputBusyError as e:
            refused.append(e)

    async def main() -> None:
        with out_lock(out, "outer"):
            async def child() -> None:
                with out_lock(out):  # a task started by the holder inherits its lock
                    await asyncio.sleep(0)
            await asyncio.gather(child(), child())
            t = threading.Thread(target=other_thread)
            t.start()
            t.join(LONG)

    asyncio.run(main())
    assert len(refused) == 1 and f"process {os.getpid()} (outer)" in str(refused[0])
    with out_lock(out):  # released
        pass


_OPENER = """
import sys, time
from pathlib import Path
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.01)
from papercoder.store import Store
s = Store(sys.argv[1])
rid = s.create_run("race")
s.log(run_id=rid, stage="x", file=None, model="m", key="k" + rid, request={}, response="r")
print(rid)
"""


def test_many_processes_create_one_fresh_store_at_once(tmp_path: Path) -> None:
    db = tmp_path / "fresh" / "store.db"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _OPENER, str(db), str(go)], env=env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    go.write_text("go")
    results = [p.communicate(timeout=LONG) for p in procs]
    for p, (_stdout, stderr) in zip(procs, results, strict=True):
        assert p.returncode == 0, stderr
    store = Store(db)
    assert len(store.runs()) == 8
    assert len(store.exchanges()) == 8


def test_ctrl_c_reaches_every_run_in_one_event_loop(tmp_path: Path, paper: Path) -> None:
    """Two pipelines in one loop (as a batch runs them): one Ctrl-C stops both, each keeps
    the answer in flight, and the signal handler is put back afterwards."""
    from papercoder.models import get_model
    from papercoder.pipeline import _ACTIVE, RunOptions, run_pipeline_async

    before = signal.getsignal(signal.SIGINT)
    store = Store(tmp_path / "s.db")
    with FakeOpenAIServer(ph.respond) as srv:
        srv.hold(lambda r: r.method == "POST" and "Step 2 of the plan" in json.dumps(r.body))

        async def main() -> list[object]:
            model = get_model("openai/gpt-4.1-mini", base_url=srv.url)
            runs = asyncio.gather(*(run_pipeline_async(
                RunOptions(paper=str(paper), out=tmp_path / f"out{i}", quiet=True,
                           no_contract=True),  # the published method's two plans
                model=model, store=store) for i in (1, 2)), return_exceptions=True)
            await asyncio.to_thread(srv.wait_held, 2, LONG)
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + LONG
            while not all(s.count for stops in _ACTIVE.values() for s in stops):
                assert time.monotonic() < deadline, "Ctrl-C was not handled"
                await asyncio.sleep(0.01)
            srv.release()
            return await runs

        results = asyncio.run(main())
        answered = [r for r in srv.requests if r.status == 200 and r.finished is not None]
    assert all(isinstance(r, Interrupted) for r in results), results
    assert len(answered) == 4  # two plans and the two held architecture answers
    ok = [x for x in store.exchanges() if x.status == "ok"]
    assert sorted(x.stage for x in ok) == ["architecture"] * 2 + ["plan"] * 2
    for i in (1, 2):
        assert json.loads((tmp_path / f"out{i}" / "run.json").read_text())["status"] == \
            "interrupted"
    assert signal.getsignal(signal.SIGINT) is before
