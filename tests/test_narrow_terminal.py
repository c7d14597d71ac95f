"""`logs`, `runs` and `cost` are readable in an 80-column terminal."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from papercoder.cli import app
from papercoder.console import console
from tests import pipeline_helpers as ph

runner = CliRunner()


@pytest.fixture
def narrow(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(console, "width", 80)
    return 80


def cli(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.output


def check_fits(text: str, width: int) -> None:
    for line in text.splitlines():
        assert len(line) <= width, f"{len(line)} columns: {line!r}"
    # no header reads downwards: no run of 3+ lines holding one short word in one column
    lines = text.splitlines()
    for i in range(len(lines) - 2):
        trio = [ln.strip() for ln in lines[i:i + 3]]
        assert not all(0 < len(t) <= 2 and t.isalpha() for t in trio), lines[i:i + 3]


def test_logs_runs_and_cost_fit_80_columns(tmp_path: Path, narrow: int) -> None:
    long_dir = tmp_path / ("a-very-long-folder-name-" * 4) / "out"
    paper, script = ph.write_fixture(tmp_path)
    cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(long_dir), "-q")
    other = tmp_path / ("another-script-with-a-long-name-" * 2 + ".json")
    other.write_text(script.read_text())
    cli("run", str(paper), "-m", f"scripted:{other}", "-o", str(tmp_path / "o2"), "-q")
    logs = cli("logs")
    check_fits(logs, narrow)
    n = len(re.findall(r"^#\d+ ", logs, re.M))
    # 4 planning + 4 analysis + 4 coding exchanges, the contract's extraction and three
    # audits (model.py, data.py, main.py), and verify's static repair after coding
    assert n == 12 + 4 + len(re.findall(r"^#\d+ verify", logs, re.M))
    assert len(logs.splitlines()) <= 2 * n + 3  # compact: two lines per exchange
    assert "coding main.py · ok" in logs
    full = cli("logs", "--full")
    assert len(full.splitlines()) > len(logs.splitlines())
    runs = cli("runs")
    check_fits(runs, narrow)
    assert runs.count("done") == 2 and "scripted:another-script" in runs
    assert "a-very-long-folder-name-/out\n" in runs  # the end of the path survives
    cost = cli("cost", str(long_dir))
    check_fits(cost, narrow)
    for header in ("stage", "calls", "hits", "in", "cached", "written", "out"):
        assert re.search(rf"\b{header}\b", cost.splitlines()[2]), cost
    assert "total" in cost


def test_logs_preview_is_one_line_of_literal_text(tmp_path: Path, narrow: int) -> None:
    script = tmp_path / "answers.json"
    script.write_text('["[bold]not markup[/bold]\\nsecond line " , "x"]')
    cli("prompt", "hi", "-m", f"scripted:{script}")
    logs = cli("logs")
    check_fits(logs, narrow)
    assert "[bold]not markup[/bold] second line" in logs
