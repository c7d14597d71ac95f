"""The sandbox around generated code: real subprocesses, real limits, real namespaces."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from papercoder.verify.sandbox import Limits, Sandbox


def _work(tmp_path: Path, sandbox: Sandbox, script: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "prog.py").write_text(script, encoding="utf-8")
    return sandbox.prepare_copy(src, tmp_path / "work")


def _py(sandbox: Sandbox, work: Path, script: str, timeout: float = 60.0):  # noqa: ANN202
    return sandbox.run([sys.executable, "prog.py"], work, timeout=timeout,
                       python_bin=Path(sys.executable))


BWRAP = pytest.mark.parametrize("use_bwrap", [True, False], ids=["bwrap", "no-bwrap"])


def _readonly() -> list[Path]:
    return [Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve().parents[1]]


def _processes_with(marker: str) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = Path(f"/proc/{d}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmd:
                found.append(int(d))
    return found


@BWRAP
def test_an_infinite_loop_and_its_children_are_killed_at_the_timeout(
        tmp_path: Path, use_bwrap: bool) -> None:
    marker = f"98765{os.getpid()}"
    script = (f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'])\n"
              "print('started', flush=True)\nwhile True:\n    pass\n")
    sb = Sandbox(readonly=_readonly(), use_bwrap=use_bwrap)
    work = _work(tmp_path, sb, script)
    started = time.monotonic()
    r = _py(sb, work, script, timeout=10)  # room for a slow start on a loaded machine
    assert r.timed_out and r.exit is None
    assert "started" in r.output
    assert time.monotonic() - started < 60
    deadline = time.monotonic() + 30
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_with(marker) == []  # the whole group went, grandchildren included


@BWRAP
def test_a_memory_hog_is_contained(tmp_path: Path, use_bwrap: bool) -> None:
    script = "x = bytearray(3 * 1024 ** 3)\nprint('allocated', len(x))\n"
    sb = Sandbox(limits=Limits(memory_mb=512), readonly=_readonly(), use_bwrap=use_bwrap)
    work = _work(tmp_path, sb, script)
    r = _py(sb, work, script)
    assert r.exit != 0 and "MemoryError" in r.output
    assert "allocated" not in r.output


@BWRAP
def test_a_fork_bomb_is_contained(tmp_path: Path, use_bwrap: bool) -> None:
    # Bounded on purpose: even without containment it makes at most 300 short-lived processes.
    script = ("import os, sys, time\nmade = 0\nfor _ in range(300):\n    try:\n"
              "        pid = os.fork()\n    except OSError:\n        break\n"
              "    if pid == 0:\n        time.sleep(2)\n        os._exit(0)\n    made += 1\n"
              "print('forked', made, flush=True)\n")
    sb = Sandbox(limits=Limits(processes=40), readonly=_readonly(), use_bwrap=use_bwrap)
    if not sb.isolation.limits["processes_enforced"]:
        pytest.skip("the process limit cannot be enforced here (root without setpriv)")
    work = _work(tmp_path, sb, script)
    r = _py(sb, work, script)
    made = int(r.output.split("forked", 1)[1].split()[0])
    if not sb.isolation.limits["processes_enforced"]:
        pytest.skip("the process limit cannot be enforced here: " + "; ".join(
            sb.isolation.notes))
    # At most 40 (as root, exactly); a non-root user's other processes count against the
    # limit as they come and go, hence the margin. Uncontained, all 300 forks succeed.
    assert made < 100, r.output


@BWRAP
def test_api_keys_of_the_parent_are_not_visible(tmp_path: Path, use_bwrap: bool,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value-123")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp-secret-value-456")
    monkeypatch.setenv("LANG", "C.UTF-8")
    script = "import os\nfor k, v in sorted(os.environ.items()):\n    print(k, '=', v)\n"
    sb = Sandbox(readonly=_readonly(), use_bwrap=use_bwrap)
    work = _work(tmp_path, sb, script)
    r = _py(sb, work, script)
    assert r.exit == 0
    assert "LANG = C.UTF-8" in r.output  # the allow-list passes harmless settings
    assert "secret-value" not in r.output and "API_KEY" not in r.output
    assert "TOKEN" not in r.output


@BWRAP
def test_network_is_cut_off_unless_allowed(tmp_path: Path, use_bwrap: bool) -> None:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    port = srv.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.sendall(b"hello")
                conn.close()
            except OSError:
                continue

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    script = ("import socket\ntry:\n    s = socket.create_connection(('127.0.0.1', "
              f"{port}), timeout=10)\n    print('got', s.recv(5))\nexcept OSError as e:\n"
              "    print('refused', type(e).__name__)\n")
    try:
        sb = Sandbox(readonly=_readonly(), use_bwrap=use_bwrap)
        if sb.isolation.network != "namespace":
            pytest.skip(f"no network namespace here ({sb.isolation.network})")
        work = _work(tmp_path, sb, script)
        r = _py(sb, work, script)
        assert "refused" in r.output and "hello" not in r.output
        open_sb = Sandbox(allow_network=True, readonly=_readonly(), use_bwrap=use_bwrap)
        assert open_sb.isolation.network == "allowed"
        r2 = _py(open_sb, _work(tmp_path, open_sb, script), script)
        assert "got b'hello'" in r2.output  # the same program reaches it when allowed
    finally:
        stop.set()
        t.join(5)
        srv.close()


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
def test_a_write_outside_the_work_copy_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    home_file = Path.home() / f".papercoder-sandbox-test-{os.getpid()}"
    script = (f"import pathlib\nfor p in [{str(outside)!r}, {str(home_file)!r}, "
              "'/etc/papercoder-test']:\n    try:\n"
              "        pathlib.Path(p).write_text('x')\n        print('wrote', p)\n"
              "    except OSError as e:\n        print('refused', p, type(e).__name__)\n"
              "pathlib.Path('inside.txt').write_text('ok')\n")
    sb = Sandbox(readonly=_readonly())
    if sb.isolation.sandbox != "bwrap":
        pytest.skip("bwrap cannot create namespaces here")
    work = _work(tmp_path, sb, script)
    r = _py(sb, work, script)
    assert r.exit == 0, r.output
    assert "wrote" not in r.output
    assert not outside.exists() and not home_file.exists()
    assert not Path("/etc/papercoder-test").exists()
    assert (work / "inside.txt").read_text() == "ok"


@BWRAP
def test_captured_output_is_capped(tmp_path: Path, use_bwrap: bool) -> None:
    script = "import sys\nfor i in range(200000):\n    sys.stdout.write(f'line {i}\\n')\n" \
             "print('THE END')\n"
    sb = Sandbox(limits=Limits(output_kb=64), readonly=_readonly(), use_bwrap=use_bwrap)
    work = _work(tmp_path, sb, script)
    r = _py(sb, work, script)
    assert r.exit == 0 and r.truncated
    assert len(r.output) < 70 * 1024
    assert r.output.startswith("line 0\n") and r.output.rstrip().endswith("THE END")
    assert "bytes of output left out" in r.output


BWRAP_ONLY = pytest.mark.skipif(shutil.which("bwrap") is None or not Sandbox().bwrap,
                                reason="bubblewrap (bwrap) cannot run here")


@BWRAP_ONLY
def test_relative_paths_work_from_any_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bwrap resolves a relative source path against its own root: the sandbox makes every
    path absolute first, so a relative OUT runs the same as an absolute one."""
    monkeypatch.chdir(tmp_path)
    tool = Path("rel") / "tool"
    tool.mkdir(parents=True)
    (tool / "data.txt").write_text("seen\n", encoding="utf-8")
    sb = Sandbox(readonly=[*_readonly(), tool])
    work = _work(Path("."), sb, "print(open(__import__('sys').argv[1]).read())\n")
    assert not work.is_absolute()
    r = sb.run([sys.executable, "prog.py", str(tmp_path / tool / "data.txt")], work,
               timeout=60, python_bin=Path(sys.executable))
    assert r.exit == 0 and "seen" in r.output, r.output


@BWRAP_ONLY
def test_a_sandbox_that_cannot_start_is_our_error_not_the_programs(tmp_path: Path) -> None:
    from papercoder.errors import SandboxError

    sb = Sandbox(readonly=_readonly())
    work = _work(tmp_path, sb, "print('ran')\n")
    fake = tmp_path / "fake-bwrap"
    fake.write_text("#!/bin/sh\necho \"bwrap: Can't find source path out/x: No such file\" >&2\n"
                    "exit 1\n", encoding="utf-8")
    fake.chmod(0o755)
    sb.bwrap = str(fake)  # stands in for a bwrap that fails before the program starts
    with pytest.raises(SandboxError) as e:
        sb.run([sys.executable, "prog.py"], work, timeout=60, python_bin=Path(sys.executable))
    assert "sandbox could not start" in str(e.value) and "Can't find source path" in str(e.value)
    assert len(str(e.value).rstrip(".").split(". ")) == 1  # one sentence


@BWRAP_ONLY
@pytest.mark.skipif(os.geteuid() != 0, reason="the nobody user is used only by root")
def test_an_interpreter_under_a_private_folder_runs_whoever_owns_home(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Root, Python under a mode-700 folder (/root/.pyenv), HOME elsewhere: the sandbox runs
    as nobody and must still reach what it binds read-only."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    private = Path(tempfile.mkdtemp(prefix="papercoder-test-", dir="/var/tmp"))
    try:
        private.chmod(0o700)
        tool = private / "opt" / "tool"
        tool.mkdir(parents=True)
        (tool / "run.sh").write_text("#!/bin/sh\necho tool-ran\n", encoding="utf-8")
        (tool / "run.sh").chmod(0o755)
        (private / "secret").write_text("hidden\n", encoding="utf-8")
        sb = Sandbox(readonly=[tool])
        work = _work(tmp_path, sb, "")
        r = sb.run([str(tool / "run.sh")], work, timeout=60)
        assert r.exit == 0 and "tool-ran" in r.output, r.output
        r = sb.run(["cat", str(private / "secret")], work, timeout=60)
        assert r.exit != 0 and "hidden" not in r.output  # the rest stays out of sight
    finally:
        shutil.rmtree(private, ignore_errors=True)
