"""Reference-free / reference-based scoring: guards, validation, windows, cache, cost."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from papercoder.errors import BudgetExceeded, PapercoderError
from papercoder.evaluate import EvalOptions, evaluate_target
from papercoder.evaluate import files as F
from papercoder.evaluate.estimate import (
    GRADE_OUTPUT,
    RANK_OUTPUT,
    SCORE_OUTPUT,
    estimate_rubric,
    estimate_scoring,
)
from papercoder.evaluate.guards import analyse, guard
from papercoder.models import get_model
from papercoder.models.scripted import ScriptedModel
from papercoder.paper import load_paper
from papercoder.store import Store
from tests import eval_helpers as eh
from tests.fakes.openai_server import FakeOpenAIServer, message_text

ROOT = Path(__file__).resolve().parents[1]


def review(k: int) -> str:
    return f"independent review number {k};"


def exchanges(store: Store) -> int:
    return len(store._conn.execute("SELECT id FROM exchanges").fetchall())


# -- guards ---------------------------------------------------------------------------------
@pytest.mark.parametrize("files,kind", [
    ({}, "empty"),
    ({"README.md": "# Great\n\nImplements everything.\n", "config.yaml": "lr: 0.1\n"}, "empty"),
    ({"main.py": '"""Nothing yet."""\nimport os\n'}, "empty"),
    (eh.STUB_CODE, "all-stubs"),
])
def test_guards_score_the_floor_without_a_model_call(tmp_path: Path, files: dict,
                                                     kind: str) -> None:
    repo = eh.write_repo(tmp_path / "repo", files)
    repo.mkdir(exist_ok=True)
    judge = ScriptedModel(["never used"])
    store = Store(tmp_path / "s.db")
    s = eh.run_eval(repo, judge, store, tmp_path)
    assert s["guard"] == kind and s["score"] == 1.0
    assert judge.history == [] and exchanges(store) == 0
    assert s["calls"] == 0
    out = repo / "eval" / "reference-free-scripted"
    assert json.loads((out / "summary.json").read_text())["guard"] == kind
    assert kind in (out / "report.md").read_text()
    # rubric mode: every leaf 0, still no call
    s2 = eh.run_eval(repo, judge, store, tmp_path, rubric=eh.rubric_file(tmp_path))
    assert s2["guard"] == kind and s2["score"] == 0.0 and judge.history == []


def test_real_code_and_script_style_code_are_not_guarded() -> None:
    files = [F.RepoFile(p, "source" if p.endswith(".py") else "readme", t, len(t))
             for p, t in eh.REAL_CODE.items() if p != "config.yaml"]
    facts = analyse(files)
    assert guard(facts) is None and facts.functions == 2 and facts.stub_functions == 0
    script = ("import numpy as np\n\ndef helper():\n    pass\n\n"
              "x = np.random.randn(10)\nw = np.zeros(3)\nfor i in range(10):\n    w += x[i]\n"
              "print(w)\nnp.save('w.npy', w)\nresult = w.sum()\n")
    facts = analyse([F.RepoFile("train.py", "source", script, len(script))])
    assert facts.stub_functions == 1 and guard(facts) is None
    stubs = analyse([F.RepoFile(p, "source", t, len(t)) for p, t in eh.STUB_CODE.items()
                     if p.endswith(".py")])
    assert stubs.functions == 4 and stubs.stub_functions == 4 and stubs.stub_share == 1.0


def test_selection_leaves_out_environments_caches_data_and_binaries(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", {
        **eh.REAL_CODE, ".venv/lib/site.py": "x = 1\n", "__pycache__/m.py": "x\n",
        "data/loader.py": "def load():\n    return 1\n", "data/train.csv": "a,b\n1,2\n",
        "weights.bin": "x", "notes.docx": "x", "run.sh": "python main.py\n"})
    (repo / "blob.py").write_bytes(b"\x00\x01binary")
    os.symlink("/etc/passwd", repo / "leak.py")
    files, left = F.collect(repo)
    paths = {f.path for f in files}
    assert paths == {"README.md", "config.yaml", "model.py", "main.py", "data/loader.py",
                     "run.sh"}
    reasons = {x.path: x.reason for x in left}
    assert reasons[".venv/"] == "environment" and reasons["__pycache__/"] == "cache"
    assert reasons["data/train.csv"] == "data or binary"
    assert reasons["blob.py"] == "data or binary"
    assert "symbolic link" in reasons["leak.py"]


# -- scoring --------------------------------------------------------------------------------
def test_samples_scores_and_critiques(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    rules = [{"contains": review(k), "answer": eh.score_answer(s)}
             for k, s in ((1, 5), (2, 4), (3, 4), (4, 3))]
    judge = ScriptedModel({"rules": rules})
    s = eh.run_eval(repo, judge, Store(tmp_path / "s.db"), tmp_path, samples=4)
    assert s["score"] == pytest.approx(4.0) and s["valid_samples"] == 4
    assert sorted(s["samples"]) == [3.0, 4.0, 4.0, 5.0]
    assert s["spread"]["min"] == 3 and s["spread"]["max"] == 5
    assert s["spread"]["std"] == pytest.approx(0.7071, abs=1e-3)
    samples = json.loads((repo / "eval/reference-free-scripted/samples.json").read_text())
    assert [x["index"] for x in samples] == [1, 2, 3, 4]
    assert samples[0]["critiques"][0]["severity"] == "low"
    prompt = judge.history[0]["messages"][-1]["content"]
    assert "def sgd_momentum" in prompt and "stubs" in prompt
    assert "high-severity failure" in judge.history[0]["messages"][0]["content"]


def test_malformed_answers_make_samples_invalid(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    rules = [
        {"contains": review(1), "answer": "I think it is a 4 out of 5 {not json"},
        {"contains": review(2), "answer": eh.score_answer(7)},
        {"contains": review(3), "answer": eh.score_answer(None)},
        {"contains": review(4), "answer": eh.score_answer(0)},
        {"contains": review(5), "answer": eh.score_answer(2)},
    ]
    judge = ScriptedModel({"rules": rules})
    s = eh.run_eval(repo, judge, Store(tmp_path / "s.db"), tmp_path, samples=5, repairs=1)
    assert s["valid_samples"] == 1 and s["score"] == 2.0 and s["samples"] == [2.0]
    samples = json.loads((repo / "eval/reference-free-scripted/samples.json").read_text())
    assert [x["valid"] for x in samples] == [False, False, False, False, True]
    assert all(x["error"] and x["score"] is None for x in samples[:4])
    assert len(judge.history) == 4 * 2 + 1  # each bad answer was sent back once


def test_a_repair_that_succeeds_keeps_the_sample(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    judge = ScriptedModel({"rules": [{"contains": review(1),
                                      "answer": [eh.score_answer(9), eh.score_answer(3)]}]})
    s = eh.run_eval(repo, judge, Store(tmp_path / "s.db"), tmp_path, samples=1)
    assert s["score"] == 3.0
    assert "less than or equal to 5" in judge.history[1]["messages"][-1]["content"]


def test_all_samples_invalid_is_a_clear_message(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    judge = ScriptedModel({"eval": "no idea"})
    s = eh.run_eval(repo, judge, Store(tmp_path / "s.db"), tmp_path, samples=3, repairs=0)
    assert s["score"] is None and s["valid_samples"] == 0 and s["samples"] == []
    assert s["spread"] == {"std": 0.0, "min": 0.0, "max": 0.0}
    assert "None of the 3 judge samples was valid" in s["error"]
    out = repo / "eval/reference-free-scripted"
    assert json.loads((out / "summary.json").read_text())["score"] is None
    assert "None of the 3" in (out / "report.md").read_text()


def test_repository_larger_than_the_window_says_what_was_left_out(tmp_path: Path) -> None:
    big = {f"pkg/module_{i:02d}.py": "def f():\n" + "    x = 1\n" * 400 for i in range(30)}
    repo = eh.write_repo(tmp_path / "repo", {**eh.REAL_CODE, **big})
    judge = ScriptedModel({"eval": eh.score_answer(3)})
    s = eh.run_eval(repo, judge, Store(tmp_path / "s.db"), tmp_path, samples=1,
                    context_window=12000)
    assert s["score"] == 3.0
    left = {x["path"]: x["reason"] for x in s["files_left_out"]}
    assert len(left) >= 20
    assert all("did not fit" in r for p, r in left.items() if p.startswith("pkg/"))
    assert {"README.md", "model.py", "main.py"} <= set(s["files_shown"])  # ranked first
    prompt = judge.history[0]["messages"][-1]["content"]
    assert "did not fit the context window" in prompt
    assert sum(len(m["content"]) for m in judge.history[0]["messages"]) < 12000 * 4


def test_reference_based_shows_both_repositories(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    gold = eh.write_repo(tmp_path / "gold", {"optim.py": "def gold_update(w):\n    return w\n"})
    judge = ScriptedModel({"eval": eh.score_answer(4, critiques=[{
        "file": "model.py", "function": "sgd_momentum", "gold_file": "optim.py",
        "gold_function": "gold_update", "severity": "HIGH", "problem": "differs"}])})
    s = eh.run_eval(repo, judge, Store(tmp_path / "s.db"), tmp_path, samples=2, ref=gold)
    assert s["mode"] == "reference-based" and s["score"] == 4.0
    assert s["gold_files_shown"] == ["optim.py"]
    prompt = judge.history[0]["messages"][-1]["content"]
    assert "<gold_repository>" in prompt and "def gold_update" in prompt
    samples = json.loads((repo / "eval/reference-based-scripted/samples.json").read_text())
    assert samples[0]["critiques"][0]["severity"] == "high"
    assert samples[0]["critiques"][0]["gold_function"] == "gold_update"


def test_rerun_pays_nothing(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    store = Store(tmp_path / "s.db")
    rules = [{"contains": review(k), "answer": eh.score_answer(k % 5 + 1)} for k in range(1, 4)]
    judge = ScriptedModel({"rules": rules})
    first = eh.run_eval(repo, judge, store, tmp_path, samples=3)
    assert len(judge.history) == 3 and first["cache_hits"] == 0
    assert len(set(first["samples"])) == 3  # samples are distinct requests
    again = eh.run_eval(repo, judge, store, tmp_path, samples=3)
    assert len(judge.history) == 3  # no new model call
    assert again["calls"] == 3 and again["cache_hits"] == 3 and again["cost_usd"] == 0
    assert again["samples"] == first["samples"]
    # rubric grading too
    judge2 = ScriptedModel({"rules": eh.leaf_rules({"REQ-a1": 1, "REQ-a2": 0})})
    r1 = eh.run_eval(repo, judge2, store, tmp_path, rubric=eh.rubric_file(tmp_path))
    n = len(judge2.history)
    r2 = eh.run_eval(repo, judge2, store, tmp_path, rubric=eh.rubric_file(tmp_path))
    assert len(judge2.history) == n and r2["cache_hits"] == r2["calls"] == n
    assert r2["score"] == r1["score"]
    stages = store._conn.execute("SELECT DISTINCT stage FROM exchanges").fetchall()
    assert [tuple(x) for x in stages] == [("eval",)]


# -- cost estimate --------------------------------------------------------------------------
def test_cost_estimate_arithmetic() -> None:
    e = estimate_rubric("openai/gpt-4.1", 10, 1000, 5000)
    assert e.calls == 20
    assert e.input_tokens == 60_000 and e.output_tokens == 10 * (RANK_OUTPUT + GRADE_OUTPUT)
    assert e.usd == pytest.approx((60_000 * 2.0 + e.output_tokens * 8.0) / 1e6)
    s = estimate_scoring("anthropic/claude-sonnet-4-6", 8, 20_000)
    assert s.input_tokens == 160_000 and s.output_tokens == 8 * SCORE_OUTPUT
    assert s.usd == pytest.approx((160_000 * 3.0 + 8 * SCORE_OUTPUT * 15.0) / 1e6)
    assert estimate_scoring("openai/some-unknown-model", 1, 10).usd is None
    # with the provider caching the 8,000-token prefix: written once, read three times
    c = estimate_scoring("openai/gpt-4.1", 4, 10_000, 8_000)
    assert c.usd_cached == pytest.approx((8_000 * 2.0 + 8_000 * 2.0 + 24_000 * 0.5
                                          + 4 * SCORE_OUTPUT * 8.0) / 1e6)
    assert "if the provider caches the paper" in c.describe()
    assert estimate_scoring("scripted:x", 3, 10).usd == 0


def test_estimate_is_shown_before_any_call_and_can_cancel(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    judge = ScriptedModel({"rules": eh.leaf_rules({"REQ-a1": 1, "REQ-a2": 1})})
    seen = []

    def confirm(est):  # noqa: ANN001, ANN202
        seen.append(est)
        return False

    with pytest.raises(PapercoderError, match="cancelled"):
        eh.run_eval(repo, judge, Store(tmp_path / "s.db"), tmp_path,
                    rubric=eh.rubric_file(tmp_path), confirm=confirm)
    assert judge.history == [] and seen[0].calls == 4 and "2 leaves" in seen[0].describe()


# -- mode 3 and structural facts from verify --------------------------------------------------
def test_output_folder_reports_verify_figures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    eh.write_repo(out / "repo", eh.REAL_CODE)
    (out / "logs").mkdir()
    (out / "logs" / "smoke.log").write_text("step 1 loss 0.5\n")
    verify = {
        "static": {"findings": [{"file": "main.py", "line": 2, "kind": "undefined-name",
                                 "message": "undefined name 'sgd'"}]},
        "smoke": {"passed": False, "commands": [{"cmd": "python main.py", "exit": 1,
                                                 "seconds": 1.0, "timed_out": False,
                                                 "outputs_ok": False, "seed": 0,
                                                 "log": "logs/smoke.log"}]},
        "executability": {"lines_changed": 3, "total_lines": 40, "percent": 7.5, "rounds": 1,
                          "passed": True}}
    (out / "run.json").write_text(json.dumps({"run_id": "x", "verify": verify}))
    judge = ScriptedModel({"eval": eh.score_answer(4)})
    s = eh.run_eval(out, judge, Store(tmp_path / "s.db"), tmp_path, samples=1)
    assert s["executability"] == verify["executability"]
    assert (out / "eval/reference-free-scripted/summary.json").is_file()
    assert not (out / "repo" / "eval").exists()
    prompt = judge.history[0]["messages"][-1]["content"]
    assert "undefined name 'sgd'" in prompt and "smoke run: FAILED" in prompt
    assert "7.5%" in (out / "eval/reference-free-scripted/report.md").read_text()
    # rubric --all-categories takes the log from verify's smoke run
    judge2 = ScriptedModel({"rules": eh.leaf_rules({"REQ-a1": 1, "REQ-a2": 1, "REQ-b1": 0,
                                                     "REQ-b2": 0})})
    s2 = eh.run_eval(out, judge2, Store(tmp_path / "s2.db"), tmp_path,
                     rubric=eh.rubric_file(tmp_path), all_categories=True)
    assert s2["no_log_leaves"] == 0
    b2 = [h for h in judge2.history if "TO GRADE: REQ-b2" in h["messages"][-1]["content"]]
    assert "step 1 loss 0.5" in b2[0]["messages"][-1]["content"]


def test_smoke_logs_and_run_json_are_never_read_through_links(tmp_path: Path) -> None:
    from papercoder.evaluate.target import read_verify, reproduction_log, resolve_target

    out = tmp_path / "out"
    eh.write_repo(out / "repo", eh.REAL_CODE)
    secret = tmp_path / "secret.log"
    secret.write_text("TOP-SECRET\n")
    (out / "logs").mkdir()
    (out / "logs" / "ok.log").write_text("loss 0.5\n")
    os.symlink(secret, out / "logs" / "link.log")
    os.symlink(tmp_path, out / "linked")
    cmds = [{"cmd": c, "exit": 0, "log": rel} for c, rel in (
        ("a", "logs/link.log"), ("b", "linked/secret.log"), ("c", "../secret.log"),
        ("d", str(secret)), ("e", "logs/ok.log"), ("f", "logs/missing.log"))]
    (out / "run.json").write_text(json.dumps({"verify": {"smoke": {"commands": cmds}}}))
    log, where = reproduction_log(resolve_target(out), None)
    assert where == "verify's smoke run" and log is not None
    assert "TOP-SECRET" not in log and "loss 0.5" in log and "$ e" in log
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "run.json").write_text(json.dumps({"verify": {"static": {}}}))
    (out / "run.json").unlink()
    os.symlink(elsewhere / "run.json", out / "run.json")
    seen = read_verify(elsewhere)
    assert read_verify(out) is None and seen is not None and seen.to_dict() == {"static": {}}


def test_symlinked_result_folder_is_refused(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, repo / "eval")
    judge = ScriptedModel({"eval": eh.score_answer(4)})
    with pytest.raises(PapercoderError, match="symbolic link"):
        eh.run_eval(repo, judge, Store(tmp_path / "s.db"), tmp_path, samples=1)
    assert list(elsewhere.iterdir()) == []


# -- the real backend path ------------------------------------------------------------------
def _responder(body: dict) -> str:
    text = message_text(body)
    if "most likely to show whether" in text:
        return json.dumps({"files": ["model.py"]})
    if "TO GRADE:" in text:
        return eh.leaf_answer(1 if "TO GRADE: REQ-a1" in text else 0)
    return eh.score_answer(5 if "review number 1;" in text else 3)


def test_end_to_end_through_a_loopback_openai_server(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    paper = load_paper(eh.paper_file(tmp_path))
    store = Store(tmp_path / "s.db")
    with FakeOpenAIServer(_responder) as srv:
        judge = get_model("openai/gpt-4.1-mini", base_url=srv.url)
        s = asyncio.run(evaluate_target(repo, paper=paper, judge=judge, store=store,
                                        options=EvalOptions(samples=2)))
        posts = [r for r in srv.requests if r.method == "POST"]
        assert len(posts) == 2
        assert posts[0].body["response_format"]["type"] == "json_schema"
        assert s["score"] == 4.0 and s["cost_usd"] is not None and s["cost_usd"] > 0
        r = asyncio.run(evaluate_target(repo, paper=paper, judge=judge, store=store,
                                        options=EvalOptions(rubric=eh.rubric_file(tmp_path),
                                                            concurrency=2)))
        assert r["score"] == pytest.approx(1 / 3)
        assert len([x for x in srv.requests if x.method == "POST"]) == 2 + 4
        assert srv.max_concurrency <= 2  # --concurrency bounds the calls in flight
        # --max-cost stops before the first call that would overspend
        with pytest.raises(BudgetExceeded):
            asyncio.run(evaluate_target(repo, paper=paper, judge=judge, store=store,
                                        options=EvalOptions(samples=3, max_cost=1e-7,
                                                            use_cache=False)))


def test_cli_prints_a_table_and_fails_cleanly(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    paper = eh.paper_file(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), COLUMNS="200")
    with FakeOpenAIServer(_responder) as srv:
        base = [sys.executable, "-m", "papercoder", "--db", str(tmp_path / "s.db"), "eval",
                str(repo), "--paper", str(paper), "-m", "openai/gpt-4.1-mini", "--base-url",
                srv.url]
        p = subprocess.run(base + ["-n", "2", "--yes"], env=env, capture_output=True,
                           text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, p.stderr
        assert "valid samples" in p.stdout and "4.000" in p.stdout
        assert "Estimate:" in p.stderr
        # not a terminal: one progress line per judge answer instead of a silent display
        assert "judge samples: 0/2" in p.stderr and "judge samples: 2/2" in p.stderr
        # no --yes and no terminal: refused before any call
        n = len(srv.requests)
        p = subprocess.run(base + ["-n", "3", "--rubric", str(eh.rubric_file(tmp_path))],
                           env=env, capture_output=True, text=True, timeout=120,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 2 and "pass --yes" in p.stderr and "Traceback" not in p.stderr
        assert len(srv.requests) == n
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    p = subprocess.run(base + ["--rubric", str(bad), "--yes"], env=env, capture_output=True,
                       text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 2 and "not readable JSON" in p.stderr and "Traceback" not in p.stderr


def test_a_relative_target_is_recorded_as_an_absolute_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`papercoder runs` must tell eval runs apart from any working directory."""
    eh.write_repo(tmp_path / "repo", eh.REAL_CODE)
    rules = [{"contains": review(k), "answer": eh.score_answer(4)} for k in (1, 2)]
    store = Store(tmp_path / "s.db")
    monkeypatch.chdir(tmp_path)
    eh.run_eval(Path("repo"), ScriptedModel({"rules": rules}), store, tmp_path, samples=2)
    run = store.runs(1)[0]
    assert run.command == "eval" and run.out_dir == str(
        tmp_path / "repo" / "eval" / "reference-free-scripted")
