"""JSON nested deeper than Python's recursion limit, wherever papercoder reads JSON it did not
write itself (files already in OUT, user inputs, model-written files): a clear refusal or a
quiet "not usable", never a RecursionError traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from papercoder.batch.summary import read_json
from papercoder.errors import ConfigError, FormatError, PaperError
from papercoder.evaluate.rubric import load_rubric
from papercoder.evaluate.target import read_verify
from papercoder.filecheck import check_file
from papercoder.outdir.lock import holder
from papercoder.paper.s2orc import loads as s2orc_loads
from papercoder.verify.debug import plan_excerpt
from papercoder.verify.smoke import smoke_commands

DEEP = "[" * 200_000 + "]" * 200_000
DEEP_LOCK = "[" * 3000  # the lock file is read 4096 bytes at a time


def test_deep_json_is_proved_to_recurse() -> None:
    with pytest.raises(RecursionError):  # the hazard these tests guard against
        json.loads(DEEP)


def test_files_in_out(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(DEEP)
    (tmp_path / ".papercoder.lock").write_text(DEEP_LOCK)
    assert read_verify(tmp_path) is None
    assert read_json(tmp_path / "run.json") is None
    assert holder(tmp_path) is None
    assert plan_excerpt(DEEP, ["main.py"]) == ""
    assert smoke_commands(DEEP, {"main.py": "print(1)\n"}) is not None


def test_user_inputs(tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.json"
    rubric.write_text(DEEP)
    with pytest.raises(ConfigError, match="not readable JSON"):
        load_rubric(rubric)
    with pytest.raises(PaperError, match="not valid JSON"):
        s2orc_loads(DEEP, source="paper.json")


def test_model_written_json_file() -> None:
    with pytest.raises(FormatError, match="JSON that does not load"):
        check_file(DEEP, "data/config.json")


def test_cli_inputs_are_one_sentence(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.cli_proc import LONG, env

    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    answers = tmp_path / "answers.json"
    answers.write_text('["hi"]')
    for args in (["ingest", str(deep)], ["prompt", "hi", "-m", f"scripted:{deep}"],
                 ["prompt", "hi", "-m", f"scripted:{answers}", "--schema", str(deep)]):
        r = subprocess.run([sys.executable, "-m", "papercoder", *args], env=env(),
                           capture_output=True, text=True, timeout=LONG, cwd=tmp_path)
        assert r.returncode != 0, args
        assert "Traceback" not in r.stderr + r.stdout, (args, r.stderr[-800:])
        assert "JSON" in r.stderr or "parsed" in r.stderr, (args, r.stderr[-800:])


DEEP_YAML = "[" * 100_000 + "]" * 100_000


def test_deep_yaml_is_refused_or_skipped(tmp_path: Path, monkeypatch) -> None:
    import yaml

    from papercoder.config import load_user_config
    from papercoder.pipeline.configcheck import config_values
    from papercoder.verify.static import check_config

    with pytest.raises(RecursionError):  # the hazard
        yaml.safe_load(DEEP_YAML)
    with pytest.raises(FormatError, match="YAML that does not load"):
        check_file(DEEP_YAML, "configs/base.yaml")
    assert config_values("model:\n  layers: " + DEEP_YAML + "\n") is not None
    found = check_config({"config.yaml": DEEP_YAML}, {})
    assert [f["kind"] for f in found] == ["config"]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(DEEP_YAML)
    monkeypatch.setenv("PAPERCODER_CONFIG", str(cfg))
    with pytest.raises(ConfigError, match="could not be read"):
        load_user_config()
