"""Replay a real model's answers (Claude 3.7 Sonnet on the Transformer paper) through the
pipeline: JSON between [CONTENT] tags with raw newlines, fenced code, YAML with prose.

The recording has no requirements, audit or repair answers (it predates the paper contract),
so the replays run the published method alone (--no-contract); the last test shows that
without that flag the run says the contract could not be extracted and goes on."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import yaml

from papercoder.models.scripted import ScriptedModel
from papercoder.pipeline import RunOptions, run_pipeline
from papercoder.store import Store


def test_recorded_run_writes_the_seven_file_repository(shared: Path, tmp_path: Path) -> None:
    rec = shared / "recordings" / "transformer-claude-3-7-sonnet"
    manifest = json.loads((rec / "manifest.json").read_text())
    model = ScriptedModel.from_recording(rec)
    paper = shared / "papers" / "transformer" / "paper.tex"
    opts = RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True, no_contract=True)
    m = run_pipeline(opts, model=model, store=Store(tmp_path / "s.db"))
    assert m.status == "done", m.error
    assert m.requirements == {"status": "off", "reason": "--no-contract"}
    repo = tmp_path / "out" / "repo"
    expected = manifest["task_list"]
    assert sorted(m.order) == sorted(expected)
    for f in expected:
        source = (repo / f).read_text()
        ast.parse(source)
        assert "```" not in source
    assert m.order.index("config.py") < m.order.index("model.py") < m.order.index("train.py")
    assert m.order[-1] == "main.py"
    cfg = yaml.safe_load((repo / "config.yaml").read_text())
    assert cfg["model"]["base"]["d_model"] == 512
    assert "torch>=1.7.0" in (repo / "requirements.txt").read_text()
    arts = tmp_path / "out" / "artifacts"
    assert "classDiagram" in (arts / "class_diagram.mmd").read_text()
    assert "sequenceDiagram" in (arts / "sequence_diagram.mmd").read_text()
    assert len(list((arts / "analysis").glob("*.md"))) == 7
    # 4 planning + 7 analyses + 7 files, each answered once
    assert m.totals.calls == 18
    stages = [h["meta"]["stage"] for h in model.history]
    assert stages.count("coding") == 7 and stages.count("analysis") == 7


def test_recorded_answers_parse_through_the_cli(shared: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from papercoder.cli import app

    rec = shared / "recordings" / "transformer-claude-3-7-sonnet"
    paper = shared / "papers" / "transformer" / "paper.tex"
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(paper), "-m", f"scripted:{rec}", "-o", str(out),
                                 "-q", "--no-contract"])
    assert r.exit_code == 0, r.output
    assert "7/7 files" in r.output
    r = CliRunner().invoke(app, ["cost", str(out)])
    assert r.exit_code == 0 and "coding" in r.output


def test_recording_without_a_contract_answer_goes_on_without_one(shared: Path,
                                                                  tmp_path: Path) -> None:
    rec = shared / "recordings" / "transformer-claude-3-7-sonnet"
    model = ScriptedModel.from_recording(rec)
    paper = shared / "papers" / "transformer" / "paper.tex"
    opts = RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True)
    m = run_pipeline(opts, model=model, store=Store(tmp_path / "s.db"))
    assert m.status == "done", m.error
    assert m.requirements["status"] == "failed"
    assert "no answer for 'requirements" in m.requirements["reason"]
    assert any("requirements could not be extracted" in w for w in m.warnings)
    assert not (tmp_path / "out" / "artifacts" / "requirements.json").exists()
    assert "audit" not in [h["meta"]["stage"] for h in model.history]
