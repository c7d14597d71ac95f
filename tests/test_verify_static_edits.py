"""Static checks, SEARCH/REPLACE edits, the metric and the command line of verify."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from papercoder.edits import apply_to, parse_edits
from papercoder.errors import FormatError, UnsafePathError
from papercoder.llm import Caller
from papercoder.models.scripted import ScriptedModel
from papercoder.pipeline.schemas import LogicDesign
from papercoder.store import Store
from papercoder.verify.debug import ask_repair, condense, signature
from papercoder.verify.metric import executability
from papercoder.verify.smoke import Failure
from papercoder.verify.static import run_static
from tests.verify_helpers import MAIN, edit, good_repo, make_out


def kinds(findings: list[dict]) -> list[str]:
    return [f["kind"] for f in findings]


# -- static checks ---------------------------------------------------------------------------
def test_a_clean_repository_has_no_findings() -> None:
    assert run_static(good_repo(), ["python main.py --smoke"]) == []


def test_source_that_exhausts_the_parser_is_a_finding_not_a_crash() -> None:
    # ast.parse raises MemoryError on a long chain of unary minuses: the bounded parse says
    # "does not parse" instead, in the static checks and in the stub guard of evaluate.
    from papercoder.evaluate.files import RepoFile
    from papercoder.evaluate.guards import analyse

    hostile = "x = " + "-" * 100_000 + "1\n"
    files = good_repo()
    files["deep.py"] = hostile
    syntax = [f for f in run_static(files, ["python main.py --smoke"]) if f["kind"] == "syntax"]
    assert [f["file"] for f in syntax] == ["deep.py"]
    assert "too deeply nested" in syntax[0]["message"]
    facts = analyse([RepoFile("deep.py", "source", hostile, len(hostile))])
    assert facts.parse_errors == ["deep.py:?: the source is too deeply nested to parse"]


def test_static_checks_find_each_kind_of_problem() -> None:
    files = good_repo()
    files["broken.py"] = "def f(:\n"
    files["main.py"] = MAIN.replace("from model import Model", "from model import Model, Trainer"
                                    ).replace("    random.seed(args.seed)\n",
                                              "    random.seed(args.seed)\n    print(undefined_x)\n"
                                              "    print(cfg['optim']['lr'])\n")
    files["extra.py"] = ("import numpy_not_there\nimport sklearn\nimport os, json\n"
                         "try:\n    import optional_thing\nexcept ImportError:\n"
                         "    optional_thing = None\nfrom model import Model\n")
    del files["reproduce.sh"]
    found = run_static(files, ["python train.py --smoke"])
    by_kind = {k: [f for f in found if f["kind"] == k] for k in set(kinds(found))}
    assert by_kind["syntax"][0]["file"] == "broken.py"
    assert any("undefined_x" in f["message"] for f in by_kind["pyflakes"])
    assert any("Trainer" in f["message"] for f in by_kind["import"])
    reqs = " ".join(f["message"] for f in by_kind["requirement"])
    assert "numpy_not_there" in reqs and "scikit-learn" in reqs  # the table maps sklearn
    assert "optional_thing" not in reqs and " os" not in reqs and "model" not in reqs
    assert any("optim.lr" in f["message"] for f in by_kind["config"])
    rep = " ".join(f["message"] for f in by_kind["reproduce"])
    assert "is missing" in rep and "train.py" in rep


def test_requirements_are_matched_through_the_table_and_metadata() -> None:
    files = {"a.py": "import yaml\nimport PIL.Image\nimport pydantic\n",
             "requirements.txt": "PyYAML==6.0\npillow\npydantic>=2\n", "reproduce.sh": "--smoke"}
    assert [f for f in run_static(files) if f["kind"] == "requirement"] == []
    files["requirements.txt"] = "pillow\nnot a valid ! spec\n"
    msgs = [f["message"] for f in run_static(files) if f["kind"] == "requirement"]
    assert any("pyyaml" in m for m in msgs) and any("pydantic" in m for m in msgs)
    assert any("not a valid pip requirement" in m for m in msgs)


def test_config_reads_with_defaults_or_existing_keys_are_not_flagged() -> None:
    files = good_repo()
    files["main.py"] = MAIN.replace(
        "    random.seed(args.seed)\n",
        "    random.seed(args.seed)\n    lr = cfg.get('optim', {}).get('lr', 0.1)\n"
        "    section = cfg['model']\n    w2 = section['width']\n    other = {'a': 1}['a']\n")
    assert run_static(files) == []


def test_the_recording_logic_design_still_validates_and_smoke_commands_are_optional() -> None:
    base = {"required_packages": [], "logic_analysis": [{"file": "a.py", "notes": ""}]}
    assert LogicDesign.model_validate(base).smoke_commands == []
    d = LogicDesign.model_validate({**base, "smoke_commands": [
        "python a.py --smoke", {"command": "python a.py eval --smoke",
                                "outputs": "results/metrics.json"}]})
    assert d.smoke_commands[0].command == "python a.py --smoke"
    assert d.smoke_commands[1].outputs == ["results/metrics.json"]


# -- edits -----------------------------------------------------------------------------------
FILES = {"a.py": "def f():\n    x = 1\n    return x\n\n\ndef g():\n    x = 1\n    return x\n"}


def test_an_exact_edit_applies() -> None:
    new = apply_to(FILES, parse_edits(edit("a.py", "def f():\n    x = 1\n",
                                           "def f():\n    x = 2\n")))
    assert new["a.py"].startswith("def f():\n    x = 2\n") and new["a.py"].count("x = 1") == 1


def test_a_whitespace_tolerant_edit_reindents_the_replacement() -> None:
    answer = edit("a.py", "def g():\n  x = 1   \n  return x\n", "def g():\n  x = 3\n  return x\n")
    new = apply_to(FILES, parse_edits(answer))
    assert new["a.py"].endswith("def g():\n    x = 3\n    return x\n")


def test_search_text_that_does_not_match_or_matches_twice_is_refused() -> None:
    with pytest.raises(FormatError, match="does not match a.py"):
        apply_to(FILES, parse_edits(edit("a.py", "    y = 5\n", "    y = 6\n")))
    with pytest.raises(FormatError, match="occurs 2 times"):
        apply_to(FILES, parse_edits(edit("a.py", "    x = 1\n    return x\n", "    pass\n")))
    with pytest.raises(FormatError, match="does not exist"):
        apply_to(FILES, parse_edits(edit("b.py", "x\n", "y\n")))
    with pytest.raises(FormatError, match="already exists"):
        apply_to(FILES, parse_edits(edit("a.py", "", "new\n")))


def test_edits_create_files_and_refuse_unsafe_paths() -> None:
    new = apply_to(FILES, parse_edits(edit("pkg/new.py", "", "X = 1\n")))
    assert new == {"pkg/new.py": "X = 1\n"}
    for bad in ("../escape.py", "/etc/passwd", ".git/config"):
        with pytest.raises(FormatError, match="not allowed"):
            parse_edits(edit(bad, "", "x\n"))
    with pytest.raises(FormatError, match="no SEARCH/REPLACE"):
        parse_edits("I think you should change line 3.")


def test_a_bad_edit_goes_back_to_the_model_with_the_reason(tmp_path: Path) -> None:
    code = {"main.py": MAIN, "a.py": FILES["a.py"]}
    bad = edit("main.py", "    loss = nothing_like_this()\n", "    pass\n")
    twice = edit("a.py", "    x = 1\n    return x\n", "    return 1\n")
    good = edit("main.py", "import json\n", "import json\nimport sys\n")
    model = ScriptedModel([bad, twice, good])
    caller = Caller(model, Store(tmp_path / "s.db"), None)
    rep = asyncio.run(ask_repair(caller, [{"role": "user", "content": "fix"}], code,
                                 label="round 01"))
    assert "import sys" in rep.new["main.py"]
    assert len(model.history) == 3
    assert "does not match main.py" in model.history[1]["messages"][-1]["content"]
    assert "occurs 2 times" in model.history[2]["messages"][-1]["content"]


def test_edits_that_break_the_syntax_are_refused(tmp_path: Path) -> None:
    model = ScriptedModel([edit("main.py", "import json\n", "import json(\n")] * 3)
    caller = Caller(model, Store(tmp_path / "s.db"), None)
    from papercoder.errors import ModelOutputError

    with pytest.raises(ModelOutputError):
        asyncio.run(ask_repair(caller, [{"role": "user", "content": "fix"}],
                               {"main.py": MAIN}, label="round 01", repairs=2))
    assert "does not parse" in model.history[1]["messages"][-1]["content"]


def test_write_paths_stay_inside(tmp_path: Path) -> None:
    from papercoder.outdir.paths import write_inside

    with pytest.raises(UnsafePathError):
        write_inside(tmp_path, "../x.py", "x")


# -- condensing, signatures, the metric --------------------------------------------------------
def test_the_traceback_comes_first_and_signatures_ignore_numbers() -> None:
    out = "epoch 1 loss 0.5 took 1.25s\n" * 400 + (
        'Traceback (most recent call last):\n  File "model.py", line 12, in f\n'
        "ValueError: shapes (3,) and (4,) not aligned\n")
    text = condense(out)
    assert text.startswith("Traceback") and len(text) <= 8200
    assert "<time>" in text
    a = signature(Failure("python main.py", out, "exit", 1))
    b = signature(Failure("python main.py", out.replace("(3,)", "(5,)"), "exit", 1))
    assert a == b and a.endswith("@ model.py")


def test_the_metric_counts_changed_lines_per_hunk() -> None:
    before = {"a.py": "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n"}
    after = {"a.py": "1\nTWO\n3\n4\n5\nsix\nseven\nextra\n8\n9\n10\n", "new.py": "x\ny\n"}
    m = executability(before, after, rounds=2, passed=True)
    # hunk 1: one line rewritten; hunk 2: 2 rewritten + 1 added -> 3; new file: 2
    assert m == {"lines_changed": 6, "total_lines": 10, "percent": 60.0, "rounds": 2,
                 "passed": True}


# -- the command line ----------------------------------------------------------------------------
def test_verify_cli_reports_whether_the_repository_ran(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from papercoder.cli import app

    out = make_out(tmp_path, good_repo())
    r = CliRunner().invoke(app, ["verify", str(out), "--execute", "--no-install",
                                 "--timeout", "120"])
    assert r.exit_code == 0, r.output
    assert "the repository RAN" in r.output
    bad = dict(good_repo(), **{"main.py": MAIN.replace("model.step(", "modle.step(")})
    out2 = make_out(tmp_path / "b", bad)
    r = CliRunner().invoke(app, ["verify", str(out2), "--execute", "--no-install",
                                 "--debug-rounds", "0"])
    assert r.exit_code == 1
    assert "did NOT run" in r.output
    saved = json.loads((out2 / "run.json").read_text())["verify"]
    assert saved["smoke"]["passed"] is False
    r = CliRunner().invoke(app, ["verify", str(tmp_path / "nothing")])
    assert r.exit_code != 0 and "Traceback" not in r.output


def test_run_with_execute_reports_that_the_repository_did_not_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.pipeline_helpers import write_fixture

    monkeypatch.setenv("PIP_NO_INDEX", "1")  # an install, if any, never reaches the network
    from typer.testing import CliRunner

    from papercoder.cli import app

    paper, script = write_fixture(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(paper), "-m", f"scripted:{script}", "-o", str(out),
                                 "-q", "--execute", "--debug-rounds", "0"])
    # the tiny scripted repository has no smoke mode: main.py exits 0 and writes nothing
    assert r.exit_code == 1, r.output
    assert "4/4 files" in r.output and "did NOT run" in r.output
    v = json.loads((out / "run.json").read_text())["verify"]
    assert any(f["kind"] == "reproduce" for f in v["static"]["findings"])
    assert v["smoke"]["failure"]["missing"] == ["results/metrics.json"]
    assert v["isolation"]["sandbox"] in ("bwrap", "none")
    r = CliRunner().invoke(app, ["run", str(paper), "-m", f"scripted:{script}", "-o", str(out),
                                 "-q"])
    assert r.exit_code == 0 and "smoke run not requested" in r.output


def test_the_planning_prompts_ask_for_reproduce_sh_and_a_smoke_mode() -> None:
    from papercoder.prompts import render

    arch = render("architecture", plan="P")
    assert "reproduce.sh" in arch and "--smoke" in arch and "results/metrics.json" in arch
    logic = render("logic", architecture="A", files=["main.py"])
    assert '"smoke_commands"' in logic and '"outputs"' in logic


def test_verify_output_shows_bidi_overrides_and_escapes_inert(tmp_path: Path) -> None:
    """verify had its own sanitiser, which let bidi overrides through to the terminal."""
    from typer.testing import CliRunner

    from papercoder.cli import app

    smoke = [{"command": "python main.py --smoke # \u202eevil\u2066 \x1b]0;t\x07", "outputs": []}]
    out = make_out(tmp_path, good_repo(), smoke=smoke)
    r = CliRunner().invoke(app, ["verify", str(out), "--execute", "--no-install",
                                 "--debug-rounds", "0"])
    assert "Traceback" not in r.output and "\\u202eevil\\u2066" in r.output
    assert not any(c in r.output for c in "\u202e\u2066\x1b\x07")
