"""`papercoder batch --ray`: a real Ray head on 127.0.0.1 runs scripted papers.

Starting Ray takes 15-30 s on a loaded 2-core machine, so these tests are marked ``ray`` and
run only when ``PAPERCODER_TEST_RAY=1`` (``.ci/run`` sets it) and Ray is installed.

The head is started with ``ray start --head --block`` in its own process group (stopped by
that process's id, never ``ray stop``), bound to 127.0.0.1, without the dashboard or usage
reporting. Every Python process of the cluster (raylet workers included) imports a
``sitecustomize`` that refuses connections to anything but loopback, like the test guard.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import pipeline_helpers as ph
from tests.fakes.openai_server import FakeOpenAIServer
from tests.test_batch import _Gate, _ok_exchanges

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.ray,
    pytest.mark.skipif(os.environ.get("PAPERCODER_TEST_RAY") != "1",
                       reason="Ray tests start a Ray head (slow): set PAPERCODER_TEST_RAY=1 "
                              "(.ci/run does)"),
]

RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no usage report to the internet
    "RAY_AUTH_MODE": "disabled",  # a throwaway cluster bound to loopback
    # every Ray process, the drivers included, uses the loopback address as its node IP
    # (Ray otherwise swaps 127.0.0.1 for the machine's address by asking a public route)
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
}

GUARD = '''
import ipaddress, socket
_connect, _connect_ex, _gai = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
def _ok(address):
    if isinstance(address, (str, bytes)):
        return True
    try:
        return address[0] == "localhost" or ipaddress.ip_address(address[0]).is_loopback
    except (ValueError, IndexError, TypeError):
        return False
def _guard(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and not _ok(address):
        raise ConnectionRefusedError(f"Ray test cluster: loopback only, not {address!r}")
def connect(self, address):
    _guard(self, address)
    return _connect(self, address)
def connect_ex(self, address):
    _guard(self, address)
    return _connect_ex(self, address)
def getaddrinfo(host, *a, **k):
    if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost"):
        try:
            if not ipaddress.ip_address(host).is_loopback:
                raise socket.gaierror(f"Ray test cluster may not resolve {host!r}")
        except ValueError:
            raise socket.gaierror(f"Ray test cluster may not resolve {host!r}") from None
    return _gai(host, *a, **k)
socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, \\
    getaddrinfo
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    os.environ.update(RAY_ENV)  # before Ray is imported: it reads them at import
    pytest.importorskip("ray")
    tmp = Path(tempfile.mkdtemp(prefix="pcray"))  # short: Ray's socket paths are limited
    (tmp / "guard").mkdir()
    (tmp / "guard" / "sitecustomize.py").write_text(GUARD)
    env = dict(os.environ, **RAY_ENV,
               PYTHONPATH=os.pathsep.join([str(tmp / "guard"), str(ROOT / "src"), str(ROOT)]))
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "RAY_ADDRESS"):
        env.pop(var, None)
    port = _free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    cmd = [str(ray_bin), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
           "--port", str(port), "--num-cpus", "4", "--num-gpus", "0",
           "--include-dashboard", "false", "--disable-usage-stats",
           "--dashboard-agent-listen-port", str(_free_port()),
           "--temp-dir", str(tmp / "r")]
    log = open(tmp / "ray.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        import ray

        deadline = time.monotonic() + 180
        while True:  # wait until a driver can connect
            assert proc.poll() is None, (tmp / "ray.log").read_text()[-3000:]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the Ray head did not start"
                time.sleep(0.5)
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        yield {"address": address, "pythonpath": env["PYTHONPATH"]}
    finally:
        try:
            import ray

            ray.shutdown()
        except ImportError:
            pass
        proc.send_signal(signal.SIGTERM)  # `ray start --block` stops its processes
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log.close()


def _papers(root: Path, n: int, bad: bool = False) -> Path:
    papers = root / "papers"
    papers.mkdir()
    for i in range(n):
        (papers / f"p{i}.md").write_text(ph.TINY_PAPER.replace("Momentum", f"Momentum {i}"))
    if bad:
        (papers / "broken.md").write_text("  ")
    return papers


def test_workers_cannot_reach_beyond_loopback(cluster: dict[str, str]) -> None:
    import ray

    @ray.remote(num_cpus=1)
    def reach() -> list[str]:
        said = []
        for attempt in (lambda: socket.create_connection(("example.com", 80), timeout=2),
                        lambda: socket.socket().connect(("192.0.2.1", 80))):
            try:
                attempt()
                said.append("connected")
            except OSError as e:
                said.append(str(e))
        return said

    assert ray.get(reach.remote(), timeout=120) == [
        "Ray test cluster may not resolve 'example.com'",
        "Ray test cluster: loopback only, not ('192.0.2.1', 80)"]


def test_papers_as_tasks_a_failing_one_and_the_shared_limiter(cluster: dict[str, str],
                                                              tmp_path: Path) -> None:
    from papercoder.batch import BatchOptions, discover, run_batch

    papers = _papers(tmp_path, 4, bad=True)
    rpm = 240.0  # 3.8 requests/s after the 95 % headroom, burst 7.6
    events: list[tuple[str, dict]] = []
    with FakeOpenAIServer(ph.respond) as srv:
        opts = BatchOptions(model="openai/gpt-4.1-mini", base_url=srv.url,
                            out=tmp_path / "out", workers=5, rpm=rpm, quiet=True)
        rows = asyncio.run(run_batch(discover(papers), opts, use_ray=True,
                                     emit=lambda s, e: events.append((s, e))))
        posts = [r for r in srv.requests if r.method == "POST"]
        arrivals = sorted(r.arrived for r in posts)
        pipeline = [r for r in posts if "SEARCH/REPLACE" not in json.dumps(r.body)
                    and not ph.is_contract_call(json.dumps(r.body))]
    by = {r["slug"]: r for r in rows}
    assert by["broken"]["status"] == "failed" and "is empty" in by["broken"]["error"]
    assert all(by[f"p{i}"]["status"] == "done" and by[f"p{i}"]["files_written"] == 4
               for i in range(4))
    # progress came back to the driver from the tasks
    assert {s for s, e in events if e.get("stage") == "coding"} == {f"p{i}" for i in range(4)}
    assert all(json.loads((tmp_path / "out" / "summary.json").read_text())["papers"])
    # four processes, one limiter: 52 requests cannot leave faster than the shared rate
    # (each process alone would have sent its 13 within the burst)
    # per paper: 4 planning, 1 cache warm-up, 4 analyses, 4 files (then verify's static repair,
    # which the same limiter paces)
    assert len(pipeline) == 4 * 13
    n = len(arrivals)
    rate = rpm * 0.95 / 60
    assert arrivals[-1] - arrivals[0] >= (n - 1 - 2 * rate) / rate - 1.5
    for i, t in enumerate(arrivals):  # and no 5 s window holds more than the limit allows
        assert sum(1 for x in arrivals[i:] if x < t + 5) <= 5 * rate + 2 * rate + 3


def test_resume_after_the_driver_is_killed(cluster: dict[str, str], tmp_path: Path) -> None:
    papers = _papers(tmp_path, 3)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=cluster["pythonpath"], **RAY_ENV)
    gate = _Gate(n=18)
    with FakeOpenAIServer(gate) as srv:
        cmd = [sys.executable, "-m", "papercoder", "batch", str(papers), "-m",
               "openai/gpt-4.1-mini", "--base-url", srv.url, "-o", str(out), "-q",
               "--workers", "3", "--ray", cluster["address"]]  # --ray ADDRESS
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while not (gate.held >= 1 and _ok_exchanges(out) >= gate.n):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the batch did not get going"
                time.sleep(0.1)
            os.killpg(proc.pid, signal.SIGKILL)  # the driver only; the cluster lives on
        finally:
            proc.wait(timeout=30)
        first = [r for r in list(srv.requests) if r.method == "POST"]
        answered = {json.dumps(r.body, sort_keys=True) for r in first[:gate.n]}
        gate.closed = False  # requests held for the dead run stay held to the end
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        again = [json.dumps(r.body, sort_keys=True) for r in srv.requests[len(first):]
                 if r.method == "POST" and r.status == 200]
        gate.open.set()
    assert again and not set(again) & answered, "an answered call was paid for twice"
    summary = json.loads((out / "summary.json").read_text())
    assert [p["status"] for p in summary["papers"]] == ["done"] * 3


def _task_workers() -> set[int]:
    """Process ids of the Ray workers running a paper's task (their title is the task's)."""
    pids = set()
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"ray::_paper_task"):
                pids.add(int(d.name))
    return pids


def _kill_the_task_worker(srv: FakeOpenAIServer, held: int, proc: subprocess.Popen,
                          killed: set[int]) -> int:
    """Once ``held`` requests are held, kill -9 the (only) worker running a paper's task."""
    deadline = time.monotonic() + 180
    while True:
        assert proc.poll() is None, proc.communicate()
        pids = _task_workers() - killed if len(srv.held) >= held else set()
        if len(pids) == 1:
            pid = pids.pop()
            os.kill(pid, signal.SIGKILL)  # a worker we started (our cluster's), by its id
            killed.add(pid)
            return pid
        assert time.monotonic() < deadline, f"{len(srv.held)} held, workers {pids}"
        time.sleep(0.1)


def test_a_worker_killed_mid_paper_is_retried_once_then_reported(cluster: dict[str, str],
                                                                 tmp_path: Path) -> None:
    """One paper at a time (--workers 1). p1's worker is killed with SIGKILL twice: Ray
    reruns the task once, then the paper is reported failed with the reason. p2's worker is
    killed once: the rerun resumes it and it finishes. p0 is untouched. The batch neither
    hangs nor stops. Also: a bare `--ray` joins $RAY_ADDRESS."""
    papers = _papers(tmp_path, 3)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=cluster["pythonpath"], RAY_ADDRESS=cluster["address"],
               **RAY_ENV)

    def paper(i: int):  # noqa: ANN202
        return lambda r: r.method == "POST" and f"Momentum {i}" in json.dumps(r.body)

    killed: set[int] = set()
    with FakeOpenAIServer(ph.respond) as srv:
        srv.hold(paper(1))
        cmd = [sys.executable, "-m", "papercoder", "batch", str(papers), "-m",
               "openai/gpt-4.1-mini", "--base-url", srv.url, "-o", str(out), "-q",
               "--workers", "1", "--ray"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            _kill_the_task_worker(srv, 1, proc, killed)  # p1, first run
            _kill_the_task_worker(srv, 2, proc, killed)  # p1, its one retry
            srv.hold(paper(2))
            _kill_the_task_worker(srv, 3, proc, killed)  # p2, first run only
            srv.release()
            stdout, stderr = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    assert proc.returncode == 0, stderr[-2000:]
    assert "Traceback" not in stdout + stderr
    by = {p["slug"]: p for p in json.loads((out / "summary.json").read_text())["papers"]}
    assert by["p0"]["status"] == "done" and by["p2"]["status"] == "done"
    assert by["p1"]["status"] == "failed"
    assert "worker died, also on 1 retry" in by["p1"]["error"]
    assert "rerun the batch to resume" in by["p1"]["error"]
    assert "worker died" in stdout  # the printed table's failures say why
