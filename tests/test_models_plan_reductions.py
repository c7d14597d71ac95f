"""Model changes are visible, `plan` takes run's options and ends truthfully, and context
reductions name what they lost (console, run.json, stage timings)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from papercoder.cli import app
from tests import pipeline_helpers as ph

runner = CliRunner()


def cli(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    assert "Traceback" not in r.output
    return r.exit_code, r.output


def second_model(tmp: Path, name: str = "strong.json", **overrides: object) -> Path:
    p = tmp / name
    p.write_text(json.dumps(ph.script(**overrides)))
    return p


def test_each_artifact_records_the_model_that_wrote_it(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    code, output = cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 0, output
    m = json.loads((out / "run.json").read_text())
    for step in ("plan", "architecture", "logic", "config"):
        assert m["models"][step] == "scripted:script.json"
    for f in ph.FILES:
        assert m["models"][f"analysis:{f}"] == "scripted:script.json"
        assert m["files"][f]["model"] == "scripted:script.json"


def test_another_model_is_refused_with_a_sentence_naming_from(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    assert cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")[0] == 0
    before = (out / "run.json").read_text()
    strong = second_model(tmp_path)
    code, output = cli("run", str(paper), "-m", f"scripted:{strong}", "-o", str(out), "-q")
    assert code == 2, output
    assert "--from planning" in output and "scripted:script.json" in output
    assert (out / "run.json").read_text() == before  # nothing relabelled
    assert "scripted:strong.json" not in (out / "repo" / "README.md").read_text()


def test_from_coding_keeps_the_plan_and_records_both_models(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    assert cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")[0] == 0
    strong = second_model(tmp_path)
    code, output = cli("run", str(paper), "-m", f"scripted:{strong}", "-o", str(out), "-q",
                       "--from", "coding")
    assert code == 0, output
    m = json.loads((out / "run.json").read_text())
    assert m["models"]["plan"] == "scripted:script.json"
    assert all(s["model"] == "scripted:strong.json" for s in m["files"].values())
    readme = " ".join((out / "repo" / "README.md").read_text().split())
    assert "scripted:script.json (planning)" in readme
    assert "scripted:strong.json (coding)" in readme
    # a plain rerun with the strong model now refuses (the plan is the other model's)
    code, output = cli("run", str(paper), "-m", f"scripted:{strong}", "-o", str(out), "-q")
    assert code == 2 and "--from" in output
    # --from planning redoes everything with it; then plain reruns are fine
    assert cli("run", str(paper), "-m", f"scripted:{strong}", "-o", str(out), "-q",
               "--from", "planning")[0] == 0
    m = json.loads((out / "run.json").read_text())
    assert set(m["models"].values()) == {"scripted:strong.json"}
    assert cli("run", str(paper), "-m", f"scripted:{strong}", "-o", str(out), "-q")[0] == 0


def test_plan_takes_runs_options_and_ends_truthfully(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "plan.j2").write_text("Step 1 of the plan: CUSTOM PLAN PROMPT.")
    code, output = cli("plan", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q",
                       "--keep-references", "--timeout", "30", "--prompts", str(prompts),
                       "--context", "full", "--concurrency", "2", "--context-window", "64000")
    assert code == 0, output
    assert re.search(r"^planned: 4 planning steps, 4 files planned in ", output, re.M), output
    assert "0/4" not in output
    m = json.loads((out / "run.json").read_text())
    s = m["settings"]
    assert s["keep_references"] and s["timeout"] == 30 and s["context"] == "full"
    assert s["concurrency"] == 2 and s["context_window"] == 64000
    assert s["prompts_dir"] == str(prompts) and m["paper"].get("references_in_prompts", True)
    help_text = runner.invoke(app, ["plan", "--help"], env={"COLUMNS": "200"}).output
    for option in ("--keep-references", "--timeout", "--prompts", "--context ",
                   "--concurrency", "--context-window"):
        assert option in help_text
    assert "context window in tokens" in " ".join(help_text.split())


def big_paper(tmp: Path) -> Path:
    filler = "Earlier work studied averaging of stochastic iterates in many settings. " * 60
    body = ph.TINY_PAPER.replace(
        "## References",
        f"## 3 Related Work\n\n{filler * 2}\n\n## 4 Training\n\nWe train with batch size 16 "
        f"and learning rate 0.05. {filler}\n\n## 5 Results\n\nThe error is 0.01. {filler}\n\n"
        "## References")
    paper = tmp / "paper.md"
    paper.write_text(body + f"\n## Appendix A\n\n{filler}\n")
    return paper


def test_reductions_name_the_sections_and_summaries_are_timed(tmp_path: Path) -> None:
    _, script = ph.write_fixture(tmp_path, summarize="Condensed section.")
    paper = big_paper(tmp_path)
    out = tmp_path / "out"
    r = runner.invoke(app, ["run", str(paper), "-m", f"scripted:{script}", "-o", str(out),
                            "--context-window", "4000", "--keep-references"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "dropped: 'References'" in text and "'Appendix A'" in text
    assert re.search(r"sections summarized by the model .*'3 Related Work'", text), text
    m = json.loads((out / "run.json").read_text())
    actions = {x["action"]: x for x in m["reduced"] if x["what"] == "paper"}
    # the progress display shows the summarize calls, out of a known total
    n = len(actions["summarized"]["sections"])
    # (off a terminal the display is one line per step: "[0:01] summarize 2/4: 3 Method")
    assert n >= 2 and re.search(rf"^({STEP})?summarize\b.* {n}/{n}\b", r.output, re.M), \
        r.output
    assert not re.search(rf"^({STEP})?summarize .*/\?", r.output, re.M), r.output
    assert actions["dropped"]["sections"][0] == "Appendix A" or \
        "References" in actions["dropped"]["sections"]
    assert "3 Related Work" in actions["summarized"]["sections"]
    assert all(x["message"] for x in m["reduced"])
    reading = m["stages"]["reading"]
    assert reading["calls"] == len(actions["summarized"]["sections"]) and reading["seconds"] >= 0
    stage_calls = sum(s["calls"] for s in m["stages"].values())
    assert stage_calls == m["totals"]["calls"]  # no call is missing from the stage timings
    # wall time covers every stage; each figure is rounded to 0.01 s, hence the allowance
    stages = m["stages"].values()
    assert m["totals"]["wall_seconds"] >= sum(s["seconds"] for s in stages) - 0.01 * len(stages)


def test_a_cut_paper_names_the_sections_it_omitted(tmp_path: Path) -> None:
    import asyncio

    from papercoder.paper import load_paper
    from papercoder.pipeline.context import reduce_paper

    paper = load_paper(str(big_paper(tmp_path)))
    notes: list[str] = []
    reduced: list[dict] = []
    md, what = asyncio.run(reduce_paper(paper, 700, None, notes, reduced))
    cut = next(x for x in reduced if x["action"] == "cut")
    assert "5 Results" in cut["sections"] and cut["partly"]
    assert any("omitted:" in n and "'5 Results'" in n for n in notes)
    assert "shortened with a marker" in what


STEP = r"\[\d+:\d\d\] "
"""The elapsed time that starts a progress line where no terminal shows the live bar."""


def _reduction_lines(output: str) -> list[str]:
    text = " ".join(output.split())
    return sorted(x.split(".")[0].removesuffix(" (earlier in this run)")
                  for x in text.split("Context budget: ")[1:])


def test_a_resumed_run_says_the_reductions_again(tmp_path: Path) -> None:
    """What the model saw is said on every run, not only the first: the paper's reductions
    are recomputed (summaries from the cache) and the others are recalled from run.json."""
    _, script = ph.write_fixture(tmp_path, summarize="Condensed section.")
    paper = big_paper(tmp_path)
    out = tmp_path / "out"
    args = ["run", str(paper), "-m", f"scripted:{script}", "-o", str(out),
            "--context-window", "4000", "--keep-references"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    said = _reduction_lines(first.output)
    assert any("summarized by the model" in x for x in said), first.output
    m = json.loads((out / "run.json").read_text())
    # a rerun (everything from the cache), and a resume from coding, say the same
    for extra in ([], ["--from", "coding"]):
        again = runner.invoke(app, args + extra)
        assert again.exit_code == 0, again.output
        assert _reduction_lines(again.output) == said, (extra, again.output)
        n = len([x for x in said if "summarized" in x])
        assert n == 1 and re.search(rf"^({STEP})?summarize\b.* (\d+)/\2\b", again.output,
                                    re.M)
    assert json.loads((out / "run.json").read_text())["reductions"] == m["reductions"]


def test_reductions_recorded_by_an_earlier_session_are_recalled(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    assert cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")[0] == 0
    m = json.loads((out / "run.json").read_text())
    m["reductions"].append("analysis of model.py: cut to fit the context window")
    (out / "run.json").write_text(json.dumps(m))
    r = runner.invoke(app, ["run", str(paper), "-m", f"scripted:{script}", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert ("Context budget: analysis of model.py: cut to fit the context window (earlier in "
            "this run).") in " ".join(r.output.split())
    # --from planning redoes everything: nothing earlier is claimed
    r = runner.invoke(app, ["run", str(paper), "-m", f"scripted:{script}", "-o", str(out),
                            "--from", "planning"])
    assert r.exit_code == 0 and "earlier in this run" not in r.output, r.output
