"""The paper contract: requirements extracted and quote-checked, planned and coded against,
audited and repaired (scripted model, through the CLI and the library)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from papercoder.audit.verdicts import AuditAnswer, check_grades, find_line, markers
from papercoder.cli import app
from papercoder.evaluate import EvalOptions, evaluate_target
from papercoder.models.scripted import ScriptedModel
from papercoder.paper import load_paper
from papercoder.pipeline import RunOptions, run_pipeline
from papercoder.requirements.extract import section_groups
from papercoder.requirements.quotes import QuoteIndex
from papercoder.store import Store
from tests import pipeline_helpers as ph

runner = CliRunner()

FABRICATED = {"id": "R6", "category": "model", "statement": "A two-layer MLP.",
              "quote": "We use a two-layer MLP with ReLU activations.", "section": "1 Method"}


def run_cli(*args: str) -> tuple[int, str]:
    r = runner.invoke(app, list(args))
    return r.exit_code, r.output


def scripted(tmp: Path, **overrides: object) -> tuple[ScriptedModel, RunOptions, Store]:
    paper, _ = ph.write_fixture(tmp)
    return (ScriptedModel(ph.script(**overrides)),
            RunOptions(paper=str(paper), out=tmp / "out", quiet=True), Store(tmp / "s.db"))


def asked(model: ScriptedModel, stage: str, file: str | None = None) -> list[str]:
    """The last user message of every request of ``stage`` (and ``file``)."""
    return [h["messages"][-1]["content"] for h in model.history
            if h["meta"].get("stage") == stage and (file is None or h["meta"].get("file") == file)]


# -- quotes ------------------------------------------------------------------------------------
def test_quotes_match_across_case_whitespace_hyphenation_and_latex_or_unicode() -> None:
    paper = ("The update is $v_{t+1} = \\beta v_t + \\nabla L(w_t)$ with a learn-\ning rate "
             "of $\\eta = 0.05$.\nWe use    Adam (Kingma \u2013 Ba).")
    index = QuoteIndex(paper)
    for quote in ("the update is v_{t+1} = β v_t + ∇L(w_t)",
                  "with a learning rate of η = 0.05",
                  "The Update Is $v_{t+1}$ = \\beta  v_t",
                  "we use adam (kingma - ba)",
                  "with a learn- ing rate of η = 0.05"):
        assert index.problem(quote) is None, quote
    assert "not in the paper" in (index.problem("with a learning rate of η = 0.5") or "")
    assert "not in the paper" in (index.problem("We use SGD with Nesterov momentum.") or "")
    assert "too short" in (index.problem("η = 0.05") or "")
    assert "empty" in (index.problem("  ") or "")


def test_quote_with_an_ellipsis_matches_its_parts_in_order() -> None:
    index = QuoteIndex("We train for 200 steps. Later we evaluate on held-out points.")
    assert index.problem("We train for 200 steps ... we evaluate on held-out points") is None
    assert index.problem("we evaluate on held-out points ... We train for 200 steps") \
        is not None


# -- the run through the CLI --------------------------------------------------------------------
def test_run_extracts_plans_codes_and_audits_against_the_contract(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 0, output
    contract = json.loads((out / "artifacts" / "requirements.json").read_text())
    assert [r["id"] for r in contract["requirements"]] == ["R1", "R2", "R3", "R4", "R5"]
    assert contract["dropped"] == []
    logic = json.loads((out / "artifacts" / "logic.json").read_text())
    assert {x["file"]: x["requirements"] for x in logic["logic_analysis"]}["model.py"] == \
        ["R1", "R2", "R3"]
    m = json.loads((out / "run.json").read_text())
    req = m["requirements"]
    assert (req["total"], req["met"], req["partial"], req["unmet"]) == (5, 5, 0, 0)
    assert req["categories"]["training"] == {"total": 1, "met": 1, "partial": 0, "unmet": 0}
    assert req["uncovered"] == [] and req["rounds"][0]["met"] == 5
    assert m["stages"]["requirements"]["calls"] == 1 and m["stages"]["audit"]["calls"] == 3
    last = output.strip().splitlines()[-1]  # the one final line: status first, then the audit
    assert last.startswith("done:") and last.endswith(
        " · requirements: 5/5 met, 0 partial, 0 unmet"), last
    verdicts = json.loads((out / "artifacts" / "audit" / "verdicts.json").read_text())
    r4 = next(r for r in verdicts["requirements"] if r["id"] == "R4")
    assert r4["evidence"] == [{"file": "data.py", "quote": "def make_data(n: int, d: int):",
                               "line": 4}]
    # a rerun pays nothing: the contract is read back, the audit of the same code stands
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 0, output
    again = json.loads((out / "run.json").read_text())
    assert again["totals"]["session"]["calls"] == 0 and again["requirements"]["met"] == 5


def test_prompts_carry_each_files_requirements_and_the_marker_rule(tmp_path: Path) -> None:
    model, opts, store = scripted(tmp_path)
    run_pipeline(opts, model=model, store=store)
    logic_prompt = asked(model, "logic")[0]
    assert "R5 [evaluation]" in logic_prompt and '"requirements"' in logic_prompt
    coding = asked(model, "coding", "model.py")[0]
    assert "# paper: R7" in coding and "R2 (1 Method)" in coding and "∇L(w_t)" in coding
    assert "R4" not in coding  # data.py's requirement is not model.py's
    assert "R4 (2 Experiments)" in asked(model, "analysis", "data.py")[0]
    # utils.py takes no requirement: its prompts are the published method's
    assert "requirements of the paper" not in asked(model, "coding", "utils.py")[0]


def test_fabricated_quote_is_sent_back_once_then_dropped_with_its_reason(tmp_path: Path) -> None:
    first = ph.requirements_answer([*ph.REQUIREMENTS, FABRICATED])
    model, opts, store = scripted(tmp_path, requirements=[first])  # same answer again
    m = run_pipeline(opts, model=model, store=store)
    calls = asked(model, "requirements")
    assert len(calls) == 2 and "R6: the quote is not in the paper" in calls[1]
    contract = json.loads((opts.out / "artifacts" / "requirements.json").read_text())
    assert [r["id"] for r in contract["requirements"]] == ["R1", "R2", "R3", "R4", "R5"]
    assert contract["dropped"] == [{"statement": FABRICATED["statement"],
                                    "quote": FABRICATED["quote"],
                                    "reason": "the quote is not in the paper (it must be "
                                              "copied verbatim)"}]
    assert m.requirements["dropped"] == 1 and m.status == "done"


def test_requirement_left_out_after_the_send_back_is_listed_as_dropped(tmp_path: Path) -> None:
    first = ph.requirements_answer([*ph.REQUIREMENTS, FABRICATED])
    model, opts, store = scripted(tmp_path, requirements=[first, ph.requirements_answer()])
    run_pipeline(opts, model=model, store=store)
    contract = json.loads((opts.out / "artifacts" / "requirements.json").read_text())
    assert [d["statement"] for d in contract["dropped"]] == [FABRICATED["statement"]]


def test_unusable_contract_answer_fails_in_one_line_and_the_run_goes_on(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path, requirements="I would rather not list them.")
    out = tmp_path / "out"
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 0, output
    m = json.loads((out / "run.json").read_text())
    assert m["status"] == "done" and m["requirements"]["status"] == "failed"
    assert "unusable after 2 re-asks" in m["requirements"]["reason"]
    said = [w for w in m["warnings"] if "requirements could not be extracted" in w]
    assert len(said) == 1 and "Traceback" not in output
    assert not (out / "artifacts" / "requirements.json").exists()
    logic = json.loads((out / "artifacts" / "logic.json").read_text())
    assert logic["logic_analysis"]  # planned with the published method
    assert "requirements:" not in output


def test_contract_whose_quotes_are_all_fabricated_fails_and_the_run_goes_on(
        tmp_path: Path) -> None:
    model, opts, store = scripted(tmp_path, requirements=ph.requirements_answer([FABRICATED]))
    m = run_pipeline(opts, model=model, store=store)
    assert m.status == "done" and m.requirements["status"] == "failed"
    assert "none of the 1 requirements' quotes was found" in m.requirements["reason"]
    assert asked(model, "audit") == [] and "R1" not in asked(model, "coding", "model.py")[0]


def test_no_contract_runs_the_published_method_alone(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q",
                           "--no-contract")
    assert code == 0, output
    m = json.loads((out / "run.json").read_text())
    assert m["requirements"] == {"status": "off", "reason": "--no-contract"}
    assert "requirements" not in m["stages"] and "audit" not in m["stages"]
    assert not (out / "artifacts" / "requirements.json").exists()


def test_edited_contract_is_planned_against_with_from_planning(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    assert run_cli("plan", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")[0] == 0
    path = out / "artifacts" / "requirements.json"
    contract = json.loads(path.read_text())
    contract["requirements"] = contract["requirements"][:4]  # the user removes R5
    contract["requirements"][0]["statement"] = "The loss is the mean squared error (edited)."
    path.write_text(json.dumps(contract))
    model = ScriptedModel(ph.script(logic=ph.logic(mapping={"model.py": ["R1", "R2", "R3"],
                                                            "data.py": ["R4"]})))
    opts = RunOptions(paper=str(paper), out=out, quiet=True, from_stage="planning",
                      stop_after="planning")
    m = run_pipeline(opts, model=model, store=Store(tmp_path / "other.db"))
    assert asked(model, "requirements") == []
    prompt = asked(model, "logic")[0]
    assert "(edited)" in prompt and "R5" not in prompt
    assert m.requirements["total"] == 4 and m.requirements["source"] == "artifact"


def test_broken_edited_contract_is_one_sentence(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    (out / "artifacts").mkdir(parents=True)
    (out / "artifacts" / "requirements.json").write_text('{"requirements": [{"id": "R1"}]}')
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code != 0 and "requirements.json is not a valid contract" in output
    assert "Traceback" not in output


def test_unknown_requirement_id_is_sent_back(tmp_path: Path) -> None:
    bad = ph.logic(mapping={**ph.REQ_MAP, "utils.py": ["R99"]})
    model, opts, store = scripted(tmp_path, logic=[bad, ph.logic()])
    run_pipeline(opts, model=model, store=store)
    calls = asked(model, "logic")
    assert len(calls) == 2 and "not in the list: R99" in calls[1]


def test_requirement_no_file_takes_is_sent_back_once_then_uncovered(tmp_path: Path) -> None:
    partial = ph.logic(mapping={"model.py": ["R1", "R2", "R3"], "data.py": ["R4"]})
    model, opts, store = scripted(tmp_path, logic=[partial])
    m = run_pipeline(opts, model=model, store=store)
    calls = asked(model, "logic")
    assert len(calls) == 2 and "No file takes these requirements: R5" in calls[1]
    assert m.requirements["uncovered"] == ["R5"]
    assert any("uncovered" in w and "R5" in w for w in m.warnings)
    verdicts = json.loads((opts.out / "artifacts" / "audit" / "verdicts.json").read_text())
    r5 = next(r for r in verdicts["requirements"] if r["id"] == "R5")
    assert r5["verdict"] == "uncovered"


# -- the audit ----------------------------------------------------------------------------------
REPAIR = ("model.py\n<<<<<<< SEARCH\n        self.w = [0.0]\n=======\n"
          "        self.w = [0.0]\n        self.momentum = 0.9  # paper: R3\n>>>>>>> REPLACE\n")


def test_missing_requirement_is_found_unmet_then_met_after_one_repair(tmp_path: Path) -> None:
    unmet = json.dumps({"requirements": [
        {"id": "R1", "verdict": "met", "evidence": [{"file": "model.py",
                                                     "quote": "class Regressor:"}], "reason": ""},
        {"id": "R2", "verdict": "met", "evidence": [{"file": "model.py",
                                                     "quote": "def fit(self, xs, ys"}],
         "reason": ""},
        {"id": "R3", "verdict": "unmet", "evidence": [], "reason": "no momentum 0.9"}]})
    met = json.dumps({"requirements": [
        {"id": r, "verdict": "met", "evidence": [{"file": "model.py",
                                                  "quote": "self.momentum = 0.9"}],
         "reason": "now there"} for r in ("R1", "R2", "R3")]})
    paper, script = ph.write_fixture(tmp_path, **{"audit:model.py": [unmet, met],
                                                  "repair:model.py": REPAIR})
    out = tmp_path / "out"
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 0, output
    assert "self.momentum = 0.9  # paper: R3" in (out / "repo" / "model.py").read_text()
    diff = (out / "artifacts" / "audit" / "round-1" / "model.py.diff").read_text()
    assert "+        self.momentum = 0.9  # paper: R3" in diff
    req = json.loads((out / "run.json").read_text())["requirements"]
    assert [(r["round"], r["met"], r["unmet"]) for r in req["rounds"]] == [(0, 4, 1), (1, 5, 0)]
    assert req["rounds"][1]["repaired"] == ["model.py"] and req["met"] == 5
    verdicts = json.loads((out / "artifacts" / "audit" / "verdicts.json").read_text())
    r3 = next(r for r in verdicts["requirements"] if r["id"] == "R3")
    assert r3["markers"] == [{"file": "model.py", "line": 10}]
    last = output.strip().splitlines()[-1]  # the one final line: status first, then the audit
    assert last.startswith("done:") and last.endswith(
        " · requirements: 5/5 met, 0 partial, 0 unmet"), last


def test_audit_threads_leave_the_paper_out_and_repairs_continue_them(tmp_path: Path) -> None:
    """The cost layout (bench/contract.py): an audit sends the file's requirements with their
    quotes and its code, not the paper; the repair and the regrade continue that thread
    (its cached start unchanged) and the regrade sends the diff, not the whole file again."""
    unmet = json.dumps({"requirements": [
        {"id": "R1", "verdict": "met", "evidence": [{"file": "model.py",
                                                     "quote": "class Regressor:"}]},
        {"id": "R2", "verdict": "met", "evidence": [{"file": "model.py",
                                                     "quote": "def fit(self, xs, ys"}]},
        {"id": "R3", "verdict": "unmet", "evidence": [], "reason": "no momentum 0.9"}]})
    model, opts, store = scripted(tmp_path, **{"audit:model.py": [unmet, ph.audit_answer(
        "model.py", "met", "self.momentum = 0.9")], "repair:model.py": REPAIR})
    m = run_pipeline(opts, model=model, store=store)
    assert m.requirements["met"] == 5
    calls = [h["messages"] for h in model.history
             if h["meta"]["stage"] in ("audit", "repair") and h["meta"].get("file") == "model.py"]
    first, repair, regrade = calls
    paper_line = "Momentum Averaged Linear Regression"
    assert all(paper_line not in x["content"] for c in calls for x in c)
    assert len(first) == 2 and first[1].get("cache") and ph.CODE["model.py"].strip() in \
        first[1]["content"] and "R3" in first[1]["content"]
    assert repair[:2] == first and repair[2]["role"] == "assistant" and \
        repair[2]["content"] == unmet and repair[3]["role"] == "user"
    assert "R3" in repair[3]["content"] and ph.CODE["model.py"].strip() not in \
        repair[3]["content"]
    assert regrade[:len(repair)] == repair and regrade[len(repair)]["content"] == REPAIR
    again = regrade[-1]["content"]
    assert "+        self.momentum = 0.9  # paper: R3" in again
    assert "class Regressor:" not in again  # the diff, not the whole file
    # other files' audits are threads of their own
    assert all(len(h["messages"]) == 2 for h in model.history
               if h["meta"]["stage"] == "audit" and h["meta"].get("file") != "model.py")


def test_a_second_round_repairs_from_the_current_code(tmp_path: Path) -> None:
    """A file the audit already edited gets a new thread showing its current code (then the
    latest grades), so the second repair's SEARCH lines are really in the file."""
    unmet = json.dumps({"requirements": [
        {"id": r, "verdict": "unmet", "evidence": [], "reason": "no momentum 0.9"}
        for r in ("R1", "R2", "R3")]})
    partial = ph.audit_answer("model.py", "partial", "self.momentum = 0.9")
    again = ("model.py\n<<<<<<< SEARCH\n        self.momentum = 0.9  # paper: R3\n=======\n"
             "        self.momentum = 0.9  # paper: R3\n        self.nesterov = False\n"
             ">>>>>>> REPLACE\n")
    model, opts, store = scripted(tmp_path, **{
        "audit:model.py": [unmet, partial, ph.audit_answer("model.py", "met",
                                                           "self.nesterov = False")],
        "repair:model.py": [REPAIR, again]})
    m = run_pipeline(opts.model_copy(update={"audit_rounds": 2}), model=model, store=store)
    assert [(r["round"], r["repaired"]) for r in m.requirements["rounds"]] == [
        (0, []), (1, ["model.py"]), (2, ["model.py"])]
    assert m.requirements["met"] == 5
    repairs = [h["messages"] for h in model.history
               if h["meta"]["stage"] == "repair" and h["meta"].get("file") == "model.py"]
    second = repairs[1]
    assert "self.momentum = 0.9  # paper: R3" in second[1]["content"]  # the current code
    assert second[2] == {"role": "assistant", "content": partial}  # the latest grades
    assert len(second) == 4 and "self.nesterov" in (opts.out / "repo" / "model.py").read_text()


def test_audit_rounds_zero_grades_without_repairing(tmp_path: Path) -> None:
    unmet = ph.audit_answer("model.py", "unmet")
    model, opts, store = scripted(tmp_path, **{"audit:model.py": unmet})
    opts = opts.model_copy(update={"audit_rounds": 0})
    m = run_pipeline(opts, model=model, store=store)
    assert asked(model, "repair") == []
    assert (m.requirements["met"], m.requirements["unmet"]) == (2, 3)
    assert (opts.out / "repo" / "model.py").read_text() == ph.CODE["model.py"]


def test_fabricated_evidence_never_counts_as_met(tmp_path: Path) -> None:
    lie = ph.audit_answer("model.py", "met", evidence="velocity = beta * velocity + grad")
    model, opts, store = scripted(tmp_path, **{"audit:model.py": lie})
    opts = opts.model_copy(update={"audit_rounds": 0})
    m = run_pipeline(opts, model=model, store=store)
    assert m.requirements["unmet"] == 3 and m.requirements["met"] == 2
    verdicts = json.loads((opts.out / "artifacts" / "audit" / "verdicts.json").read_text())
    r2 = next(r for r in verdicts["requirements"] if r["id"] == "R2")
    assert r2["verdict"] == "unmet" and r2["reason"].startswith("evidence not found")
    assert r2["judge_verdict"] == "met"


def test_check_grades_refuses_unknown_and_missing_ids_and_short_evidence() -> None:
    code = {"a.py": "def train(model):\n    return model.fit()\n"}
    ans = AuditAnswer.model_validate({"requirements": [
        {"id": "R1", "verdict": "met", "evidence": [{"file": "a.py", "quote": "model"}]}]})
    [g] = check_grades(ans, ["R1"], "a.py", code)
    assert g["verdict"] == "unmet"  # a one-word snippet proves nothing
    ans = AuditAnswer.model_validate({"requirements": [
        {"id": "R1", "verdict": "partial", "evidence": [
            {"file": "a.py", "quote": "return   model.fit()"}]}]})
    [g] = check_grades(ans, ["R1"], "a.py", code)
    assert g["verdict"] == "partial" and g["evidence"][0]["line"] == 2
    import pytest

    from papercoder.errors import FormatError
    with pytest.raises(FormatError, match="missing: R2"):
        check_grades(ans, ["R1", "R2"], "a.py", code)
    with pytest.raises(FormatError, match="not listed: R1"):
        check_grades(ans, ["R2"], "a.py", {"a.py": ""})


def test_markers_and_evidence_lines() -> None:
    code = {"m.py": "x = 1\n# paper: R3, R4\ny = 2  # paper: r7\n"}
    assert markers(code) == {"R3": [{"file": "m.py", "line": 2}],
                             "R4": [{"file": "m.py", "line": 2}],
                             "R7": [{"file": "m.py", "line": 3}]}
    assert find_line(code["m.py"], "y = 2  # paper") == 3 and find_line("abc", "zzzzzzzzz") is None


def test_repair_that_edits_another_file_is_sent_back(tmp_path: Path) -> None:
    other = REPAIR.replace("model.py\n<<<", "utils.py\n<<<")
    model, opts, store = scripted(tmp_path, **{
        "audit:model.py": [ph.audit_answer("model.py", "unmet"), ph.audit_answer("model.py")],
        "repair:model.py": [other, REPAIR]})
    m = run_pipeline(opts, model=model, store=store)
    calls = asked(model, "repair", "model.py")
    assert len(calls) == 2 and "Only model.py may be edited" in calls[1]
    assert m.requirements["met"] == 5


# -- sources and long papers -------------------------------------------------------------------
def test_addendum_is_a_source_of_quotes(tmp_path: Path) -> None:
    add = tmp_path / "addendum.md"
    add.write_text("Use a fixed seed of 1234 for every experiment.\n")
    extra = {"id": "R6", "category": "experiment", "statement": "Seed 1234.",
             "quote": "use a fixed seed of 1234 for every experiment", "section": "addendum"}
    model, opts, store = scripted(tmp_path, requirements=ph.requirements_answer(
        [*ph.REQUIREMENTS, extra]))
    opts = opts.model_copy(update={"addendum": add})
    m = run_pipeline(opts, model=model, store=store)
    assert "fixed seed of 1234" in asked(model, "requirements")[0]
    assert m.requirements["total"] == 6 and m.requirements["dropped"] == 0
    paper, script = ph.write_fixture(tmp_path)
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o",
                           str(tmp_path / "o2"), "-q", "--addendum", str(tmp_path / "nope.md"))
    assert code == 2 and "--addendum" in output


def test_long_paper_is_asked_in_section_groups_and_merged(tmp_path: Path) -> None:
    filler = " ".join(f"word{i}" for i in range(9000))
    text = ph.TINY_PAPER.replace("## 2 Experiments", f"## 1.5 Details\n\n{filler}\n\n"
                                 "## 2 Experiments")
    paper = tmp_path / "long.md"
    paper.write_text(text)
    parts = section_groups(load_paper(str(paper)))
    assert len(parts) >= 2 and all(p.label and p.text for p in parts)
    model = ScriptedModel(ph.script())  # every part answers the same five: merged to five
    opts = RunOptions(paper=str(paper), out=tmp_path / "out", quiet=True, stop_after="planning")
    m = run_pipeline(opts, model=model, store=Store(tmp_path / "s.db"))
    calls = [h for h in model.history if h["meta"]["stage"] == "requirements"]
    assert len(calls) == len(parts) and all(h["meta"].get("file") for h in calls)
    assert m.requirements["total"] == 5 and m.requirements["duplicates"] == 5 * (len(parts) - 1)
    assert m.requirements["parts"] == len(parts)


def test_requirement_of_a_file_that_was_not_written_is_unmet(tmp_path: Path) -> None:
    prose = "I will write data.py later."
    model, opts, store = scripted(tmp_path, **{"coding:data.py": prose})
    m = run_pipeline(opts, model=model, store=store)
    assert m.files["data.py"].status == "failed"
    verdicts = json.loads((opts.out / "artifacts" / "audit" / "verdicts.json").read_text())
    r4 = next(r for r in verdicts["requirements"] if r["id"] == "R4")
    assert (r4["verdict"], r4["reason"]) == ("unmet", "the files that implement it were not "
                                                      "written")
    assert m.requirements["unmet"] == 1 and asked(model, "audit", "data.py") == []


# -- eval --rubric auto -------------------------------------------------------------------------
def verdict(v: str) -> str:
    return json.dumps({"expectations": "The requirement in the code.",
                       "reality": f"model.py: {v}.", "verdict": v})


def test_eval_rubric_auto_counts_partial_as_half_and_weighs_categories_by_size(
        tmp_path: Path) -> None:
    """Through the CLI: the contract's leaves are graded met/partial/unmet (1, 0.5, 0) and a
    category weighs as many requirements as it has."""
    from tests import eval_helpers as eh

    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    reqs = [{"id": "R1", "category": "algorithm", "statement": "REQ-mom momentum update",
             "quote": "The update is v_{t+1} = β v_t + ∇L(w_t)", "section": "1 Method"},
            {"id": "R2", "category": "algorithm", "statement": "REQ-avg averaged iterate",
             "quote": "with learning rate η = 0.05 and momentum β = 0.9", "section": "1"},
            {"id": "R3", "category": "data", "statement": "REQ-data synthetic data",
             "quote": "Synthetic data: 1000 points in 5 dimensions", "section": "2"}]
    script = tmp_path / "judge.json"
    script.write_text(json.dumps({"requirements": ph.requirements_answer(reqs), "rules":
                                  eh.leaf_rules({"REQ-mom": verdict("partial"),
                                                 "REQ-avg": verdict("unmet"),
                                                 "REQ-data": verdict("met")})}))
    code, output = run_cli("--db", str(tmp_path / "s.db"), "eval", str(repo), "--paper",
                           str(eh.paper_file(tmp_path)), "--rubric", "auto", "-m",
                           f"scripted:{script}", "--yes")
    assert code == 0, output
    tree = json.loads((repo / "eval" / "rubric-scripted_judge.json" / "tree.json").read_text())
    cats = {n["id"]: n for n in tree["sub_tasks"]}
    leaves = {x["id"]: x["score"] for n in tree["sub_tasks"] for x in n["sub_tasks"]}
    assert leaves == {"R1": 0.5, "R2": 0.0, "R3": 1.0}
    assert "Verdict: partial" in cats["algorithm"]["sub_tasks"][0]["explanation"]
    # algorithm: (0.5 + 0) / 2 with weight 2; data: 1 with weight 1 -> (2 * 0.25 + 1) / 3
    assert (cats["algorithm"]["weight"], cats["algorithm"]["score"]) == (2, 0.25)
    assert (cats["data"]["weight"], cats["data"]["score"]) == (1, 1.0)
    assert abs(tree["score"] - 0.5) < 1e-9  # equal category weights would give 0.625
    summary = json.loads((repo / "eval" / "rubric-scripted_judge.json" / "summary.json")
                         .read_text())
    assert abs(summary["score"] - 0.5) < 1e-9 and summary["invalid_leaves"] == 0


def test_eval_rubric_auto_grades_any_repository_against_the_contract(tmp_path: Path) -> None:
    from tests import eval_helpers as eh

    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    reqs = [{"id": "R1", "category": "algorithm", "statement": "REQ-mom momentum update",
             "quote": "The update is v_{t+1} = β v_t + ∇L(w_t)", "section": "1 Method"},
            {"id": "R2", "category": "algorithm", "statement": "REQ-avg averaged iterate",
             "quote": "with learning rate η = 0.05 and momentum β = 0.9", "section": "1"},
            {"id": "R3", "category": "data", "statement": "REQ-data synthetic data",
             "quote": "Synthetic data: 1000 points in 5 dimensions", "section": "2"},
            FABRICATED]
    rules = eh.leaf_rules({"REQ-mom": verdict("met"), "REQ-avg": verdict("unmet"),
                           "REQ-data": verdict("met")})
    judge = ScriptedModel({"requirements": ph.requirements_answer(reqs), "rules": rules})
    store = Store(tmp_path / "s.db")
    s = eh.run_eval(repo, judge, store, tmp_path, rubric=Path("auto"))
    # algorithm (weight 2): 1/2; data (weight 1): 1 -> (2 * 0.5 + 1) / 3
    assert s["mode"] == "rubric" and s["leaves"] == 3
    assert abs(s["score"] - 2 / 3) < 1e-9
    tree = json.loads((repo / "eval" / "rubric-scripted" / "tree.json").read_text())
    assert [n["id"] for n in tree["sub_tasks"]] == ["algorithm", "data"]
    assert "MLP" not in json.dumps(tree)  # the fabricated requirement was dropped
    extractions = [h for h in judge.history if h["meta"]["stage"] == "requirements"]
    assert len(extractions) == 2  # sent back once for the fabricated quote
    # a second grading of the same repository: the contract comes from the cache
    judge2 = ScriptedModel({"requirements": "not asked", "rules": rules})
    eh.run_eval(repo, judge2, store, tmp_path, rubric=Path("auto"))
    assert [h for h in judge2.history if h["meta"]["stage"] == "requirements"] == []


def test_eval_rubric_auto_reuses_the_contract_a_run_extracted(tmp_path: Path) -> None:
    from tests import eval_helpers as eh

    model, opts, store = scripted(tmp_path)
    run_pipeline(opts.model_copy(update={"stop_after": "planning"}), model=model, store=store)
    (opts.out / "artifacts" / "requirements.json").unlink()  # not read from the folder
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    judge = ScriptedModel({"rules": eh.leaf_rules({})}, name=model.name)
    s = asyncio.run(evaluate_target(repo, paper=load_paper(str(tmp_path / "paper.md")),
                                    judge=judge, store=store,
                                    options=EvalOptions(rubric=Path("auto"))))
    assert [h for h in judge.history if h["meta"]["stage"] == "requirements"] == []
    assert s["leaves"] == 5  # the run's five requirements, answered from the cache


def test_a_linked_contract_in_out_is_refused_and_never_read(tmp_path: Path) -> None:
    """artifacts/requirements.json as a link to a file outside OUT: one sentence, exit 2, and
    the file behind the link is neither read into a prompt nor written."""
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    (out / "artifacts").mkdir(parents=True)
    outside = tmp_path / "outside.json"
    outside.write_text('{"requirements": []}')
    (out / "artifacts" / "requirements.json").symlink_to(outside)
    code, output = run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")
    assert code == 2 and "Traceback" not in output, output
    assert "link" in output.lower()
    assert outside.read_text() == '{"requirements": []}'


def test_markup_in_a_requirement_is_shown_as_text_in_the_report(tmp_path: Path) -> None:
    """A model-written statement and reason full of markup are escaped in Paper <-> code."""
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    assert run_cli("run", str(paper), "-m", f"scripted:{script}", "-o", str(out), "-q")[0] == 0
    path = out / "artifacts" / "audit" / "verdicts.json"  # what the report's rows come from
    verdicts = json.loads(path.read_text())
    verdicts["requirements"][0]["statement"] = '<script>alert(1)</script><img src=x onerror=1>'
    path.write_text(json.dumps(verdicts))
    assert run_cli("report", str(out))[0] == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)" in html
