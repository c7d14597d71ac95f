"""--pdf-reader model: pages rendered with pypdfium2 go to a vision model through the Caller
(stage ingest) in each protocol's image form; the transcription replaces the text of exactly
those pages; answers are cached by page image; text-only backends are refused first."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from fpdf import FPDF

from papercoder.ingest import clean_transcription, read_with_model
from papercoder.llm import Caller
from papercoder.models.anthropic_api import AnthropicModel
from papercoder.models.openai_api import OpenAIModel
from papercoder.models.scripted import ScriptedModel
from papercoder.paper.pdf import PdfDocument
from papercoder.paper.pdf_render import render_pages
from papercoder.store import Store
from tests import pipeline_helpers as ph
from tests.cli_proc import LONG, env
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.fakes.server import Reply

PROSE = ("The method reads a sequence of tokens and predicts the next one from a learned "
         "representation of the context that came before it in the document. ")
DEFAULT_METHOD = "ordinary words on the method page"
TRANSCRIPT = ("## 2 Method\n\nMODEL-READ method prose.\n\n$$\nL = \\sum_{i=1}^{n} a_i + "
              "\\frac{b}{\\gamma} \\tag{1}\n$$\n\n## 3 Results\n\nMODEL-READ results.")


def make_pdf(path: Path) -> Path:
    """Three pages: prose (1 Introduction); a method page with a display equation set in a
    maths font and numbered (2 Method, 3 Results); prose again."""
    pdf = FPDF(format="letter")
    pdf.set_auto_page_break(False)

    def para(text: str = PROSE * 3) -> None:
        pdf.set_font("Times", size=10)
        pdf.multi_cell(0, 5, text.strip())
        pdf.ln(3)

    pdf.add_page()
    pdf.set_font("Times", "B", 18)
    pdf.cell(0, 10, "A Small Paper About Sums", align="C")
    pdf.ln(14)
    pdf.set_font("Times", "B", 12)
    pdf.cell(0, 6, "1 Introduction")
    pdf.ln(8)
    for k in range(5):
        para(f"First page paragraph {k}. " + PROSE * 3)
    pdf.add_page()
    pdf.set_font("Times", "B", 12)
    pdf.cell(0, 6, "2 Method")
    pdf.ln(8)
    para(f"Some {DEFAULT_METHOD} before the equation. " + PROSE * 2)
    pdf.set_font("Symbol", size=11)
    pdf.set_x(80)
    pdf.cell(60, 6, "L = S a + b / g")
    pdf.set_font("Times", size=10)
    pdf.set_x(170)
    pdf.cell(20, 6, "(1)")
    pdf.ln(10)
    para(PROSE * 3)
    pdf.set_font("Times", "B", 12)
    pdf.cell(0, 6, "3 Results")
    pdf.ln(8)
    para("Results on the method page. " + PROSE * 2)
    pdf.add_page()
    for k in range(5):
        para(f"Last page paragraph {k}. " + PROSE * 2)
    pdf.output(str(path))
    return path


@pytest.fixture
def pdf_path(tmp_path: Path) -> Path:
    return make_pdf(tmp_path / "small.pdf")


def _has_image(body: Mapping[str, Any]) -> bool:
    for m in body.get("messages") or []:
        c = m.get("content")
        if isinstance(c, list) and any(isinstance(b, Mapping) and b.get("type") in (
                "image_url", "image") for b in c):
            return True
    return False


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _read(pdf_path: Path, model: Any, store: Store, mode: str = "model") -> Any:
    doc = PdfDocument.open(pdf_path)
    caller = Caller(model, store, store.create_run("ingest"))
    paper, report = asyncio.run(read_with_model(doc, caller=caller, mode=mode))
    return doc, paper, report, caller


def test_default_reader_finds_the_maths_page(pdf_path: Path) -> None:
    doc = PdfDocument.open(pdf_path)
    paper = doc.paper()
    assert doc.found.maths_pages() == [1]  # 0-based: the second page only
    assert [s.heading for s in paper.sections] == ["1 Introduction", "2 Method", "3 Results"]


def test_openai_request_shape_and_exact_page_replacement(pdf_path: Path, tmp_path: Path,
                                                               monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    default = PdfDocument.open(pdf_path).paper()
    with FakeOpenAIServer(responder=lambda body: TRANSCRIPT) as srv:
        model = OpenAIModel("gpt-4.1", base_url=srv.url)
        store = Store(tmp_path / "s.db")
        doc, paper, report, caller = _read(pdf_path, model, store)
        bodies = srv.bodies("/chat/completions")
    assert len(bodies) == 1  # only the page with maths
    content = bodies[0]["messages"][0]["content"]
    assert content[0]["type"] == "text" and "Transcribe" in content[0]["text"]
    image = content[1]
    assert image["type"] == "image_url"
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    png = base64.b64decode(url.split(",", 1)[1], validate=True)
    assert png == render_pages(pdf_path.read_bytes(), [1])[1]
    w, h = _png_size(png)
    assert max(w, h) == 1568 and w < h
    # The transcription replaced page 2 exactly: pages 1 and 3 are the default reader's.
    assert report.transcribed == [2] and report.fallback == []
    by = {s.heading: s.text for s in paper.sections}
    old = {s.heading: s.text for s in default.sections}
    assert by["1 Introduction"] == old["1 Introduction"]
    assert "MODEL-READ method prose." in by["2 Method"]
    assert DEFAULT_METHOD not in by["2 Method"] and DEFAULT_METHOD in old["2 Method"]
    assert by["3 Results"].startswith("MODEL-READ results.")
    assert "Last page paragraph 0." in by["3 Results"]  # page 3 follows, as read by default
    assert "Results on the method page" not in by["3 Results"]
    assert "L = \\sum_{i=1}^{n} a_i + \\frac{b}{\\gamma} \\tag{1}" in paper.equations
    # Logged as stage ingest, with the image as a hash and size, never its bytes.
    x = store.exchanges(stage="ingest")
    assert len(x) == 1 and x[0].file == "page 2" and x[0].cost and x[0].cost > 0
    logged = json.dumps(x[0].request)
    assert base64.b64encode(png[:60]).decode()[:40] not in logged
    import hashlib

    assert x[0].request["messages"][0]["images"] == [
        {"image": "image/png", "sha256": hashlib.sha256(png).hexdigest(), "bytes": len(png)}]


def test_anthropic_request_shape(pdf_path: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    with FakeAnthropicServer(responder=lambda body: TRANSCRIPT) as srv:
        model = AnthropicModel("claude-sonnet-4-6", base_url=srv.url)
        _, paper, report, _ = _read(pdf_path, model, Store(tmp_path / "s.db"))
        reqs = srv.message_requests()
    assert len(reqs) == 1
    blocks = reqs[0]["messages"][0]["content"]
    assert blocks[0]["type"] == "text"
    src = blocks[1]["source"]
    assert blocks[1]["type"] == "image" and src["type"] == "base64"
    assert src["media_type"] == "image/png"
    png = base64.b64decode(src["data"], validate=True)
    assert png == render_pages(pdf_path.read_bytes(), [1])[1]
    assert report.transcribed == [2]
    assert "MODEL-READ method prose." in paper.to_markdown()


def test_second_read_is_answered_from_the_cache(pdf_path: Path, tmp_path: Path,
                                                      monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    store = Store(tmp_path / "s.db")
    with FakeOpenAIServer(responder=lambda body: TRANSCRIPT) as srv:
        model = OpenAIModel("gpt-4.1", base_url=srv.url)
        _, first, _, _ = _read(pdf_path, model, store, mode="model-all")
        n = len(srv.bodies("/chat/completions"))
        _, again, report, caller = _read(pdf_path, model, store, mode="model-all")
        assert len(srv.bodies("/chat/completions")) == n == 3
    assert caller.totals.cache_hits == 3 and caller.totals.cost == 0
    assert again.to_markdown() == first.to_markdown()
    # model-all with one answer for every page: page 1's heading is not in it, so page 1
    # keeps the default text; page 3 (no heading of its own) takes it with headings demoted.
    assert report.chosen == [1, 2, 3] and report.transcribed == [2, 3]
    assert [f["page"] for f in report.fallback] == [1]
    assert "**2 Method**" in again.to_markdown()
    assert [s.heading for s in again.sections] == ["1 Introduction", "2 Method", "3 Results"]


def test_cut_off_or_refused_page_keeps_the_default_text(pdf_path: Path,
                                                             tmp_path: Path,
                                                             monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    cut = Reply(text="## 2 Method\n\nMODEL-READ half a pa", finish_reason="length")
    with FakeOpenAIServer(responder=lambda body: cut) as srv:
        model = OpenAIModel("gpt-4.1", base_url=srv.url)
        _, paper, report, _ = _read(pdf_path, model, Store(tmp_path / "s.db"))
        assert len(srv.bodies("/chat/completions")) == 2  # one re-ask, then the fallback
    assert report.transcribed == []
    assert report.fallback == [{"page": 2, "reason": "the answer was still cut off by the "
                                "length limit"}]
    assert "MODEL-READ" not in paper.to_markdown()
    assert DEFAULT_METHOD in paper.to_markdown()
    assert any("Page 2 keeps the default reader's text" in w for w in paper.warnings)


def test_hostile_transcription_is_cleaned(pdf_path: Path, tmp_path: Path) -> None:
    nasty = ("```markdown\n## 2 Method\n\nMODEL\x1b[31m-READ\u202e\ue000 prose\x07.\n\n"
             "## 3 Results\n\nok\n```")
    model = ScriptedModel({"ingest": nasty})
    _, paper, report, _ = _read(pdf_path, model, Store(tmp_path / "s.db"))
    md = paper.to_markdown()
    assert "MODEL[31m-READ prose." in md
    assert not any(ch in md for ch in "\x1b\x07\u202e\ue000")
    assert "```" not in md and report.dropped_chars == 4
    assert clean_transcription("a\r\nb\x00") == ("a\nb", 1)


def test_local_backend_is_refused_before_anything(pdf_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "papercoder", "run", str(pdf_path), "-m", "local",
                        "--pdf-reader", "model", "-o", str(out), "-q"], env=env(),
                       capture_output=True, text=True, timeout=LONG)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    assert "cannot (the local backend runs text-only models)" in " ".join(r.stderr.split())
    assert not out.exists()


def test_text_only_model_is_refused_before_any_request(pdf_path: Path, tmp_path: Path) -> None:
    with FakeOpenAIServer(responder=lambda body: TRANSCRIPT) as srv:
        r = subprocess.run([sys.executable, "-m", "papercoder", "ingest", str(pdf_path),
                            "--pdf-reader", "model", "--reader-model", "openai/gpt-3.5-turbo",
                            "--base-url", srv.url], env={**env(), "OPENAI_API_KEY": "sk-t"},
                           capture_output=True, text=True, timeout=LONG)
        assert srv.bodies() == []
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "settings table says it takes no images" in " ".join(r.stderr.split())


def test_bad_reader_value_is_one_sentence(pdf_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "papercoder", "run", str(pdf_path),
                        "--pdf-reader", "ocr", "-m", "local"], env=env(), capture_output=True,
                       text=True, timeout=LONG)
    assert r.returncode == 2 and "--pdf-reader must be one of default, model, model-all" in \
        " ".join(r.stderr.split())


@pytest.mark.parametrize("command", ["run", "ingest"])
def test_reader_model_without_a_model_reader_is_one_sentence(pdf_path: Path, tmp_path: Path,
                                                             command: str) -> None:
    out = tmp_path / "out"
    extra = ["-m", "local", "-o", str(out)] if command == "run" else []
    r = subprocess.run([sys.executable, "-m", "papercoder", command, str(pdf_path),
                        "--reader-model", "openai/gpt-4.1", *extra], env=env(),
                       capture_output=True, text=True, timeout=LONG)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout, r.stderr
    assert "only happens with --pdf-reader model or model-all" in said
    assert not out.exists()


def test_run_records_the_reader_and_cost_shows_ingest(pdf_path: Path, tmp_path: Path) -> None:
    def respond(body: dict[str, Any]) -> str:
        return TRANSCRIPT if _has_image(body) else ph.respond(body)

    out = tmp_path / "out"
    e = {**env(), "OPENAI_API_KEY": "sk-t"}
    with FakeOpenAIServer(responder=respond) as srv:
        args = [sys.executable, "-m", "papercoder", "plan", str(pdf_path), "-m",
                "openai/gpt-4.1", "--base-url", srv.url, "--pdf-reader", "model", "-o",
                str(out), "-q"]
        r = subprocess.run(args, env=e, capture_output=True, text=True, timeout=LONG)
        assert r.returncode == 0, r.stdout + r.stderr
        images = [b for b in srv.bodies("/chat/completions") if _has_image(b)]
        assert len(images) == 1
        m = json.loads((out / "run.json").read_text())
        reader = m["paper"]["reader"]
        assert reader["reader"] == "model" and reader["transcribed"] == [2]
        assert reader["model"] == "openai/gpt-4.1" and reader["fallback"] == []
        assert m["stages"]["ingest"]["calls"] == 1 and m["stages"]["ingest"]["cost_usd"] > 0
        assert m["settings"]["pdf_reader"] == "model"
        assert "page(s) 2 transcribed by openai/gpt-4.1" in " ".join(r.stdout.split())
        # The paper the planner saw holds the transcription.
        planning = [b for b in srv.bodies("/chat/completions") if not _has_image(b)]
        assert "MODEL-READ method prose." in json.dumps(planning[0])
        c = subprocess.run([sys.executable, "-m", "papercoder", "cost", str(out)], env=e,
                           capture_output=True, text=True, timeout=LONG)
        assert c.returncode == 0
        row = next(ln for ln in c.stdout.splitlines() if ln.startswith("ingest"))
        assert row.split()[1] == "1" and "$" in row
        # A rerun (from planning) pays nothing for the page: zero image requests.
        before = len(srv.bodies("/chat/completions"))
        r2 = subprocess.run(args + ["--from", "planning"], env=e, capture_output=True,
                            text=True, timeout=LONG)
        assert r2.returncode == 0, r2.stderr
        new = srv.bodies("/chat/completions")[before:]
        assert new == []  # planning answers are cached too: the whole rerun is free
    m2 = json.loads((out / "run.json").read_text())
    assert m2["stages"]["ingest"]["cache_hits"] == 1


def test_png_is_valid_greyscale(pdf_path: Path) -> None:
    png = render_pages(pdf_path.read_bytes(), [0])[0]
    w, h = _png_size(png)
    assert png[24:26] == bytes([8, 0])  # 8-bit greyscale
    # Decompress IDAT and check the row layout: a filter byte and w pixels per row.
    pos, idat = 8, b""
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        if png[pos + 4:pos + 8] == b"IDAT":
            idat += png[pos + 8:pos + 8 + n]
        pos += 12 + n
    raw = zlib.decompress(idat)
    assert len(raw) == h * (w + 1)
    assert min(raw[1:w + 1]) > 200  # the top row of a page is white paper


def _pipeline_responder(body: dict[str, Any]) -> str:
    return TRANSCRIPT if _has_image(body) else ph.respond(body)


def test_batch_reads_pdf_pages_with_the_model(pdf_path: Path, tmp_path: Path) -> None:
    from papercoder.batch import BatchOptions, discover, run_batch

    papers = tmp_path / "papers"
    papers.mkdir()
    (papers / "small.pdf").write_bytes(pdf_path.read_bytes())
    with FakeOpenAIServer(_pipeline_responder) as srv:
        opts = BatchOptions(model="openai/gpt-4.1", base_url=srv.url, out=tmp_path / "out",
                            workers=1, quiet=True, pdf_reader="model")
        rows = asyncio.run(run_batch(discover(papers), opts))
        assert sum(1 for b in srv.bodies("/chat/completions") if _has_image(b)) == 1
    assert rows[0]["status"] == "done", rows
    m = json.loads((tmp_path / "out" / "small" / "run.json").read_text())
    assert m["paper"]["reader"]["transcribed"] == [2]


def test_sections_added_after_reading_are_kept(pdf_path: Path, tmp_path: Path) -> None:
    from papercoder.paper import Section, load_paper_and_pdf
    from papercoder.pipeline import RunOptions, run_pipeline

    paper, pdf = load_paper_and_pdf(pdf_path)
    paper.sections.append(Section("Addendum", "ADDENDUM-TEXT from the authors."))
    model = ScriptedModel({**ph.script(), "ingest": TRANSCRIPT})
    opts = RunOptions(paper=str(pdf_path), out=tmp_path / "out", stop_after="planning",
                      pdf_reader="model", quiet=True)
    m = run_pipeline(opts, model=model, store=Store(tmp_path / "s.db"), paper=paper, pdf=pdf)
    assert m.paper["reader"]["transcribed"] == [2]
    plan_prompt = json.dumps(next(h["messages"] for h in model.history
                                  if h["meta"].get("stage") == "plan"))
    assert "MODEL-READ method prose." in plan_prompt and "ADDENDUM-TEXT" in plan_prompt
    assert plan_prompt.index("MODEL-READ") < plan_prompt.index("ADDENDUM-TEXT")


def test_budget_stops_before_the_page_call(pdf_path: Path, tmp_path: Path,
                                           monkeypatch) -> None:
    from papercoder.errors import BudgetExceeded

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeOpenAIServer(responder=lambda body: TRANSCRIPT) as srv:
        model = OpenAIModel("gpt-4.1", base_url=srv.url)
        store = Store(tmp_path / "s.db")
        caller = Caller(model, store, store.create_run("ingest"), max_cost=0.001)
        with pytest.raises(BudgetExceeded, match="--max-cost"):
            asyncio.run(read_with_model(PdfDocument.open(pdf_path), caller=caller))
        assert srv.bodies() == []


def test_split_transcript_cuts_at_the_pages_headings() -> None:
    from papercoder.paper.pdf_pages import split_transcript

    md = ("end of the previous section.\n\nlimitations\n\n## 2. Limitations\n\nSome text.\n"
          "```\n# 3 Training\n```\n**3 Training.** We train for\n10 epochs.\n\n"
          "### A detail\n\n$$\n4 Evaluation\n$$\n4 Evaluation\nWe evaluate.")
    parts = split_transcript(md, ["2 Limitations", "3 Training", "4 Evaluation"])
    assert parts is not None
    lead, lim, train, ev = parts
    # The marked heading wins over the earlier bare word; a fenced "# 3 Training" and a
    # display equation are not headings; a run-in bold heading keeps its paragraph.
    assert lead == "end of the previous section.\n\nlimitations"
    assert lim.startswith("Some text.") and "# 3 Training" in lim
    assert train.startswith("We train for\n10 epochs.") and "**A detail**" in train
    assert "$$\n4 Evaluation\n$$" in train
    assert ev == "We evaluate."
    assert split_transcript("## 2 Method\n\ntext", ["2 Method", "3 Results"]) is None


def test_reader_model_is_its_own_caller_on_the_same_run(pdf_path: Path, tmp_path: Path) -> None:
    from papercoder.pipeline import RunOptions, run_pipeline

    writer = ScriptedModel(ph.script(), name="scripted:writer")
    reader = ScriptedModel({"ingest": TRANSCRIPT}, name="scripted:reader")
    store = Store(tmp_path / "s.db")
    opts = RunOptions(paper=str(pdf_path), out=tmp_path / "out", stop_after="planning",
                      pdf_reader="model", reader_model="scripted:reader", quiet=True)
    m = run_pipeline(opts, model=writer, store=store, reader=reader)
    assert len(reader.history) == 1 and reader.history[0]["meta"]["stage"] == "ingest"
    assert all(h["meta"]["stage"] != "ingest" for h in writer.history)
    assert m.paper["reader"]["model"] == "scripted:reader"
    assert m.stages["ingest"].calls == 1
    assert m.totals.calls == len(writer.history) + 1  # the page call counts in the totals
    rows = {(r["stage"], r["model"]) for r in store.cost_summary(m.run_id)}
    assert ("ingest", "scripted:reader") in rows and ("plan", "scripted:writer") in rows


def test_ingest_json_prints_the_transcribed_paper_and_reports_on_stderr(
        pdf_path: Path, tmp_path: Path) -> None:
    e = {**env(), "OPENAI_API_KEY": "sk-t", "PAPERCODER_DB": str(tmp_path / "db.sqlite")}
    with FakeOpenAIServer(responder=lambda body: TRANSCRIPT) as srv:
        r = subprocess.run([sys.executable, "-m", "papercoder", "ingest", str(pdf_path),
                            "--json", "--pdf-reader", "model", "--reader-model",
                            "openai/gpt-4.1", "--base-url", srv.url], env=e,
                           capture_output=True, text=True, timeout=LONG)
        assert len(srv.bodies("/chat/completions")) == 1
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)  # standard output is the paper's JSON and nothing else
    assert "MODEL-READ method prose." in json.dumps(data)
    assert DEFAULT_METHOD not in json.dumps(data)
    assert "Page 2 was read by openai/gpt-4.1" in " ".join(r.stderr.split())
