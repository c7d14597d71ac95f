"""`papercoder eval` hides nothing silently: a repository's own eval/ folder is shown, only
papercoder's own result folders are left out (and listed, with the reason, on the console and
in summary.json), and the code cells of Jupyter notebooks count as code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from papercoder.evaluate import files as F
from tests import eval_helpers as eh
from tests.fakes.openai_server import FakeOpenAIServer, message_text

ROOT = Path(__file__).resolve().parents[1]
JUDGE = "openai/gpt-4.1-mini"
RESULTS = "eval/reference-free-openai_gpt-4.1-mini"


def _responder(body: dict) -> str:
    return eh.score_answer(4)


def _eval(repo: Path, tmp: Path, srv: FakeOpenAIServer) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "papercoder", "--db", str(tmp / "s.db"), "eval", str(repo),
         "--paper", str(eh.paper_file(tmp)), "-m", JUDGE, "--base-url", srv.url, "-n", "1",
         "--yes"], env=env, capture_output=True, text=True, timeout=180,
        stdin=subprocess.DEVNULL)


def _prompts(srv: FakeOpenAIServer) -> str:
    return "\n".join(message_text(r.body) for r in srv.requests if r.method == "POST")


def test_a_repositorys_own_eval_folder_is_shown_and_only_our_results_left_out(
        tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", dict(eh.REAL_CODE, **{
        "eval/mmlu_eval.py": "def evaluate_mmlu(model):\n    return model.score('mmlu')\n",
        "eval/requirements.txt": "evaluate-harness-xyz==1.0\n"}))
    with FakeOpenAIServer(_responder) as srv:
        first = _eval(repo, tmp_path, srv)
        assert first.returncode == 0, first.stderr
        prompt = _prompts(srv)
        assert "eval/mmlu_eval.py" in prompt and "def evaluate_mmlu" in prompt
        assert "eval/requirements.txt" in prompt and "evaluate-harness-xyz" in prompt
        # The second evaluation finds the first one's results inside the repository: left
        # out, and said so on the console and in the record.
        second = _eval(repo, tmp_path, srv)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in first.stderr + second.stderr
    summary = json.loads((repo / RESULTS / "summary.json").read_text())
    assert {"path": RESULTS + "/", "reason": "papercoder's own evaluation results"} in \
        summary["files_left_out"]
    assert "eval/mmlu_eval.py" in summary["files_shown"]
    assert "Not shown to the judge" in second.stdout
    assert f"{RESULTS}/: papercoder's own evaluation results" in second.stdout


NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5, "metadata": {},
    "cells": [
        {"cell_type": "markdown", "source": ["# Momentum SGD\n", "Averaged iterates."]},
        {"cell_type": "code", "source": ["import numpy as np\n", "\n",
                                         "def sgd_momentum_nb(x, y, lr=0.05, beta=0.9):\n",
                                         "    w = np.zeros(x.shape[1])\n", "    return w\n"],
         "outputs": [{"output_type": "stream", "text": "OUTPUT-NOT-CODE\n"}]},
        {"cell_type": "code", "source": "w = sgd_momentum_nb(np.ones((4, 2)), np.ones(4))\n"},
    ],
}


def test_a_notebook_repository_is_judged_on_its_code_cells(tmp_path: Path) -> None:
    repo = eh.write_repo(tmp_path / "repo", {
        "README.md": "# Momentum SGD\n\nOpen `train.ipynb`.\n",
        "train.ipynb": json.dumps(NOTEBOOK),
        # Hostile notebooks: left out with the reason, never a traceback.
        "deep.ipynb": '{"cells": ' + "[" * 100_000 + "]" * 100_000 + "}",
        "broken.ipynb": "{not json",
        "odd.ipynb": json.dumps({"cells": [5, None, {"cell_type": "code", "source": 7}]}),
    })
    with FakeOpenAIServer(_responder) as srv:
        p = _eval(repo, tmp_path, srv)
        prompt = _prompts(srv)
    assert p.returncode == 0, p.stderr
    assert "Traceback" not in p.stderr
    summary = json.loads((repo / RESULTS / "summary.json").read_text())
    assert summary["guard"] is None and summary["score"] == 4.0  # judged, not the floor
    assert "def sgd_momentum_nb" in prompt and "w = sgd_momentum_nb(" in prompt
    assert "OUTPUT-NOT-CODE" not in prompt and "Averaged iterates" not in prompt
    left = {x["path"]: x["reason"] for x in summary["files_left_out"]}
    assert "nested too deeply" in left["deep.ipynb"]
    assert "could not be read" in left["broken.ipynb"]
    assert left["odd.ipynb"] == "notebook without code cells"
    assert "deep.ipynb: notebook that could not be read" in p.stdout


def test_a_notebook_too_large_is_left_out_unread(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = eh.write_repo(tmp_path / "repo", {"big.ipynb": json.dumps(NOTEBOOK),
                                             "main.py": "print(1)\n"})
    monkeypatch.setattr(F, "MAX_NOTEBOOK_BYTES", 100)
    files, left = F.collect(repo)
    assert [f.path for f in files] == ["main.py"]
    assert left[0].path == "big.ipynb" and "not read" in left[0].reason


def test_an_output_folders_repo_hides_nothing_that_looks_like_our_results(
        tmp_path: Path) -> None:
    """papercoder writes an output folder's results beside repo/, so a model-written
    repo/eval/<mode>-<judge>/ with a summary.json is the repository's code, shown."""
    from papercoder.models.scripted import ScriptedModel
    from papercoder.store import Store

    out = tmp_path / "out"
    eh.write_repo(out / "repo", dict(eh.REAL_CODE, **{
        "eval/reference-free-x/summary.json": "{}",
        "eval/reference-free-x/score.py": "def score_run(r):\n    return r\n"}))
    (out / "run.json").write_text(json.dumps({"run_id": "x"}))
    s = eh.run_eval(out, ScriptedModel({"eval": eh.score_answer(4)}),
                    Store(tmp_path / "s.db"), tmp_path, samples=1)
    assert "eval/reference-free-x/score.py" in s["files_shown"]
    assert not any("reference-free-x" in x["path"] for x in s["files_left_out"])
