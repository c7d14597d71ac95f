"""The pipeline end to end with the scripted model on a small paper."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from papercoder.cli import app
from papercoder.errors import ModelOutputError
from papercoder.models.scripted import ScriptedModel
from papercoder.pipeline import RunOptions, run_pipeline
from papercoder.pipeline.schemas import Architecture, LogicDesign
from papercoder.store import Store
from tests import pipeline_helpers as ph

runner = CliRunner()


def run_cli(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.output


def test_artifacts_written_and_order_respects_dependencies(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 0, output
    arts = out / "artifacts"
    for rel in ("plan.md", "architecture.json", "logic.json", "config.yaml",
                "class_diagram.mmd", "sequence_diagram.mmd"):
        assert (arts / rel).is_file(), rel
    Architecture.model_validate_json((arts / "architecture.json").read_text())
    LogicDesign.model_validate_json((arts / "logic.json").read_text())
    for f in ph.FILES:
        assert (arts / "analysis" / f"{f}.md").is_file()
        assert (arts / "coding" / f"{f}.md").is_file()
        assert (out / "repo" / f).read_text() == ph.CODE[f]
    for extra in ("config.yaml", "requirements.txt", "README.md"):
        assert (out / "repo" / extra).is_file()
    assert yaml.safe_load((out / "repo" / "config.yaml").read_text())["training"]["momentum"] \
        == 0.9
    assert (out / "repo" / "requirements.txt").read_text() == "numpy>=1.24\n"
    assert (out / "papercoder.log").is_file()
    manifest = json.loads((out / "run.json").read_text())
    order = manifest["order"]
    for f, deps in ph.DEPS.items():
        assert all(order.index(d) < order.index(f) for d in deps)
    # the model's task list was reversed; the program's order is not
    assert order[0] == "utils.py" and order[-1] == "main.py"
    assert manifest["status"] == "done"
    for stage in ("planning", "analysis", "coding"):
        s = manifest["stages"][stage]
        assert s["status"] == "done" and s["calls"] > 0 and s["prompt_tokens"] > 0
    assert all(v["status"] == "written" for v in manifest["files"].values())


def _scripted_run(tmp_path: Path, **overrides: object):  # noqa: ANN202
    paper, _ = ph.write_fixture(tmp_path)
    model = ScriptedModel(ph.script(**overrides))
    opts = RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True)
    store = Store(tmp_path / "s.db")
    return model, opts, store


def test_cycle_is_sent_back_once_then_fixed(tmp_path: Path) -> None:
    cyclic = dict(ph.DEPS, **{"utils.py": ["main.py"]})
    model, opts, store = _scripted_run(tmp_path, logic=[ph.logic(cyclic), ph.logic()])
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    logic_calls = [h for h in model.history if h["meta"]["stage"] == "logic"]
    assert len(logic_calls) == 2
    assert "cycle" in logic_calls[1]["messages"][-1]["content"]
    assert "main.py" in logic_calls[1]["messages"][-1]["content"]


def test_persistent_cycle_fails_with_clear_error(tmp_path: Path) -> None:
    cyclic = dict(ph.DEPS, **{"utils.py": ["main.py"]})
    paper, script = ph.write_fixture(tmp_path, logic=ph.logic(cyclic))
    out = tmp_path / "out"
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code != 0
    assert "cycle" in output and "Traceback" not in output
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "failed" and "cycle" in manifest["error"]


def test_unknown_file_in_plan_is_sent_back(tmp_path: Path) -> None:
    bad = dict(ph.DEPS, **{"main.py": ["data.py", "trainer.py"]})
    model, opts, store = _scripted_run(tmp_path, logic=[ph.logic(bad), ph.logic()])
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    second = [h for h in model.history if h["meta"]["stage"] == "logic"][1]
    assert "trainer.py" in second["messages"][-1]["content"]


def test_malformed_plan_json_is_repaired_by_a_reask(tmp_path: Path) -> None:
    broken = ph.architecture()[:-40]  # cut off mid-object
    model, opts, store = _scripted_run(tmp_path, architecture=[broken, ph.architecture()])
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    calls = [h for h in model.history if h["meta"]["stage"] == "architecture"]
    assert len(calls) == 2
    assert "JSON" in calls[1]["messages"][-1]["content"]
    assert calls[1]["messages"][-2] == {"role": "assistant", "content": broken}


def test_prose_only_code_answer_is_rejected(tmp_path: Path) -> None:
    prose = "I would implement the model with a class and a fit method."
    model, opts, store = _scripted_run(tmp_path, **{"coding:model.py": prose})
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "partial"
    assert m.files["model.py"].status == "failed"
    assert "no code block" in m.files["model.py"].error
    assert not (opts.out / "repo" / "model.py").exists()
    assert (opts.out / "repo" / "main.py").is_file()
    calls = [h for h in model.history if h["meta"].get("file") == "model.py"
             and h["meta"]["stage"] == "coding"]
    assert len(calls) == 2  # asked once more, then given up


def test_syntax_error_is_quoted_back_once(tmp_path: Path) -> None:
    bad = "## Code: utils.py\n```python\ndef broken(:\n    pass\n```"
    model, opts, store = _scripted_run(
        tmp_path, **{"coding:utils.py": [bad, ph.code_answer("utils.py")]})
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    calls = [h for h in model.history if h["meta"].get("file") == "utils.py"
             and h["meta"]["stage"] == "coding"]
    assert "does not parse" in calls[1]["messages"][-1]["content"]


@pytest.mark.parametrize("bad", ["../x.py", "/etc/x", "C:/x.py", "a/../../x.py", "ok\x00.py"])
def test_unsafe_paths_are_refused(tmp_path: Path, bad: str) -> None:
    files = ["main.py", bad]
    paper, script = ph.write_fixture(tmp_path, architecture=ph.architecture(files))
    out = tmp_path / "out"
    before = set(tmp_path.parent.iterdir())
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code != 0 and "Traceback" not in output
    assert "refused" in output or "absolute" in output or "climbs" in output \
        or "control" in output
    assert set(tmp_path.parent.iterdir()) == before
    assert not Path("/etc/x").exists() or bad != "/etc/x"
    assert not (tmp_path / "x.py").exists()
    assert list((out / "repo").iterdir()) == []


def test_scoped_context_holds_every_lower_level_in_full(tmp_path: Path) -> None:
    model, opts, store = _scripted_run(tmp_path)
    run_pipeline(opts, model=model, store=store)
    prompts = {h["meta"]["file"]: "\n".join(m["content"] for m in h["messages"][3:])
               for h in model.history if h["meta"]["stage"] == "coding"}
    main = prompts["main.py"]
    # every file of a lower level in full (utils.py is not a dependency of main.py: it is
    # there all the same, so main.py's prompt extends data.py's and model.py's)
    for f in ("utils.py", "data.py", "model.py"):
        assert ph.CODE[f].strip() in main
    assert "The public interface of" not in main
    # its own dependencies named, in its own part after the shared code
    tail = main.split("Your analysis of main.py")[0].rsplit("```", 1)[1]
    assert "main.py imports from: data.py, model.py." in tail
    # data.py and model.py share a level: neither sees the other
    assert "class Regressor" not in prompts["data.py"]
    assert "def make_data" not in prompts["model.py"]
    assert ph.CODE["utils.py"].strip() in prompts["data.py"]
    assert "Code already written" not in prompts["utils.py"]


def test_full_context_holds_all_earlier_code(tmp_path: Path) -> None:
    model, opts, store = _scripted_run(tmp_path)
    opts.context = "full"
    run_pipeline(opts, model=model, store=store)
    main = "\n".join(m["content"] for m in [
        h for h in model.history if h["meta"].get("file") == "main.py"
        and h["meta"]["stage"] == "coding"][0]["messages"][3:])
    for f in ("utils.py", "data.py", "model.py"):
        assert ph.CODE[f].strip() in main


def test_stable_prefix_is_identical_across_calls(tmp_path: Path) -> None:
    model, opts, store = _scripted_run(tmp_path)
    run_pipeline(opts, model=model, store=store)
    later = [h["messages"] for h in model.history if h["meta"]["stage"] in ("analysis",
                                                                            "coding")]
    prefix = later[0][:3]
    assert all(msgs[:3] == prefix for msgs in later)
    assert prefix[1].get("cache") and prefix[2].get("cache")
    assert "Momentum Averaged" in prefix[1]["content"]


def test_rerun_pays_nothing_and_plan_then_run_continues(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    code, output = run_cli("plan", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 0, output
    assert (out / "artifacts" / "logic.json").is_file()
    assert not (out / "repo" / "main.py").exists()
    # the user edits the plan: drop data.py from main's dependencies
    logic = json.loads((out / "artifacts" / "logic.json").read_text())
    for entry in logic["logic_analysis"]:
        if entry["file"] == "main.py":
            entry["depends_on"] = ["model.py"]
    (out / "artifacts" / "logic.json").write_text(json.dumps(logic))
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 0, output
    m = json.loads((out / "run.json").read_text())
    assert m["files"]["main.py"]["depends_on"] == ["model.py"]
    assert m["stages"]["planning"]["session"]["calls"] == 0  # reused from disk
    assert m["stages"]["planning"]["calls"] == 4  # what planning took in the plan session
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    m2 = json.loads((out / "run.json").read_text())
    assert m2["totals"]["session"]["calls"] == 0 and m2["status"] == "done"
    # a rerun from disk keeps what the run cost and took (issue 19: it wiped the totals)
    assert m2["totals"]["calls"] == m["totals"]["calls"] > 0 and m2["totals"]["sessions"] == 3
    assert m2["totals"]["wall_seconds"] >= m["totals"]["wall_seconds"]
    assert m2["stages"]["planning"]["calls"] == 4 and m2["stages"]["coding"]["calls"] > 0
    # --from analysis redoes analysis and coding, all from the cache
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q",
                           "--from", "analysis")
    m3 = json.loads((out / "run.json").read_text())
    assert m3["totals"]["session"]["calls"] == m3["totals"]["session"]["cache_hits"] == 8
    assert m3["totals"]["calls"] == m2["totals"]["calls"] + 8


def test_small_context_window_reduces_and_says_so(tmp_path: Path) -> None:
    model, opts, store = _scripted_run(tmp_path, summarize="Condensed section.")
    filler = "Earlier work studied averaging of stochastic iterates in many settings. " * 60
    big = ph.TINY_PAPER.replace("## References", f"## 3 Related Work\n\n{filler * 2}\n\n"
                                "## References") + f"\n## Appendix A\n\n{filler}\n"
    Path(opts.paper).write_text(big)
    opts.context_window = 4000
    opts.keep_references = True  # so that the budget has to drop them first
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    assert any("references removed" in r for r in m.reductions)
    assert any(h["meta"]["stage"] == "summarize" for h in model.history)
    assert "References" not in model.history[0]["messages"][1]["content"]


def test_refine_saves_critiques_and_uses_rewrites(tmp_path: Path) -> None:
    model, opts, store = _scripted_run(
        tmp_path, verify="- Missing the averaging step.",
        refine=["## Plan (refined)\nMomentum SGD and Polyak averaging.", ph.architecture(),
                ph.logic(), ph.CONFIG] + [f"# Refined analysis {i}" for i in range(4)])
    opts.refine = True
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    arts = opts.out / "artifacts"
    assert (arts / "refine" / "plan.critique.md").read_text().startswith("- Missing")
    assert (arts / "plan.md").read_text().startswith("## Plan (refined)")
    assert (arts / "refine" / "plan.draft.txt").is_file()
    assert len(list((arts / "refine").glob("analysis__*.critique.md"))) == 4


def test_budget_stop_keeps_artifacts(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    # scripted models are free, so use a priced model name through a user price table
    cfg = tmp_path / "config.yaml"
    cfg.write_text("prices:\n  scripted:\n    '': {input: 1000, cached_input: 100, "
                   "output: 1000}\n")
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q",
                           "--max-cost", "5")
    assert code != 0 and "max-cost" in output and "Traceback" not in output
    m = json.loads((out / "run.json").read_text())
    assert m["status"] == "stopped"
    assert (out / "artifacts" / "plan.md").is_file()


def test_output_folder_of_another_paper_is_refused(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    code, output = run_cli("plan", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 0, output
    other = tmp_path / "other.md"
    other.write_text("# A Different Paper\n\n## 1 Method\n\nSomething else.\n")
    code, output = run_cli("run", str(other), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code != 0 and "another paper" in output and "Traceback" not in output


def test_reference_list_is_left_out_of_prompts_unless_asked(tmp_path: Path) -> None:
    model, opts, store = _scripted_run(tmp_path)
    m = run_pipeline(opts, model=model, store=store)
    assert "Polyak, B." not in model.history[0]["messages"][1]["content"]
    assert m.paper["references_in_prompts"] is False
    (tmp_path / "b").mkdir()
    model, opts, store = _scripted_run(tmp_path / "b")
    opts.keep_references = True
    run_pipeline(opts, model=model, store=store)
    assert "Polyak, B." in model.history[0]["messages"][1]["content"]


@pytest.mark.parametrize(("paper", "name"), [
    ("arxiv:1706.03762", "arxiv_1706.03762"), ("https://arxiv.org/abs/1706.03762", "1706.03762"),
    ("papers/x/paper.pdf", "paper"), ("a b.tex", "a_b"), ("src.tar.gz", "src")])
def test_default_output_folder_name_is_safe(paper: str, name: str) -> None:
    from papercoder.cli.run import default_out_name

    assert default_out_name(paper) == name


def test_imports_of_names_a_dependency_never_defined_are_reported(tmp_path: Path) -> None:
    bad_main = ph.code_answer("main.py").replace("from data import make_data",
                                                 "from data import make_data, load_all")
    model, opts, store = _scripted_run(tmp_path, **{"coding:main.py": bad_main})
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    assert "main.py imports load_all from data.py, which does not define it" in m.warnings
    assert "load_all" in (opts.out / "repo" / "README.md").read_text()


def test_crosscheck_sees_names_bound_under_module_level_blocks() -> None:
    from papercoder.crosscheck import unresolved_imports

    code = {"a.py": "try:\n    import numpy as np\nexcept ImportError:\n    np = None\n"
                    "if True:\n    def f():\n        pass\n",
            "b.py": "from a import np, f, g\nfrom os import path\n"}
    assert unresolved_imports(code) == ["b.py imports g from a.py, which does not define it"]


def test_answer_cut_off_by_the_length_limit_is_continued(tmp_path: Path) -> None:
    full = ph.code_answer("model.py")
    cut = full.index("def fit")
    parts = [{"text": full[:cut], "finish_reason": "length"},
             {"text": "```python\n" + full[cut:]}]
    model, opts, store = _scripted_run(tmp_path, **{"coding:model.py": parts})
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    assert (opts.out / "repo" / "model.py").read_text() == ph.CODE["model.py"]
    calls = [h for h in model.history if h["meta"].get("file") == "model.py"
             and h["meta"]["stage"] == "coding"]
    assert len(calls) == 2 and "cut off" in calls[1]["messages"][-1]["content"]


def test_json_cut_off_by_the_length_limit_is_reasked_not_closed_for_the_plan(
        tmp_path: Path) -> None:
    """Closing a cut-off logic design could drop dependencies or tasks: it is asked again."""
    logic = ph.logic()
    cut = logic.index('"shared_knowledge"')  # after the required fields: it would validate
    cut_off = {"text": logic[:cut], "finish_reason": "length"}
    model, opts, store = _scripted_run(tmp_path, logic=[cut_off, logic])
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    calls = [h for h in model.history if h["meta"]["stage"] == "logic"]
    assert len(calls) == 2 and "cut off" in calls[1]["messages"][-1]["content"]
    assert json.loads((opts.out / "artifacts" / "logic.json").read_text())[
        "shared_knowledge"] == "Seeds come from utils."


def test_json_always_cut_off_fails_the_run_clearly(tmp_path: Path) -> None:
    logic = ph.logic()
    cut = logic.index('"shared_knowledge"')
    model, opts, store = _scripted_run(
        tmp_path, logic={"text": logic[:cut], "finish_reason": "length"})
    with pytest.raises(ModelOutputError, match="cut off by the length limit"):
        run_pipeline(opts, model=model, store=store)
    m = json.loads((opts.out / "run.json").read_text())
    assert m["status"] == "failed" and "cut off" in m["error"]
    assert m["stages"]["planning"]["status"] == "failed"


def test_config_values_neither_in_the_paper_nor_marked_are_flagged(tmp_path: Path) -> None:
    config = ph.CONFIG.replace("  steps: 200\n", "  steps: 200\n  seed: 7\n  decay: 0.3  # "
                               "not given in the paper: assumed\n")
    model, opts, store = _scripted_run(tmp_path, config=config)
    m = run_pipeline(opts, model=model, store=store)
    flagged = [w for w in m.warnings if w.startswith("config.yaml has values")]
    assert flagged and "seed=7" in flagged[0]
    assert "steps" not in flagged[0] and "decay" not in flagged[0]


def test_a_cut_off_answer_is_continued_in_a_small_window_too(tmp_path: Path) -> None:
    """The embedded model's window is small: a cut-off code file is continued from where it
    stopped (a "continue" turn after the answer so far), not asked again from scratch."""
    full = ph.code_answer("model.py")
    cut = full.index("def fit")
    parts = [{"text": full[:cut], "finish_reason": "length"},
             {"text": "```python\n" + full[cut:]}]
    model, opts, store = _scripted_run(tmp_path, **{"coding:model.py": parts})
    opts.context_window = 8192
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done", m.files
    assert (opts.out / "repo" / "model.py").read_text() == ph.CODE["model.py"]
    calls = [h for h in model.history if h["meta"].get("file") == "model.py"
             and h["meta"]["stage"] == "coding"]
    assert len(calls) == 2
    assert calls[1]["messages"][-2] == {"role": "assistant", "content": full[:cut]}
    assert "Continue exactly where it stopped" in calls[1]["messages"][-1]["content"]
    assert not any("Answer again" in str(m["content"]) for c in calls for m in c["messages"])


def test_generated_readme_describes_every_file_and_keeps_only_real_questions(
        tmp_path: Path) -> None:
    """A file without a note is described from its analysis (never `- main.py: `), and the
    open questions hold what the plan asks, not "None", fences or JSON pieces."""
    lg = json.loads(ph.logic())
    for x in lg["logic_analysis"]:
        if x["file"] == "main.py":
            x["notes"] = ""
        if x["file"] == "data.py":
            x["notes"] = "```\n"
    lg["anything_unclear"] = "```json\n{\"a\": 1}\n```\nN/A\nWhich batch size does Sec. 1 use?"
    arch = ph.architecture().replace('"Nothing."', '"- None\\n- Which batch size does Sec. 1 '
                                                    'use?\\n}"')
    model, opts, store = _scripted_run(tmp_path, logic=json.dumps(lg), architecture=arch)
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    readme = (opts.out / "repo" / "README.md").read_text()
    files = [ln for ln in readme.splitlines() if ln.startswith("- `")]
    assert all(not ln.rstrip().endswith(":") for ln in files), readme
    assert "- `main.py`: Implements part of Sec. 1 for main.py." in readme
    questions = readme.split("## Open questions", 1)[1].split("##", 1)[0].strip()
    assert questions == "- Which batch size does Sec. 1 use?", readme


def test_a_config_of_plan_fragments_is_sent_back_and_pip_is_no_requirement(
        tmp_path: Path) -> None:
    """A weak model's config.yaml made of the logic design's keys (task_list,
    required_packages, smoke_commands) is sent back with the reason; the report lists the
    packages requirements.txt holds (not pip)."""
    from papercoder.report.loader import load

    fragments = ("```yaml\ntask_list: [main.py]\nrequired_packages: [numpy, pip]\n"
                 "smoke_commands:\n  - python main.py --smoke\n```")
    lg = json.loads(ph.logic())
    lg["required_packages"] = ["numpy>=1.24", "pip"]
    model, opts, store = _scripted_run(tmp_path, config=[fragments, ph.CONFIG],
                                       logic=json.dumps(lg))
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done"
    calls = [h for h in model.history if h["meta"]["stage"] == "config"]
    assert len(calls) == 2 and "not a config.yaml" in calls[1]["messages"][-1]["content"]
    assert "task_list" not in (opts.out / "repo" / "config.yaml").read_text()
    assert load(opts.out).packages == ["numpy>=1.24"]


def test_crosscheck_follows_star_reexports_and_submodules() -> None:
    """The pipeline's warnings use verify's resolution: a name re-exported by ``from .base
    import *`` and a submodule of a package are provided; a real typo is still reported."""
    from papercoder.crosscheck import unresolved_imports

    code = {"models/__init__.py": "from .base import *\nfrom .vae import VAE\n",
            "models/base.py": "__all__ = ['BaseVAE']\nclass BaseVAE:\n    pass\n"
                              "class _Hidden:\n    pass\n",
            "models/vae.py": "from .base import BaseVAE\nclass VAE(BaseVAE):\n    pass\n",
            "models/ddpm.py": "X = 1\n",
            "main.py": "from models import BaseVAE, VAE\nfrom models import ddpm\n"
                       "from models import _Hidden\nfrom models.vae import VAE as V2, VEA\n"}
    assert unresolved_imports(code) == [
        "main.py imports _Hidden from models/__init__.py, which does not define it",
        "main.py imports VEA from models/vae.py, which does not define it"]


def test_crosscheck_star_chain_of_any_length_is_no_crash() -> None:
    from papercoder.crosscheck import unresolved_imports

    code = {f"m{i}.py": f"from m{i + 1} import *\n" for i in range(400)}
    code["m400.py"] = "A = 1\n"
    code["main.py"] = "from m0 import A, B\n"
    assert unresolved_imports(code) == []  # too long a chain to know: no certain problem
