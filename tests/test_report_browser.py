"""The report in a real browser (Debian's chromium driven by Playwright): every diagram is
drawn, nothing logs an error, the rubric tree opens, and planted HTML and script stay inert.

Skips, saying why, when Playwright or /usr/bin/chromium is absent (`.ci/run` installs
chromium with apt). Screenshots go to tmp_path and, when $PAPERCODER_SCREENSHOT_DIR is set,
there too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from papercoder.report import write_report
from tests.report_fixtures import scripted_out

CHROMIUM = os.environ.get("PAPERCODER_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
RENDER_TIMEOUT_MS = 120_000  # a loaded 2-core CI machine; we wait for an event, not a time


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright for Python is not installed")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def off_loop(fn: Any, *args: Any) -> Any:
    """Run ``fn`` in a thread: Playwright's sync API keeps an event loop running in this one,
    and the pipeline starts its own with asyncio.run."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def open_report(browser: Any, path: Path) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "assert") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: problems.append(f"request: {r.url}")
            if not r.url.startswith(("file:", "data:", "about:")) else None)
    page.goto(path.resolve().as_uri())
    page.wait_for_function("document.documentElement.dataset.diagrams !== 'pending'",
                           timeout=RENDER_TIMEOUT_MS)
    return page, problems


def assert_diagrams_drawn(page: Any, expected: int) -> None:
    assert page.evaluate("document.documentElement.dataset.diagrams") == "done"
    stats = page.evaluate("""() => Array.from(document.querySelectorAll('.diagram')).map(d => ({
        id: d.id, rendered: d.classList.contains('rendered'),
        svgs: d.querySelectorAll(':scope > svg').length,
        nodes: d.querySelectorAll('svg g.node, svg .actor, svg g.cluster').length,
        text: d.textContent.slice(0, 200)}))""")
    assert len(stats) == expected, stats
    for s in stats:
        assert s["rendered"] and s["svgs"] == 1 and s["nodes"] > 0, s


def save_screenshot(page: Any, tmp_path: Path, name: str) -> None:
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=False)
    assert shot.stat().st_size > 10_000
    target = os.environ.get("PAPERCODER_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)


def test_fixture_report_renders_and_model_text_stays_inert(browser: Any, tmp_path: Path) \
        -> None:
    out = off_loop(scripted_out, tmp_path)
    page, problems = open_report(browser, write_report(out))
    try:
        assert_diagrams_drawn(page, 3)  # class, sequence, file dependencies
        assert problems == []
        # planted <script>, <img onerror>, javascript: links, event handlers: none ran
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("document.scripts.length") == 2
        assert page.evaluate("document.querySelectorAll('img, iframe, object, embed').length") \
            == 0
        handlers = page.evaluate("""() => Array.from(document.querySelectorAll('*')).filter(
            e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length""")
        assert handlers == 0
        # the planted text is shown as text, in the page and inside the diagrams
        assert "<script>window.__pwned=1</script>" in page.inner_text("#design")
        assert "onerror=window.__pwned=7" in page.inner_text("#class-diagram-svg")
        code = page.locator("section.file", has_text="window.__pwned=4").first
        assert "</script><script>window.__pwned=6</script>" in code.inner_text()
        # the rubric tree is collapsible without script: open a closed node, see its leaf
        leaf = page.get_by_text("Momentum update is implemented")
        assert not leaf.is_visible()
        page.locator("summary", has_text="Implement the model").click()
        leaf.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
        assert "37.5% of the total" in page.inner_text("#eval-1")
        # every table-of-contents link lands on an element of the page
        missing = page.evaluate("""() => Array.from(document.querySelectorAll('nav a'))
            .map(a => a.getAttribute('href').slice(1))
            .filter(id => !document.getElementById(id))""")
        assert missing == []
        page.locator("#class-diagram").scroll_into_view_if_needed()
        save_screenshot(page, tmp_path, "report-fixture")
        page.locator("#eval-1").scroll_into_view_if_needed()
        save_screenshot(page, tmp_path, "report-fixture-rubric")
        # print: every <details> opens, so nothing is hidden on paper
        page.emulate_media(media="print")
        page.evaluate("window.dispatchEvent(new Event('beforeprint'))")
        assert page.evaluate("Array.from(document.querySelectorAll('details')).every(d => d.open)")
        assert page.pdf()[:4] == b"%PDF"
        assert problems == []
    finally:
        page.close()


def test_recorded_run_report_renders(browser: Any, shared: Path, tmp_path: Path) -> None:
    from papercoder.models.scripted import ScriptedModel
    from papercoder.pipeline import RunOptions, run_pipeline
    from papercoder.store import Store

    rec = shared / "recordings" / "transformer-claude-3-7-sonnet"
    opts = RunOptions(paper=str(shared / "papers" / "transformer" / "paper.tex"),
                      out=tmp_path / "out", quiet=True)
    m = off_loop(lambda: run_pipeline(opts, model=ScriptedModel.from_recording(rec),
                                      store=Store(tmp_path / "s.db")))
    assert m.status == "done"
    page, problems = open_report(browser, write_report(tmp_path / "out"))
    try:
        assert_diagrams_drawn(page, 3)
        assert problems == []
        text = page.inner_text("#class-diagram-svg")
        for cls in ("TransformerModel", "Trainer", "Evaluator", "DataProcessor", "Config"):
            assert cls in text
        assert "7. main.py" in page.inner_text("#dependencies-svg")
        assert page.evaluate("document.querySelectorAll('section.file').length") == 9
        assert page.evaluate("typeof window.__pwned") == "undefined"
        save_screenshot(page, tmp_path, "report-recording")
    finally:
        page.close()


def test_report_without_diagrams_has_no_renderer(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "run.json").write_text('{"status": "failed", "error": "planning failed"}\n')
    page, problems = open_report(browser, write_report(out))
    try:
        assert page.evaluate("document.documentElement.dataset.diagrams") == "none"
        assert page.evaluate("document.scripts.length") == 1 and problems == []
        assert "planning failed" in page.inner_text("#summary")
    finally:
        page.close()


def test_broken_model_diagrams_fail_gracefully(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "artifacts").mkdir(parents=True)
    (out / "run.json").write_text('{"status": "done", "order": ["a.py"], '
                                  '"files": {"a.py": {"status": "written"}}}\n')
    (out / "artifacts" / "class_diagram.mmd").write_text("classDiagram\n  class A {{{ -->\n")
    (out / "artifacts" / "sequence_diagram.mmd").write_text("this is not a diagram <b>\n")
    page, problems = open_report(browser, write_report(out))
    try:
        assert page.evaluate("document.documentElement.dataset.diagrams") == "done"
        states = page.evaluate("""() => Array.from(document.querySelectorAll('.diagram'))
            .map(d => [d.id, d.className, d.querySelectorAll('svg').length])""")
        assert states == [["class-diagram-svg", "diagram failed", 0],
                          ["sequence-diagram-svg", "diagram failed", 0],
                          ["dependencies-svg", "diagram rendered", 1]]
        assert "could not be rendered" in page.inner_text("#class-diagram-svg")
        # the source is opened for the reader, and nothing mermaid left behind is visible
        for target in ("class-diagram-svg", "sequence-diagram-svg"):
            assert page.locator(f"pre[data-target={target}]").evaluate(
                "p => p.closest('details').open") is True
        assert page.evaluate("document.querySelectorAll('body > div[id^=dmmd]').length") == 0
        assert problems == []
    finally:
        page.close()


def _verified_and_graded(tmp_path: Path) -> Path:
    """An output folder whose smoke run failed on a planted shape bug, was repaired by a
    scripted debug round, and was then graded on a rubric by a scripted judge: the real verify
    and evaluate stages wrote every result the report shows."""
    import asyncio
    import json

    from papercoder.evaluate import EvalOptions, evaluate_target
    from papercoder.models.scripted import ScriptedModel
    from papercoder.paper import load_paper
    from papercoder.store import Store
    from tests import eval_helpers as eh
    from tests import verify_helpers as vh

    bad = vh.MODEL.replace("[0.5] * width", "[0.5] * (width + 1)")
    files = {**vh.good_repo(), "model.py": bad}
    out = vh.make_out(tmp_path, files)
    store = Store(tmp_path / "s.db")
    fixer = ScriptedModel({"verify": vh.edit_line(files, "model.py", "[0.5] * (width + 1)",
                                                  "[0.5] * width")})
    v = vh.run(out, fixer, store)
    assert v["executability"]["passed"] and v["executability"]["rounds"] == 1
    judge = ScriptedModel({"rules": eh.leaf_rules({"REQ-a1": 1, "REQ-a2": 0})})
    summary = asyncio.run(evaluate_target(
        out, paper=load_paper(eh.paper_file(tmp_path)), judge=judge, store=store,
        options=EvalOptions(rubric=eh.rubric_file(tmp_path))))
    assert summary["leaves"] == 2
    assert json.loads((out / "run.json").read_text())["verify"]["rounds"]
    return out


def test_report_of_real_verify_and_eval_results(browser: Any, tmp_path: Path) -> None:
    out = off_loop(_verified_and_graded, tmp_path)
    page, problems = open_report(browser, write_report(out))
    try:
        n = page.evaluate("document.querySelectorAll('.diagram').length")
        assert n >= 1
        assert_diagrams_drawn(page, n)
        assert problems == []
        verify = page.inner_text("#verify")
        assert "ValueError: shapes" in verify and "python main.py --smoke" in verify
        assert "[0.5] * (width + 1)" in page.inner_text("body")  # the round's diff
        evaluation = page.inner_text("#evaluate")
        assert "rubric" in evaluation
        # the rubric tree opens on a click and shows each leaf's verdict
        leaf = page.locator("#evaluate .leaf.fail").first
        assert not leaf.is_visible()
        page.locator("#evaluate details summary", has_text="optimizer").first.click()
        leaf.wait_for(state="visible", timeout=RENDER_TIMEOUT_MS)
        assert "REQ-a2 Polyak averaging" in leaf.inner_text()
        assert "66.7% of the total" in leaf.inner_text()
        save_screenshot(page, tmp_path, "report-verify-eval")
    finally:
        page.close()


def test_paper_code_section_links_requirements_to_highlighted_lines(browser: Any,
                                                                      tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from papercoder.cli import app
    from tests import pipeline_helpers as ph

    unmet = ph.audit_answer("model.py", "unmet")
    repair = ("model.py\n<<<<<<< SEARCH\n        self.w = [0.0]\n=======\n        self.w = "
              "[0.0]\n        self.momentum = 0.9  # paper: R3\n>>>>>>> REPLACE\n")
    paper, script = ph.write_fixture(tmp_path, **{
        "audit:model.py": [unmet, ph.audit_answer("model.py", "met", "self.momentum = 0.9")],
        "repair:model.py": repair,
        "logic": ph.logic(mapping={k: v for k, v in ph.REQ_MAP.items() if k != "main.py"})})
    out = tmp_path / "out"
    r = off_loop(CliRunner().invoke, app, ["run", str(paper), "-m", f"scripted:{script}", "-o",
                                           str(out), "-q"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "run.json").read_text())["requirements"]["uncovered"] == ["R5"]
    page, problems = open_report(browser, out / "report.html")
    try:
        rows = page.evaluate("""() => Array.from(document.querySelectorAll('#paper-code tr.req'))
            .map(r => [r.id, r.dataset.verdict])""")
        assert rows[0] == ["req-R5", "uncovered"]  # uncovered (and unmet) come first
        assert sorted(x[0] for x in rows) == [f"req-R{i}" for i in range(1, 6)]
        r3 = page.locator("#req-R3")
        assert "with learning rate η = 0.05" in r3.inner_text() and "met" in r3.inner_text()
        marker = r3.locator("a.loc.marker")
        assert marker.inner_text() == "model.py:10"
        marker.click()
        page.wait_for_function("location.hash.length > 1", timeout=RENDER_TIMEOUT_MS)
        target = page.evaluate("location.hash.slice(1)")
        line = page.evaluate(f"""() => {{ const i = document.getElementById({target!r});
            const t = i.nextSibling ? i.parentNode : null; return i && t ?
            i.parentNode.textContent.split('\\n')[9] : null; }}""")
        assert line is not None and "# paper: R3" in line
        assert page.evaluate(f"getComputedStyle(document.getElementById({target!r}), "
                             "'::before').backgroundColor") not in ("", "rgba(0, 0, 0, 0)")
        missing = page.evaluate("""() => Array.from(document.querySelectorAll('nav a'))
            .map(a => a.getAttribute('href').slice(1))
            .filter(id => !document.getElementById(id))""")
        assert missing == [] and "paper-code" in page.evaluate(
            "Array.from(document.querySelectorAll('nav a')).map(a => a.hash).join(' ')")
        page.locator("#paper-code").scroll_into_view_if_needed()
        save_screenshot(page, tmp_path, "report-paper-code")
        assert problems == []
    finally:
        page.close()
