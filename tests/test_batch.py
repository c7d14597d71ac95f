"""`papercoder batch`: inputs, per-paper folders and stores, failures, resume after kill -9,
the summary, and the PaperBench harness's table."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from papercoder.batch import BatchOptions, discover, run_batch
from papercoder.batch.paperbench import bench_items, render_report, run_paperbench
from papercoder.cli import app
from papercoder.errors import ConfigError
from tests import pipeline_helpers as ph
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.server import Reply

ROOT = Path(__file__).resolve().parents[1]

TEX = r"""\documentclass{article}
\title{Momentum Averaged Linear Regression}
\begin{document}
\maketitle
\section{Method}
The update is $v_{t+1} = \beta v_t + \nabla L(w_t)$ with learning rate $0.05$.
\begin{equation} \bar w_T = \frac{1}{T}\sum_t w_t \end{equation}
\section{Experiments}
Synthetic data, 1000 points in 5 dimensions.
\end{document}
"""


def _papers(root: Path) -> Path:
    from tests.fixtures_paper import make_pdf

    papers = root / "papers"
    papers.mkdir()
    (papers / "alpha.md").write_text(ph.TINY_PAPER)
    (papers / "beta.tex").write_text(TEX)
    make_pdf(papers / "gamma.pdf")
    bench = papers / "delta"
    bench.mkdir()
    (bench / "paper.md").write_text(ph.TINY_PAPER.replace("Momentum", "Heavy-ball"))
    (bench / "rubric.json").write_text(json.dumps({"id": "root", "requirements": "all",
                                                   "weight": 1, "sub_tasks": []}))
    (bench / "addendum.md").write_text("Use 300 steps, not 200.")
    (papers / "[bold red]empty.md").write_text("   \n")  # fails: no text
    (papers / "notes.xyz").write_text("not a paper")  # ignored
    return papers


def _exchanges(db: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT status, request FROM exchanges").fetchall()
    finally:
        con.close()


def test_mixed_folder_one_failing_paper_and_the_summary(tmp_path: Path) -> None:
    papers = _papers(tmp_path)
    _, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["batch", str(papers), "-m", f"scripted:{script}", "-o",
                                 str(out), "-q", "--workers", "3"])
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "summary.json").read_text())
    rows = {p["slug"]: p for p in doc["papers"]}
    assert set(rows) == {"alpha", "beta", "gamma", "delta", "bold_red_empty"}
    for slug in ("alpha", "beta", "gamma", "delta"):
        row = rows[slug]
        assert row["status"] == "done", row
        assert (row["files_written"], row["files_total"]) == (4, 4)
        assert row["ran"] is None and row["scores"] == {}
        assert isinstance(row["seconds"], float)
        # each paper's folder carries its own store, holding only its own exchanges
        assert (out / slug / "repo" / "main.py").read_text() == ph.CODE["main.py"]
        pipeline = [x for x in _exchanges(out / slug / "papercoder.db")  # verify's static
                    if "SEARCH/REPLACE" not in x[1]  # repair and the paper contract aside
                    and not ph.is_contract_call(x[1])]
        # beta.tex holds the quotes of R1 and R2 only: its contract drops R3-R5, so the
        # logic design naming them is sent back once (one more planning exchange)
        assert len(pipeline) == 12 + (slug == "beta")
        assert (out / slug / "report.html").is_file()
        assert f"{slug}/report.html" in (out / "index.html").read_text()
    bad = rows["bold_red_empty"]
    assert bad["status"] == "failed" and "is empty" in bad["error"]
    assert doc["totals"]["by_status"] == {"done": 4, "failed": 1}
    # the PaperBench folder's addendum reached the model
    assert any("Use 300 steps" in req for _, req in _exchanges(out / "delta" / "papercoder.db"))
    assert "Use 300 steps" not in json.dumps(_exchanges(out / "alpha" / "papercoder.db"))
    # csv: the same rows
    csv_rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert {c["slug"]: c["status"] for c in csv_rows} == {s: p["status"]
                                                          for s, p in rows.items()}
    # the table and the failure line are plain text: the file name's markup is shown as is
    assert "[bold red]empty.md is empty" in " ".join(r.output.split())
    for slug in rows:
        assert slug in r.output
    # the folder's own log holds only that paper's run
    log = (out / "alpha" / "papercoder.log").read_text()
    assert "alpha.md" in log and "beta.tex" not in log and "gamma.pdf" not in log


def test_all_papers_failing_exits_non_zero(tmp_path: Path) -> None:
    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "a.md").write_text(" ")
    r = CliRunner().invoke(app, ["batch", str(papers), "-m", "scripted:x.json", "-o",
                                 str(tmp_path / "out"), "-q"])
    assert r.exit_code == 1
    assert "Traceback" not in r.output


def _stage_failing_responder(body: dict[str, Any]) -> str:
    text = json.dumps(body.get("messages"))
    if "Nesterov" in text:
        return "I will not answer in any format you can use."
    return ph.respond(body)


def test_a_paper_the_model_fails_on_does_not_stop_the_others(tmp_path: Path) -> None:
    papers = tmp_path / "papers"
    papers.mkdir()
    for name in ("one", "two", "three"):
        (papers / f"{name}.md").write_text(ph.TINY_PAPER)
    (papers / "bad.md").write_text(ph.TINY_PAPER.replace("Momentum", "Nesterov"))
    with FakeOpenAIServer(_stage_failing_responder) as srv:
        opts = BatchOptions(model="openai/gpt-4.1-mini", base_url=srv.url,
                            out=tmp_path / "out", workers=2, quiet=True)
        rows = asyncio.run(run_batch(discover(papers), opts))
    by = {r["slug"]: r for r in rows}
    assert by["bad"]["status"] == "failed"
    assert "unusable" in by["bad"]["error"]
    assert [by[s]["status"] for s in ("one", "two", "three")] == ["done"] * 3
    assert all(by[s]["files_written"] == 4 for s in ("one", "two", "three"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [p["slug"] for p in summary["papers"]] == ["bad", "one", "three", "two"]


class _Gate:
    """Answers the first ``n`` chat requests, then holds every later one until released
    (the held ones are then refused), so the test knows exactly what was answered."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0
        self.lock = threading.Lock()
        self.open = threading.Event()
        self.held = 0
        self.closed = True

    def __call__(self, body: dict[str, Any]) -> Any:
        with self.lock:
            self.count += 1
            hold = self.closed and self.count > self.n
            if hold:
                self.held += 1
        if hold:
            self.open.wait(120)
            return Reply(status=503, body={"error": {"message": "gone"}})
        return ph.respond(body)


def _ok_exchanges(out: Path) -> int:
    n = 0
    for db in out.glob("*/papercoder.db"):
        try:
            n += sum(1 for status, _ in _exchanges(db) if status == "ok")
        except sqlite3.Error:
            pass
    return n


def test_resume_after_kill_9_pays_nothing_twice(tmp_path: Path) -> None:
    papers = tmp_path / "papers"
    papers.mkdir()
    for i in range(3):
        (papers / f"p{i}.md").write_text(ph.TINY_PAPER.replace("Momentum", f"Momentum {i}"))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    gate = _Gate(n=20)
    with FakeOpenAIServer(gate) as srv:
        cmd = [sys.executable, "-m", "papercoder", "batch", str(papers), "-m",
               "openai/gpt-4.1-mini", "--base-url", srv.url, "-o", str(out), "-q",
               "--workers", "3"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            # every answered request is stored and another is waiting: a clean cut
            while not (gate.held >= 1 and _ok_exchanges(out) >= gate.n):
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the batch did not get going"
                time.sleep(0.05)
            os.killpg(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
            gate.open.set()
            gate.closed = False
        first = [r for r in list(srv.requests) if r.method == "POST"]
        answered = {json.dumps(r.body, sort_keys=True) for r in first[:gate.n]}
        assert len(answered) == gate.n
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        again = [json.dumps(r.body, sort_keys=True) for r in srv.requests[len(first):]
                 if r.method == "POST"]
    assert again and not set(again) & answered, "an answered call was paid for twice"
    summary = json.loads((out / "summary.json").read_text())
    assert [p["status"] for p in summary["papers"]] == ["done"] * 3
    assert all(p["files_written"] == 4 for p in summary["papers"])
    # a third run finds everything done and sends nothing
    n = len(srv.requests)
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0
    assert len(srv.requests) == n


# -- inputs -----------------------------------------------------------------------------------
def test_a_list_of_papers_and_arxiv_ids(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text(ph.TINY_PAPER)
    sub = tmp_path / "bench"
    sub.mkdir()
    (sub / "paper.md").write_text(ph.TINY_PAPER)
    (sub / "rubric.json").write_text("{}")
    lst = tmp_path / "papers.txt"
    lst.write_text("# reading list\n\na.md\n1706.03762\narxiv:2401.00001v2\nbench\n"
                   "https://arxiv.org/abs/1810.04805\na.md\n")
    items = discover(lst)
    assert [i.slug for i in items] == ["a", "1706.03762", "2401.00001v2", "bench",
                                       "1810.04805", "a-2"]
    assert items[1].source == "arxiv:1706.03762"
    assert items[3].rubric == sub / "rubric.json"
    lst.write_text("a.md\nno/such/paper.pdf\n")
    with pytest.raises(ConfigError, match="Line 2"):
        discover(lst)


def test_bad_inputs_are_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "p.md").write_text(ph.TINY_PAPER)
    for arg, words in ((tmp_path / "missing", "does not exist"),
                       (tmp_path / "empty", "holds no papers"),
                       (tmp_path / "p.md", "single paper")):
        r = CliRunner().invoke(app, ["batch", str(arg), "-m", "scripted:x", "-o",
                                     str(tmp_path / "o")])
        assert r.exit_code == 2, r.output
        assert words in r.output and "Traceback" not in r.output


def test_paperbench_end_to_end_through_the_real_evaluate_stage(tmp_path: Path) -> None:
    """The harness generates each (paper, seed), grades it with the real evaluate stage on
    the folder's rubric (a scripted judge answers per requirement), and tabulates."""
    from tests import eval_helpers as eh

    papers = _papers(tmp_path)
    (papers / "delta" / "rubric.json").write_text(json.dumps(eh.RUBRIC))
    _, script = ph.write_fixture(tmp_path)
    judge_file = tmp_path / "judge.json"
    judge_file.write_text(json.dumps({"rules": eh.leaf_rules({"REQ-a1": 1, "REQ-a2": 0})}))
    items = bench_items(papers, seeds=2)
    assert [i.slug for i in items] == ["delta/seed-1", "delta/seed-2"]  # only it has a rubric
    opts = BatchOptions(model=f"scripted:{script}", judge=f"scripted:{judge_file}",
                        out=tmp_path / "bench", eval_mode="rubric", quiet=True)
    report = asyncio.run(run_paperbench(items, opts))
    for seed in (1, 2):
        run_dir = tmp_path / "bench" / "delta" / f"seed-{seed}"
        assert (run_dir / "papercoder.db").is_file()
        summary = json.loads((run_dir / "eval" / "rubric-scripted_judge.json" / "summary.json")
                             .read_text())
        # Code-Dev only: A(a1=1 w1, a2=0 w2) -> 1/3, and the root keeps only A
        assert summary["mode"] == "rubric" and summary["score"] == pytest.approx(1 / 3)
        assert (run_dir / "report.html").is_file()
    (p,) = report["papers"]
    assert p["scores"] == {1: pytest.approx(1 / 3), 2: pytest.approx(1 / 3)}
    assert report["mean"] == pytest.approx(1 / 3)
    saved = json.loads((tmp_path / "bench" / "paperbench.json").read_text())
    assert saved["mean"] == pytest.approx(1 / 3)
    from rich.console import Console

    con = Console(record=True, width=120)
    render_report(report, con)
    text = con.export_text()
    assert "delta" in text and "33.3" in text and "Mean over 1 papers: 33.3%" in text


def _eval_batch(tmp_path: Path, mode: str, *, reference: bool, rubric: bool) -> tuple[Any, Path]:
    from tests import eval_helpers as eh

    papers = tmp_path / "papers"
    (papers / "p1").mkdir(parents=True)
    (papers / "p1" / "paper.md").write_text(ph.TINY_PAPER)
    if reference:
        eh.write_repo(papers / "p1" / "reference",
                      {"optim.py": "def gold_update(w):\n    return w\n"})
    if rubric:
        (papers / "p1" / "rubric.json").write_text(json.dumps(eh.RUBRIC))
    _, script = ph.write_fixture(tmp_path)
    judge = tmp_path / "judge.json"
    judge.write_text(json.dumps({"eval": eh.score_answer(4)}))
    r = CliRunner().invoke(app, ["batch", str(papers), "-m", f"scripted:{script}", "-o",
                                 str(tmp_path / "o"), "--eval", mode, "--judge",
                                 f"scripted:{judge}", "--quiet"])
    return r, tmp_path / "o"


def test_batch_eval_reference_based_grades_with_the_reference(tmp_path: Path) -> None:
    """batch built EvalOptions from a dict that dropped mode=: it graded reference-free."""
    r, out = _eval_batch(tmp_path, "reference-based", reference=True, rubric=False)
    assert r.exit_code == 0, r.output
    (summary,) = (out / "p1" / "eval").glob("*/summary.json")
    s = json.loads(summary.read_text())
    assert s["mode"] == "reference-based" and s["gold_files_shown"] == ["optim.py"]


@pytest.mark.parametrize("mode, lacking", [("reference-based", "reference/"),
                                           ("rubric", "rubric.json")])
def test_batch_eval_without_its_input_is_refused_before_any_call(
        tmp_path: Path, mode: str, lacking: str) -> None:
    r, out = _eval_batch(tmp_path, mode, reference=False, rubric=False)
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert lacking in text and "p1" in text and "Traceback" not in r.output
    assert not (out / "p1").exists()  # no paper started, so no call was made


def test_batch_reader_model_transcribes_with_that_model(tmp_path: Path) -> None:
    """batch passed the --reader-model model un-awaited (a coroutine) to the pipeline."""
    from tests.test_ingest_model_reader import TRANSCRIPT, make_pdf

    papers = tmp_path / "papers"
    papers.mkdir()
    make_pdf(papers / "p.pdf")
    writer = tmp_path / "w.json"
    writer.write_text(json.dumps(ph.script()))
    reader = tmp_path / "r.json"
    reader.write_text(json.dumps({"ingest": TRANSCRIPT}))
    r = CliRunner().invoke(app, ["batch", str(papers), "-m", f"scripted:{writer}", "-o",
                                 str(tmp_path / "o"), "--pdf-reader", "model",
                                 "--reader-model", f"scripted:{reader}", "--quiet"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "o" / "p" / "run.json").read_text())
    assert m["status"] == "done" and m["paper"]["reader"]["model"] == "scripted:r.json"
    assert m["stages"]["ingest"]["calls"] == 1
