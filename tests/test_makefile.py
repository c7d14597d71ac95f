"""The README's two commands: what `make run` and `make test` install (make's dry run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dry_run(target: str, venv: Path) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    r = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_make_run_installs_only_what_the_run_needs(tmp_path: Path) -> None:
    out = dry_run("run", tmp_path / "venv")
    assert "-m venv" in out
    assert "'.[local]'" in out and "test]" not in out
    assert "pip install -v" in out  # the long llama-cpp-python build shows progress
    assert "-mno-amx-tile" in out or "x86_64" not in subprocess.getoutput("uname -m")
    assert "papercoder run" in out and "Exit status" in out


def test_make_test_after_make_run_adds_only_the_test_extra(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    venv.mkdir()
    fresh = dry_run("test", venv)
    assert "-m venv" in fresh and "'.[local]'" in fresh and "'.[local,test]'" in fresh
    for stamp in (".created", ".installed-run"):  # what `make run` leaves behind
        (venv / stamp).touch()
    after_run = dry_run("test", venv)
    assert "-m venv" not in after_run and "pip install -v" not in after_run
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
