"""The debug loop on small repositories with planted bugs: real sandboxed subprocesses, the
scripted model for the edits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from papercoder.models.scripted import ScriptedModel
from papercoder.outdir.record import VerifyRecord
from papercoder.store import Store
from papercoder.verify import Outcome, verify_output
from tests.verify_helpers import (
    CONFIG,
    MAIN,
    MODEL,
    build_wheel,
    edit,
    edit_line,
    good_repo,
    make_out,
    options,
    run,
    run_result,
)


def planted(**changes: str) -> dict[str, str]:
    files = good_repo()
    files.update(changes)
    return files


def _check_repaired(out: Path, v: dict, rounds: int) -> None:
    assert v["smoke"]["passed"], v["smoke"]
    assert v["executability"]["passed"] is True
    assert v["executability"]["rounds"] == rounds
    assert len(v["rounds"]) == rounds and v["rounds"][-1]["passed"]
    assert [c["seed"] for c in v["smoke"]["commands"]] == [1, 2]
    for r in v["rounds"]:
        for key in ("diff", "md", "log"):
            assert (out / r[key]).is_file()
    saved = json.loads((out / "run.json").read_text())["verify"]
    assert saved["executability"] == v["executability"]
    assert 0 < v["executability"]["lines_changed"] <= v["executability"]["total_lines"]


def test_a_good_repository_passes_on_two_seeds_without_a_model(tmp_path: Path) -> None:
    out = make_out(tmp_path, good_repo())
    result = run_result(out, None, Store(tmp_path / "s.db"))
    assert result.outcome is Outcome.RAN and result.ran
    v = result.model_dump(mode="json")
    assert v["smoke"]["passed"] and v["rounds"] == [] and "stopped" not in v["smoke"]
    assert v["executability"]["percent"] == 0.0
    seeds = [json.loads((out / c["work"]).read_text())["seed"] if False else c["seed"]
             for c in [dict(x, work="") for x in v["smoke"]["commands"]]]
    assert seeds == [1, 2]
    metrics = [json.loads((out / w / "results/metrics.json").read_text())
               for w in v["smoke"]["work_copies"]]
    assert [m["seed"] for m in metrics] == [1, 2]


def test_name_error_is_repaired_in_one_round(tmp_path: Path) -> None:
    bad = MAIN.replace("    loss = model.step(", "    loss = modle.step(")
    files = planted(**{"main.py": bad})
    out = make_out(tmp_path, files)
    model = ScriptedModel({"verify": edit_line(files, "main.py", "modle.step(", "model.step(")})
    v = run(out, model, Store(tmp_path / "s.db"))
    _check_repaired(out, v, 1)
    assert "NameError" in v["rounds"][0]["signature"]
    prompt = model.history[0]["messages"][-1]["content"]
    assert prompt.index("Traceback") < prompt.index("main.py\n```")  # traceback, then files
    assert "model.py" in prompt  # a direct dependency of the implicated file
    assert "Static checks also report" in prompt and "undefined name 'modle'" in prompt
    assert model.history[0]["meta"]["stage"] == "verify"
    assert "modle" not in (out / "repo" / "main.py").read_text()


def test_missing_config_key_is_added_to_config_yaml(tmp_path: Path) -> None:
    bad = MAIN.replace('width = cfg["model"]["width"]',
                       'width = cfg["model"]["width"] + cfg["train"]["extra"]')
    out = make_out(tmp_path, planted(**{"main.py": bad}))
    model = ScriptedModel({"verify": edit("config.yaml", CONFIG, CONFIG + "train:\n  extra: 0\n")})
    v = run(out, model, Store(tmp_path / "s.db"))
    _check_repaired(out, v, 1)
    assert "KeyError" in v["rounds"][0]["signature"]
    # the static check saw it before anything ran
    assert any(f["kind"] == "config" and "train" in f["message"] for f in v["static"]["findings"])


def test_wrong_attribute_of_the_config_class_is_repaired(tmp_path: Path) -> None:
    cfg_py = "class Config:\n    def __init__(self) -> None:\n        self.width = 4\n"
    main = MAIN.replace("from model import Model\n", "from config import Config\nfrom model "
                        "import Model\n").replace('width = cfg["model"]["width"]',
                                                  "config = Config()\n    width = "
                                                  "config.hidden_width")
    files = planted(**{"main.py": main, "config.py": cfg_py})
    out = make_out(tmp_path, files)
    model = ScriptedModel({"verify": edit_line(files, "main.py", "config.hidden_width",
                                               "config.width")})
    v = run(out, model, Store(tmp_path / "s.db"))
    _check_repaired(out, v, 1)
    assert "AttributeError" in v["rounds"][0]["signature"]
    assert any(f["kind"] == "config" and "hidden_width" in f["message"]
               for f in v["static"]["findings"])


def test_shape_error_is_repaired(tmp_path: Path) -> None:
    bad = MODEL.replace("[0.5] * width", "[0.5] * (width + 1)")
    files = planted(**{"model.py": bad})
    out = make_out(tmp_path, files)
    model = ScriptedModel({"verify": edit_line(files, "model.py", "[0.5] * (width + 1)",
                                               "[0.5] * width")})
    v = run(out, model, Store(tmp_path / "s.db"))
    _check_repaired(out, v, 1)
    assert "ValueError: shapes" in v["rounds"][0]["signature"]
    assert v["rounds"][0]["signature"].endswith("@ model.py")


def test_exit_zero_without_outputs_is_a_failure_then_repaired(tmp_path: Path) -> None:
    bad = MAIN.replace('    with open("results/metrics.json", "w") as f:\n'
                       '        json.dump({"loss": loss, "seed": args.seed}, f)\n',
                       '    print("help: use --train")\n')
    out = make_out(tmp_path, planted(**{"main.py": bad}))
    model = ScriptedModel({"verify": edit(
        "main.py", '    print("help: use --train")\n',
        '    with open("results/metrics.json", "w") as f:\n'
        '        json.dump({"loss": loss, "seed": args.seed}, f)\n')})
    v = run(out, model, Store(tmp_path / "s.db"))
    _check_repaired(out, v, 1)
    assert v["rounds"][0]["signature"].startswith("outputs:")
    assert "results/metrics.json" in model.history[0]["messages"][-1]["content"]


def test_without_a_model_exit_zero_without_outputs_fails(tmp_path: Path) -> None:
    bad = MAIN.replace('json.dump({"loss": loss, "seed": args.seed}, f)', "pass")
    out = make_out(tmp_path, planted(**{"main.py": bad}))
    result = run_result(out, None, Store(tmp_path / "s.db"))
    assert result.outcome is Outcome.NO_MODEL and not result.ran
    v = result.model_dump(mode="json")
    assert not v["smoke"]["passed"] and v["smoke"]["stopped"] == "no model to repair with"
    cmd = v["smoke"]["commands"][0]
    assert cmd["exit"] == 0 and cmd["outputs_ok"] is False
    assert v["smoke"]["failure"]["missing"] == ["results/metrics.json"]


def test_a_failure_on_the_second_seed_only_fails(tmp_path: Path) -> None:
    bad = MAIN.replace("    model = Model(width)\n", "    model = Model(width)\n"
                       "    if args.seed == 2:\n        width += 1\n")
    out = make_out(tmp_path, planted(**{"main.py": bad}))
    v = run(out, None, Store(tmp_path / "s.db"))
    assert not v["smoke"]["passed"]
    assert [c["seed"] for c in v["smoke"]["commands"]] == [1, 2]
    assert v["smoke"]["failure"]["seed"] == 2


@pytest.mark.slow
def test_missing_requirement_is_added_and_installed_into_the_venv(tmp_path: Path) -> None:
    """Creates the real venv and installs a local wheel with pip (no index)."""
    wheels = tmp_path / "wheels"
    build_wheel(wheels, "tinypkg", body="VALUE = 3\n")
    main = MAIN.replace("import yaml\n", "import tinypkg\nimport yaml\n").replace(
        '"seed": args.seed}', '"seed": args.seed, "v": tinypkg.VALUE}')
    out = make_out(tmp_path, planted(**{"main.py": main}))
    model = ScriptedModel({"verify": edit("requirements.txt", "pyyaml>=5\n",
                                          "pyyaml>=5\ntinypkg==1.0\n")})
    v = run(out, model, Store(tmp_path / "s.db"), install=True, python=None,
            pip_args=["--no-index", "--find-links", str(wheels)])
    _check_repaired(out, v, 1)
    assert v["environment"]["kind"] == "venv"
    assert v["environment"]["installed"] == ["tinypkg==1.0"]
    assert any(f["kind"] == "requirement" and "tinypkg" in f["message"]
               for f in v["static"]["findings"])
    log = (out / "verify" / "install.log").read_text()
    assert "tinypkg" in log and "-c" in log  # constrained install, logged
    constraints = (out / "verify" / "constraints.txt").read_text()
    assert "pyyaml==" in constraints.lower()
    # the user's interpreter was not touched
    assert not any(p.name.startswith("tinypkg") for p in
                   Path(__import__("yaml").__file__).parents[1].iterdir())


@pytest.mark.slow
def test_a_package_that_does_not_exist_is_a_finding_for_the_loop(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    files = planted(**{"requirements.txt": "pyyaml>=5\nno-such-package-xyz==9.9\n"})
    out = make_out(tmp_path, files)
    model = ScriptedModel({"verify": edit("requirements.txt", "no-such-package-xyz==9.9\n", "")})
    v = run(out, model, Store(tmp_path / "s.db"), install=True, python=None,
            pip_args=["--no-index", "--find-links", str(wheels)])
    _check_repaired(out, v, 1)
    assert v["rounds"][0]["signature"].startswith("install:")
    assert "no-such-package-xyz" in model.history[0]["messages"][-1]["content"]


def test_the_loop_stops_when_the_same_error_comes_back(tmp_path: Path) -> None:
    bad = MAIN.replace("    loss = model.step(", "    loss = modle.step(")
    out = make_out(tmp_path, planted(**{"main.py": bad}))
    # an edit that changes nothing that matters
    model = ScriptedModel({"verify": edit("main.py", "import random\n",
                                          "import random  # seeded below\n")})
    result = run_result(out, model, Store(tmp_path / "s.db"), debug_rounds=4)
    assert result.outcome is Outcome.REPEATED_FAILURE
    v = result.model_dump(mode="json")
    assert not v["smoke"]["passed"]
    assert len(v["rounds"]) == 1 and len(model.history) == 1
    assert v["smoke"]["stopped"] == "round 1 did not change the error"
    assert v["executability"]["passed"] is False


def test_the_rounds_are_bounded(tmp_path: Path) -> None:
    bad = MAIN.replace("    loss = model.step(", "    loss = modle.step(")
    out = make_out(tmp_path, planted(**{"main.py": bad}))
    model = ScriptedModel({"verify": "no edits here"})
    result = run_result(out, model, Store(tmp_path / "s.db"), debug_rounds=0)
    assert result.outcome is Outcome.OUT_OF_ROUNDS
    v = result.model_dump(mode="json")
    assert v["rounds"] == [] and model.history == []
    assert v["smoke"]["stopped"] == "--debug-rounds 0 allows no repair"
    from papercoder.cli.verify import summary

    # no "(the 0 debug rounds are used up) · 1 debug round(s)"
    line, ok = summary(VerifyRecord.model_validate(v))
    assert not ok and "(--debug-rounds 0 allows no repair) · 0 debug round(s) so far" in line


def test_resume_in_the_middle_of_the_loop_pays_nothing_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad_main = MAIN.replace("    loss = model.step(", "    loss = modle.step(")
    bad_model = MODEL.replace("[0.5] * width", "[0.5] * (width + 1)")
    files = planted(**{"main.py": bad_main, "model.py": bad_model})
    out = make_out(tmp_path, files)
    script = {"verify:round 01": edit_line(files, "main.py", "modle.step(", "model.step("),
              "verify:round 02": edit_line(files, "model.py", "(width + 1)", "width")}
    store = Store(tmp_path / "s.db")

    import papercoder.verify as verify_mod

    real_write = verify_mod.write_files
    calls = {"n": 0}

    def interrupted(root: Path, new: dict) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # the user stops the run after round 1 was answered
        real_write(root, new)

    monkeypatch.setattr(verify_mod, "write_files", interrupted)
    first = ScriptedModel(script)
    with pytest.raises(KeyboardInterrupt):
        run(out, first, store)
    assert len(first.history) == 1
    monkeypatch.setattr(verify_mod, "write_files", real_write)

    second = ScriptedModel(script)
    v = run(out, second, store)
    assert v["smoke"]["passed"] and len(v["rounds"]) == 2
    # round 1 came from the cache; only round 2 was asked
    assert [h["meta"]["file"] for h in second.history] == ["round 02"]
    third = ScriptedModel(script)
    v3 = run(out, third, store)
    assert third.history == [] and v3["smoke"]["passed"]
    assert v3["executability"]["rounds"] == 2  # the rounds of earlier sessions count


def test_static_repair_runs_when_there_are_findings(tmp_path: Path) -> None:
    files = planted()
    del files["reproduce.sh"]
    out = make_out(tmp_path, files)
    model = ScriptedModel({"verify:static": edit("reproduce.sh", "", "#!/bin/bash\n"
                                                 "python main.py \"$@\"\n")})
    v = asyncio.run(verify_output(out, model=model, store=Store(tmp_path / "s.db"),
                                  options=options(execute=False, static_repair=True)))
    assert v.static is not None and v.smoke is not None
    assert [f["kind"] for f in v.static.findings] == ["reproduce"]
    assert v.static.remaining == [] and v.static.repair and v.static.repair.applied
    assert (out / "repo" / "reproduce.sh").is_file()
    assert (out / "artifacts" / "debug" / "static.diff").read_text().startswith("--- /dev/null")
    assert v.executability is None and v.smoke.skipped and v.outcome is Outcome.STATIC_ONLY
    saved = json.loads((out / "run.json").read_text())["verify"]
    assert saved["executability"] is None and "outcome" not in saved


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_verify_execute_runs_the_same_with_a_relative_or_absolute_out(
        tmp_path: Path, how: str) -> None:
    """`papercoder verify out/example --execute` from the folder above OUT (as `make run`
    does) runs the code, exactly like the absolute path; the failure line, if any, names a
    real exit status, never the placeholder "[exit status N]"."""
    import subprocess
    import sys

    from tests.cli_proc import env

    out = make_out(tmp_path, good_repo())
    arg = "out" if how == "relative" else str(out)
    cwd = tmp_path if how == "relative" else tmp_path / "out" / "repo"
    r = subprocess.run([sys.executable, "-m", "papercoder", "verify", arg, "--execute",
                        "--no-install", "--timeout", "120"], cwd=cwd, env=env(),
                       capture_output=True, text=True, timeout=600)
    text = r.stdout + r.stderr
    assert r.returncode == 0, text
    assert "the repository RAN" in text and "exit status N" not in text
    v = json.loads((out / "run.json").read_text(encoding="utf-8"))["verify"]
    assert v["smoke"]["passed"] and not v["rounds"]


def test_a_failed_smoke_run_is_said_with_its_real_exit_status(tmp_path: Path) -> None:
    from papercoder.verify.debug import headline
    from papercoder.verify.smoke import Failure

    f = Failure("python main.py --smoke", "Traceback ...\nKeyError: 'width'\n[exit status 3]",
                "exit", 3)
    assert headline(f) == "python main.py --smoke: exit status 3: KeyError: 'width'"
    bare = Failure("bash reproduce.sh", "\n[exit status 7]", "exit", 7)
    assert headline(bare) == "bash reproduce.sh: exit status 7"


def test_an_answer_without_edits_stops_the_loop(tmp_path: Path) -> None:
    bad = MAIN.replace("    loss = model.step(", "    loss = modle.step(")
    out = make_out(tmp_path, planted(**{"main.py": bad}))
    model = ScriptedModel({"verify": "no edits here"})
    result = run_result(out, model, Store(tmp_path / "s.db"), debug_rounds=3)
    assert result.outcome is Outcome.NO_EDITS and not result.ran
    assert len(result.rounds) == 1 and not result.rounds[0].applied
    assert result.rounds[0].model_error
    saved = json.loads((out / "run.json").read_text())["verify"]
    assert saved["smoke"]["stopped"] == f"round 1: {result.rounds[0].model_error}"
    assert saved["rounds"][0]["model_error"] == result.rounds[0].model_error
