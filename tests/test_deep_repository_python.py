"""Repository Python too deep to check (a file edited in OUT, or any repository): `verify`
reports it as a finding for that file, never a RecursionError from the parser or pyflakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from papercoder.cli import app
from tests.verify_helpers import good_repo, make_out

DEEP = {
    # parses, but pyflakes recurses once per operator
    "chain.py": "x = " + " + ".join(["1"] * 700) + "\n",
    # the parser itself runs out of stack
    "unary.py": "y = " + "-" * 5000 + "1\n",
}


@pytest.mark.parametrize("name", sorted(DEEP))
def test_verify_reports_a_too_deep_file_as_a_finding(tmp_path: Path, name: str) -> None:
    out = make_out(tmp_path, dict(good_repo(), **{name: DEEP[name]}))
    r = CliRunner().invoke(app, ["verify", str(out)])
    assert not isinstance(r.exception, RecursionError), r.exception
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    findings = json.loads((out / "run.json").read_text())["verify"]["static"]["findings"]
    mine = [f for f in findings if f["file"] == name]
    assert mine and mine[0]["kind"] == "syntax", findings
    assert "nest" in mine[0]["message"]


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))


@pytest.mark.parametrize("config", [BOMB, "a: &x [*x]\n"], ids=["billion-laughs", "self-alias"])
def test_verify_refuses_a_hostile_config_yaml_quickly(tmp_path: Path, config: str) -> None:
    """A config.yaml in OUT that is an alias bomb or a self-referencing alias is a finding of
    that file, not a hang or a RecursionError (it hung before: yaml.safe_load expanded it)."""
    out = make_out(tmp_path, dict(good_repo(), **{"config.yaml": config}))
    r = CliRunner().invoke(app, ["verify", str(out)])
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    findings = json.loads((out / "run.json").read_text())["verify"]["static"]["findings"]
    mine = [f for f in findings if f["file"] == "config.yaml"]
    assert mine and mine[0]["check"] == "config", findings
    assert "not valid YAML" in mine[0]["message"]
