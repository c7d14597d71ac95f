"""An honest result: files checked by kind, a README that points at what exists, a final line
and exit status that say how much was written, clean requirements, and a sane config."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from papercoder.cli import app
from papercoder.errors import FormatError
from papercoder.filecheck import check_file, kind_of, requirements
from tests import pipeline_helpers as ph

runner = CliRunner()

FILES = ["utils.py", "test_mse", "config/extra.yaml", "scripts/run.sh", "meta.json", "main.py"]
DEPS = {"utils.py": [], "test_mse": ["utils.py"], "config/extra.yaml": [],
        "scripts/run.sh": [], "meta.json": [], "main.py": ["utils.py"]}
GOOD = {
    "utils.py": ph.CODE["utils.py"],
    "test_mse": "#!/usr/bin/env python3\nfrom utils import seed_all\n\nseed_all(0)\n",
    "config/extra.yaml": "lr: 0.05\nsteps: 200\n",
    "scripts/run.sh": "#!/bin/bash\nset -e\nfor i in 1 2; do\n  python main.py\ndone\n",
    "meta.json": '{"paper": "momentum"}\n',
    "main.py": ph.CODE["main.py"],
}
BAD = {
    "test_mse": "def test_mse(:\n    assert mse([1], [1]) == 0\n",  # no shebang, looks Python
    "config/extra.yaml": "lr: [0.05\nsteps: 200\n",
    "scripts/run.sh": "#!/bin/bash\nif [ -f x ]; then\n  echo hi\n",
    "meta.json": '{"paper": "momentum",}\n',
    "main.py": "def main(:\n    pass\n",
}
LANG = {"utils.py": "python", "main.py": "python", "test_mse": "", "config/extra.yaml": "yaml",
        "scripts/run.sh": "bash", "meta.json": "json"}


def answer(file: str, body: str) -> str:
    return f"## Code: {file}\n```{LANG[file]}\n{body}```\n"


def fixture(tmp: Path, bad: set[str] = frozenset(), **overrides: object) -> tuple[Path, Path]:
    coding = {f"coding:{f}": answer(f, BAD[f] if f in bad else GOOD[f]) for f in FILES}
    analyses = {f"analysis:{f}": f"# Analysis of {f}\nDetails for {f}." for f in FILES}
    return ph.write_fixture(tmp, architecture=ph.architecture(FILES), logic=ph.logic(DEPS),
                            **coding, **analyses, **overrides)


def run(paper: Path, script: Path, out: Path, *extra: str) -> tuple[int, str]:
    r = runner.invoke(app, ["run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q",
                            *extra])
    assert "Traceback" not in r.output
    return r.exit_code, r.output


@pytest.mark.parametrize(("file", "code", "kind"), [
    ("a.py", "x = 1\n", "python"), ("run", "#!/usr/bin/env python3\nprint(1)\n", "python"),
    ("go", "#!/bin/sh\necho hi\n", "shell"), ("test_mse", "import math\n", "python"),
    ("Makefile", "all:\n\techo hi\n", "other"), ("NOTES", "just words\n", "other"),
    ("c.yml", "a: 1\n", "yaml"), ("d.json", "{}", "json"), ("e.bash", "true\n", "shell"),
])
def test_the_kind_of_a_file_comes_from_its_extension_or_content(file: str, code: str,
                                                                kind: str) -> None:
    assert kind_of(file, code) == kind
    assert check_file(code, file) == kind


@pytest.mark.parametrize("file", sorted(BAD))
def test_every_kind_of_broken_file_is_refused_with_the_reason(file: str) -> None:
    if file.endswith(".sh") and shutil.which("bash") is None:
        pytest.skip("bash is not installed, shell syntax is not checked")
    with pytest.raises(FormatError) as e:
        check_file(BAD[file], file)
    assert file in str(e.value) and file in e.value.user_message


def test_a_complete_run_checks_each_file_by_kind_and_exits_0(tmp_path: Path) -> None:
    paper, script = fixture(tmp_path)
    code, output = run(paper, script, tmp_path / "out")
    assert code == 0, output
    assert re.search(r"^done: 6/6 files written", output, re.M)
    readme = (tmp_path / "out" / "repo" / "README.md").read_text()
    assert "python main.py" in readme and "Incomplete" not in readme


def test_broken_files_are_failed_and_the_run_is_partial_with_exit_4(tmp_path: Path) -> None:
    bad = {"test_mse", "config/extra.yaml", "scripts/run.sh", "meta.json"}
    if shutil.which("bash") is None:
        bad.discard("scripts/run.sh")
    paper, script = fixture(tmp_path, bad=bad)
    out = tmp_path / "out"
    code, output = run(paper, script, out)
    assert code == 4, output
    assert re.search(rf"^partial: {6 - len(bad)}/6 files written", output, re.M), output
    m = json.loads((out / "run.json").read_text())
    assert m["status"] == "partial"
    for f in bad:
        assert m["files"][f]["status"] == "failed" and f in m["files"][f]["error"]
        assert not (out / "repo" / f).exists()
        assert f"not written {f}" in output
    assert "does not parse" in m["files"]["test_mse"]["error"]
    assert "bash -n" in m["files"].get("scripts/run.sh", {}).get("error", "bash -n")
    # each broken file was sent back once with the reason before it failed
    log = (out / "papercoder.log").read_text()
    assert "test_mse" in log


def test_readme_points_only_at_an_entry_point_that_exists(tmp_path: Path) -> None:
    paper, script = fixture(tmp_path, bad={"main.py"})
    out = tmp_path / "out"
    code, output = run(paper, script, out)
    assert code == 4, output
    readme = " ".join((out / "repo" / "README.md").read_text().split())
    assert "python main.py" not in readme
    assert "`main.py` was not generated" in readme
    assert "1 of 6 planned files could not be generated: `main.py`" in readme


def test_a_run_that_wrote_nothing_is_failed_red_and_exits_1(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    coding = {f"coding:{f}": "Sorry, I cannot write code." for f in ph.FILES}
    paper, script = ph.write_fixture(tmp_path, **coding)
    out = tmp_path / "out"
    screen = io.StringIO()
    monkeypatch.delenv("NO_COLOR", raising=False)  # conftest turns colour off elsewhere
    monkeypatch.setattr("papercoder.cli.run.console",
                        Console(file=screen, force_terminal=True, width=200,
                                color_system="standard"))
    r = runner.invoke(app, ["run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q"])
    assert r.exit_code == 1, r.output
    assert "\x1b[1;31mfailed:\x1b[0m 0/4 files written" in screen.getvalue()
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


def test_requirements_never_hold_pip_the_standard_library_or_python() -> None:
    ok, bad, dropped = requirements(["numpy>=1.24", "pip", "setuptools>=60", "wheel", "os",
                                     "argparse", "python>=3.8", "Python", "python-dateutil",
                                     "torch==2.1", "json", "typing", "No packages"])
    assert ok == ["numpy>=1.24", "python-dateutil", "torch==2.1"]
    assert set(dropped) == {"pip", "setuptools>=60", "wheel", "os", "argparse", "python>=3.8",
                            "Python", "json", "typing"}
    assert bad == []


def test_a_config_of_plan_fragments_is_reasked_then_flagged(tmp_path: Path) -> None:
    junk = "```yaml\ntask_list: [1, 2]\n```"
    paper, script = ph.write_fixture(tmp_path, config=[junk, ph.CONFIG])
    out = tmp_path / "out"
    code, output = run(paper, script, out)
    assert code == 0, output
    assert "momentum" in (out / "repo" / "config.yaml").read_text()  # the re-ask fixed it
    (tmp_path / "b").mkdir()
    paper, script = ph.write_fixture(tmp_path / "b", config=junk)
    code, output = run(paper, script, tmp_path / "b" / "out", "--no-cache")
    m = json.loads((tmp_path / "b" / "out" / "run.json").read_text())
    assert any("not a usable settings file" in w or "settings as JSON" in w
               for w in m["warnings"]), m["warnings"]
