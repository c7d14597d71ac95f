"""The HTML report without a browser: content, escaping, CSP, hostile output folders, the CLI,
the hook in `papercoder run`, and the batch index. (tests/test_report_browser.py renders it.)"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from papercoder.cli import app
from papercoder.errors import PapercoderError
from papercoder.report import write_index, write_report
from papercoder.report.loader import load, split_diff
from papercoder.report.render import direct_edges, levels, mermaid_source, rubric_nodes
from tests import pipeline_helpers as ph
from tests.report_fixtures import EVIL_FILE, scripted_out

SCRIPT_RE = re.compile(r"<script\b[^>]*>(.*?)</script>", re.S | re.I)


def scripts_and_csp(html: str) -> tuple[list[str], str]:
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp, "no CSP meta"
    return SCRIPT_RE.findall(html), unescape(csp.group(1))


class Tags(HTMLParser):
    """Every start tag and its attributes, as a browser's tokenizer sees them."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def sha(s: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"


@pytest.fixture
def fixture_out(tmp_path: Path) -> Path:
    return scripted_out(tmp_path)


def test_report_shows_every_part_and_escapes_model_text(fixture_out: Path) -> None:
    path = write_report(fixture_out)
    assert path == fixture_out / "report.html"
    html = path.read_text(encoding="utf-8")
    # exactly our two scripts (mermaid and the page's), each allowed by its hash, nothing else
    scripts, csp = scripts_and_csp(html)
    assert len(scripts) == 2 and html.lower().count("<script") == 2
    assert "mermaid" in scripts[0][:2000] and "data-diagrams" in scripts[1]
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert f"script-src {sha(scripts[0])} {sha(scripts[1])};" in csp
    assert "default-src 'none'" in csp
    # planted HTML arrives as text
    for planted in ("window.__pwned=1", "window.__pwned=2", "window.__pwned=4",
                    "window.__pwned=14"):
        assert planted in html
    body = SCRIPT_RE.sub("", html)
    tags = Tags(html).tags
    assert [t for t, _ in tags].count("script") == 2
    assert not [t for t, _ in tags if t in ("img", "iframe", "object", "embed", "base", "form")]
    assert not [(t, a) for t, a in tags if any(k.startswith("on") for k in a)]
    assert not [a for _, a in tags if (a.get("href") or "").lower().startswith(
        ("javascript", "data", "vbscript", "file"))]
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in body
    assert 'href="javascript' not in body and 'href="https://example.org"' in body
    assert "<div onclick" not in body
    # summary
    assert "Momentum Averaged Linear Regression" in html and "markdown" in html
    assert "scripted:script.json" in html and "5 written" in html
    assert "weight_decay=0.0123" in html  # the pipeline's warning, shown prominently
    assert 'class="callout"' in html
    # design: plan, three diagrams as escaped text sources, order table, config marks
    assert html.count('class="mermaid-src"') == 3
    assert "flowchart LR" in html and "level 1" in html
    assert re.search(r'class="line assumed">.*warmup', html)
    assert re.search(r'class="line unmarked">.*weight_decay', html)
    # a section per file: analysis, highlighted code, findings, debug diff
    for f in ph.FILES:
        assert f"<code>{f}</code>" in html
    assert 'class="hl"' in html and "undefined name" in html
    assert html.count("What the debug loop (round 1) changed") == 2  # model.py, requirements
    assert "What the static repair changed" in html and "+import math" in unescape(html)
    assert "After the static repair 1 remains." in html
    # verify and evaluate
    assert "7.5%" in html and "3 of 40" in html
    assert "ValueError@model.py:8" in html and "step 1 loss 0.5" in html
    assert "root:x:0" not in html  # the smoke log pointing at ../../etc/passwd is not read
    assert "3.50" in html and "std 0.50" in html
    assert "No momentum." in html and "Averaging is missing." in html
    assert "75.0% of the total" in html and "37.5% of the total" in html
    assert "25.0% of the total" in html
    assert "<details" in html and html.count('id="eval-') == 2


def test_file_names_with_html_get_safe_anchors(fixture_out: Path) -> None:
    html = write_report(fixture_out).read_text(encoding="utf-8")
    assert EVIL_FILE not in html
    tags = Tags(html).tags
    ids = [a["id"] or "" for _, a in tags if "id" in a]
    assert [i for i in ids if not re.fullmatch(r"[A-Za-z0-9_-]+", i)] == []
    assert len(ids) == len(set(ids))
    hrefs = [(a["href"] or "")[1:] for _, a in tags if (a.get("href") or "").startswith("#")]
    assert hrefs and set(hrefs) <= set(ids)


def test_hostile_run_json_and_planted_links(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "artifacts" / "analysis").mkdir(parents=True)
    (out / "repo").mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    os.symlink(secret, out / "artifacts" / "plan.md")
    os.symlink(secret, out / "repo" / "a.py")
    victim = tmp_path / "victim.html"
    victim.write_text("keep me", encoding="utf-8")
    os.symlink(victim, out / "report.html")
    huge = "W" * 3_000_000
    (out / "run.json").write_text(json.dumps({
        "run_id": ["not", "a", "string"], "model": {"x": 1},
        "status": 7, "files": {"a.py": "written", "../../b.py": {"status": ["x"]},
                               "c.py": {"status": "failed", "error": huge}},
        "order": "a.py", "stages": [1, 2], "totals": None, "warnings": [huge, 5, None],
        "reductions": "x", "verify": {"static": {"findings": [1, {"line": "x", "file": 3}]},
                                      "rounds": "nope", "smoke": [], "executability": 5},
        "started": "yesterday", "finished": 1e300,
        "paper": {"title": "Bad \ud800 title\x00\x1b[31m", "warnings": ["\udcff"]}}) + "\n",
        encoding="utf-8")
    (out / "artifacts" / "logic.json").write_text("{not json", encoding="utf-8")
    ev = out / "eval" / "rubric-judge"
    ev.mkdir(parents=True)
    deep = '{"requirements": "leaf", "weight": 1}'
    for i in range(300):
        deep = f'{{"requirements": "level {i}", "weight": 1, "sub_tasks": [{deep}, "x", null]}}'
    (ev / "tree.json").write_text(deep, encoding="utf-8")
    (ev / "summary.json").write_text(json.dumps({"mode": ["rubric"], "score": "NaN",
                                                 "samples": "x", "spread": 3}))
    (ev / "samples.json").write_text(json.dumps([{"critiques": [{"severity": {}}, 5]}, 7]))
    (tmp_path / "summary.json").write_text('{"judge": "TOP-SECRET-CONTENT", "score": 5}')
    os.symlink(tmp_path, out / "eval" / "linked")
    (out / "artifacts" / "architecture.json").write_text('["a list"]', encoding="utf-8")
    path = write_report(out)
    html = path.read_text(encoding="utf-8")
    assert not path.is_symlink() and victim.read_text() == "keep me"
    assert "TOP-SECRET-CONTENT" not in html
    assert "logic.json is not valid JSON" in html
    assert len(SCRIPT_RE.sub("", html)) < 1_000_000  # the 3 MB strings are clipped
    assert "more characters not shown" in html
    # shown inert, as on the terminal (textsafe.safe): escapes and surrogates made visible
    assert "Bad \\ud800 title\\x00\\x1b[31m" in html
    assert "\x1b" not in html and "\x00" not in html
    assert "level 259" in html and "level 258" not in html  # the tree is cut at depth 40


def test_partial_folder_and_bad_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(PapercoderError, match="holds no run"):
        write_report(out)
    with pytest.raises(PapercoderError, match="is not a folder"):
        write_report(tmp_path / "missing")
    (out / "run.json").write_text("[damaged", encoding="utf-8")
    html = write_report(out).read_text(encoding="utf-8")
    assert "run.json is not valid JSON" in html and "No overall plan" in html
    r = CliRunner().invoke(app, ["report", str(tmp_path / "missing")])
    assert r.exit_code == 2 and "is not a folder" in r.output
    assert "Traceback" not in r.output
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    r = CliRunner().invoke(app, ["report", str(out), "--open"])
    assert r.exit_code == 0 and "Report written to" in r.output
    assert opened == [(out / "report.html").resolve().as_uri()]


def test_run_writes_the_report_even_when_it_fails(tmp_path: Path) -> None:
    paper, script = ph.write_fixture(tmp_path, logic=["not json"] * 10)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(paper), "-m", f"scripted:{script}", "-o",
                                 str(out), "-q"])
    assert r.exit_code != 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "The run did not finish cleanly" in html and "failed" in html


def test_a_report_failure_never_fails_the_run(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import papercoder.report as report

    def broken(out: Path) -> Path:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report, "write_report", broken)
    paper, script = ph.write_fixture(tmp_path)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["run", str(paper), "-m", f"scripted:{script}", "-o",
                                 str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert "report could not be written (disk on fire)" in r.output
    assert (out / "repo" / "main.py").is_file()


def test_split_diff_levels_and_rubric_shares() -> None:
    diff = ("diff --git a/x.py b/x.py\nindex 1..2\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
            "--- /dev/null\n+++ b/new.py\n@@ -0,0 +1 @@\n+c\n"
            "--- a/old.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-d\n")
    parts = split_diff(diff)
    assert set(parts) == {"x.py", "new.py", "old.py"}
    assert "index 1..2" in parts["x.py"] and "+b" in parts["x.py"] and "+c" not in parts["x.py"]
    deps = {"a": [], "b": ["a"], "c": ["a", "b"], "d": ["c", "a"]}
    assert levels(list(deps), deps) == {"a": 0, "b": 1, "c": 2, "d": 3}
    assert direct_edges("c", deps) == ["b"] and direct_edges("d", deps) == ["c"]
    cyc = {"a": ["b"], "b": ["a"]}
    assert set(levels(["a", "b"], cyc)) == {"a", "b"}  # no endless recursion
    tree = {"weight": 1, "sub_tasks": [{"weight": 3, "sub_tasks": [{"weight": 1}, {"weight": 2}]},
                                       {"weight": 1}, {"weight": "x"}]}
    root, leaves = rubric_nodes(tree)
    assert leaves == 4 and root is not None
    a, b, c = root["children"]
    assert a["share"] == pytest.approx(0.75) and b["share"] == pytest.approx(0.25)
    assert c["share"] == 0
    assert [x["share"] for x in a["children"]] == pytest.approx([0.25, 0.5])


def test_mermaid_source_drops_fences_directives_and_tags() -> None:
    src = ('```mermaid\n%%{init: {"securityLevel": "loose"}}%%\nclassDiagram\n'
           '  class A["<img src=x>"]\n  A <|-- B\n  class C{\n  <<interface>>\n  }\n```')
    s = mermaid_source(src)
    assert s.startswith("classDiagram") and "securityLevel" not in s and "```" not in s
    assert "#lt;img" in s and "<|--" in s and "<<interface>>" in s
    assert mermaid_source("---\nconfig:\n  securityLevel: loose\n---\nflowchart LR\n a-->b") \
        == "flowchart LR\n a-->b"


def test_loader_reads_the_recording_run(shared: Path, tmp_path: Path) -> None:
    from papercoder.models.scripted import ScriptedModel
    from papercoder.pipeline import RunOptions, run_pipeline
    from papercoder.store import Store

    rec = shared / "recordings" / "transformer-claude-3-7-sonnet"
    opts = RunOptions(paper=str(shared / "papers" / "transformer" / "paper.tex"),
                      out=tmp_path / "out", quiet=True)
    run_pipeline(opts, model=ScriptedModel.from_recording(rec), store=Store(tmp_path / "s.db"))
    d = load(tmp_path / "out")
    assert len(d.files) == 7 and all(f.code and f.analysis for f in d.files)
    assert d.class_diagram and d.sequence_diagram and d.plan and d.config
    # the config check reads 10^{-9} as 1e-9, so epsilon is not flagged; max_seq_length
    # is a value the paper never gives
    assert d.unmarked == ["model.base.max_seq_length", "model.big.max_seq_length"]
    assert not d.notes
    html = write_report(tmp_path / "out").read_text(encoding="utf-8")
    assert html.lower().count("<script") == 2
    assert 'id="file-7-main-py"' in html


def test_index_links_reports_and_escapes(tmp_path: Path) -> None:
    (tmp_path / "p1").mkdir()
    rows = [
        {"paper": "<script>alert(1)</script> Paper", "status": "done", "files": "7/7",
         "cost": 0.5, "seconds": 93.0, "ran": True, "score": 3.6,
         "report": str(tmp_path / "p1" / "report.html")},
        {"paper": "Other", "status": "failed", "files": 0, "cost": None, "seconds": None,
         "ran": None, "score": None, "report": "javascript:alert(1)"},
        {"paper": "x", "report": "p 3/rep#ort.html", "cost": "free"},
        "not a row",
    ]
    path = write_index(tmp_path, rows)
    html = path.read_text(encoding="utf-8")
    assert path == tmp_path / "index.html"
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="p1/report.html"' in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert all(":" not in h for h in hrefs), hrefs  # never a scheme
    assert 'href="javascript%3Aalert%281%29"' in html
    assert 'href="p%203/rep%23ort.html"' in html
    assert "$0.5000" in html and "93.0 s" in html and "unknown" in html
    assert "script-src 'none'" in unescape(html)
    assert not [t for t, _ in Tags(html).tags if t == "script"]


def test_long_or_costly_markdown_is_shown_as_written(monkeypatch: pytest.MonkeyPatch) -> None:
    from papercoder.report import render

    assert render.markdown("# Title\n\n*x*").startswith('<div class="md">')
    long = render.markdown("[" * 40_000 + "<b>")
    assert long.startswith('<pre class="wrap">') and "&lt;b&gt;" in long
    monkeypatch.setitem(render._markdown_budget, "seconds", 0.0)
    assert render.markdown("*x*") == '<pre class="wrap">*x*</pre>'


def test_checks_without_a_smoke_run(tmp_path: Path) -> None:
    """What verify records without --execute: static checks only, no isolation in force."""
    out = tmp_path / "out"
    (out / "artifacts" / "debug").mkdir(parents=True)
    (out / "artifacts" / "debug" / "static.diff").write_text("--- a/x.py\n+++ b/x.py\n"
                                                             "@@ -1 +1 @@\n-old\n+STALE\n")
    F = {"file": "x.py", "line": 1, "kind": "undefined-name", "message": "name 'y'"}
    (out / "run.json").write_text(json.dumps({
        "status": "done", "order": ["x.py"], "files": {"x.py": {"status": "written"}},
        "verify": {"static": {"findings": [F], "remaining": [F],
                              "repair": {"applied": False, "error": "no usable edit"}},
                   "environment": {"kind": "none", "python": "", "installed": []},
                   "isolation": {"sandbox": "none", "network": "none-isolation", "limits": {}},
                   "smoke": {"passed": False, "commands": [], "skipped": True},
                   "rounds": [], "executability": None}}))
    html = write_report(out).read_text(encoding="utf-8")
    assert "smoke run not run" in html and "Weak isolation" not in html
    assert "The smoke run did not run" in html and "STALE" not in html
    assert "Static repair: not applied" in html and "no usable edit" in html
    assert "After the static repair 1 remains." in html


def test_report_open_without_a_browser_says_so(fixture_out: Path, tmp_path: Path) -> None:
    """No display and no browser on PATH: the report is written (exit 0) and a line says it
    could not be opened, with the address to open by hand; never silence."""
    import os
    import subprocess
    import sys

    from tests.cli_proc import env

    bare = tmp_path / "empty-bin"
    bare.mkdir()
    e = {k: v for k, v in env().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    e["PATH"] = str(bare)
    r = subprocess.run([sys.executable, "-m", "papercoder", "report", str(fixture_out),
                        "--open"], env=e, capture_output=True, text=True, timeout=300,
                       cwd=os.getcwd())
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert "No web browser could be started here" in said, r.stderr
    assert (fixture_out / "report.html").resolve().as_uri() in said


def test_nested_file_analysis_shown_once_each(tmp_path: Path) -> None:
    """Artifacts are named by outdir.artifact_name (pkg/util.py -> pkg%2Futil.py); the report
    used its own `__` name, so pkg/util.py showed no analysis and pkg__util.py's twice."""
    from papercoder.outdir.workspace import artifact_name

    out = tmp_path / "out"
    files = ["pkg/util.py", "pkg__util.py"]
    (out / "artifacts" / "analysis").mkdir(parents=True)
    for i, f in enumerate(files):
        (out / "artifacts" / "analysis" / f"{artifact_name(f)}.md").write_text(
            f"ANALYSIS-MARK-{i} of {f}\n")
        (out / "repo" / f).parent.mkdir(parents=True, exist_ok=True)
        (out / "repo" / f).write_text(f"CODE_MARK_{i} = {i}\n")
    (out / "run.json").write_text(json.dumps({
        "status": "done", "order": files,
        "files": {f: {"status": "written"} for f in files}}))
    r = CliRunner().invoke(app, ["report", str(out)])
    assert r.exit_code == 0, r.output
    html = (out / "report.html").read_text(encoding="utf-8")
    for i in range(len(files)):
        assert html.count(f"ANALYSIS-MARK-{i}") == 1
        assert html.count(f"CODE_MARK_{i}") >= 1
