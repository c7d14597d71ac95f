"""`papercoder ingest` in-process: the table, the Markdown, JSON, and one clear sentence (no
traceback, non-zero exit) for every kind of bad input."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
from fpdf import FPDF
from PIL import Image
from typer.testing import CliRunner, Result

import papercoder.paper as paper_pkg
from papercoder.cli import app
from papercoder.console import console
from tests.fixtures_paper import fake_arxiv, make_latex_project, make_pdf

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "_width", 250)


def ingest(*args: str) -> Result:
    return runner.invoke(app, ["ingest", *args])


def one_sentence(r: Result) -> str:
    assert r.exit_code != 0, r.output
    out = r.output.strip()
    assert "Traceback" not in out
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert out.startswith("Error: ") and "\n" not in out, out
    assert out.endswith(".") and out.count(". ") <= 1, out
    return out


def test_ingest_shows_sections_tokens_warnings_and_markdown(tmp_path: Path) -> None:
    root = make_latex_project(tmp_path / "proj")
    r = ingest(str(root))
    assert r.exit_code == 0, r.output
    out = r.output
    assert "Width Matters: WidthNet for Layer Sizes (latex," in out
    for head in ("1 Introduction", "2 Method", "A Proofs", "References"):
        assert head in out
    assert "4 display equations, 1 figure captions, 1 tables, 2 references." in out
    assert "Warning: \\include{missing_chapter} was not found" in out
    assert "## 2 Method" in out  # the Markdown follows


def test_ingest_writes_markdown_and_prints_json(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "p.pdf")
    out_md = tmp_path / "paper.md"
    r = ingest(str(pdf), "-o", str(out_md))
    assert r.exit_code == 0, r.output
    assert out_md.read_text().startswith("# Width Matters: A Study of Layer Sizes\n")
    assert f"Markdown written to {out_md}." in r.output.replace("\n", "")
    r = ingest(str(pdf), "--json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["source_format"] == "pdf" and data["sections"][0]["heading"] == "1 Introduction"


def _encrypted(p: Path) -> Path:
    pdf = FPDF(unit="pt")
    pdf.add_page()
    pdf.set_font("Helvetica", "", 12)
    pdf.cell(300, 20, "Secret paper text")
    pdf.set_encryption(owner_password="owner", user_password="user")
    pdf.output(str(p))
    return p


def _scanned(p: Path) -> Path:
    pdf = FPDF(unit="pt")
    for _ in range(2):
        pdf.add_page()
        pdf.image(Image.new("RGB", (120, 160), (230, 230, 230)), x=50, y=50, w=400)
    pdf.output(str(p))
    return p


@pytest.mark.parametrize("case,expect", [
    ("encrypted", "encrypted with a password"),
    ("scanned", "no text layer (a scanned PDF?); give the LaTeX source"),
    ("truncated", "damaged or truncated"),
    ("corrupt", "damaged or truncated"),
    ("empty", "is empty"),
    ("random", "is not a PDF"),
    ("not_utf8", "is not UTF-8"),
    ("missing", "does not exist"),
    ("unsupported", "unsupported format"),
    ("bad_json", "is not valid JSON"),
    ("other_url", "Only arXiv links can be fetched"),
])
def test_bad_inputs_fail_with_one_sentence(tmp_path: Path, case: str, expect: str) -> None:
    good = make_pdf(tmp_path / "good.pdf").read_bytes()
    p = tmp_path / "paper.pdf"
    if case == "encrypted":
        _encrypted(p)
    elif case == "scanned":
        _scanned(p)
    elif case == "truncated":
        p.write_bytes(good[: len(good) // 2])
    elif case == "corrupt":
        p.write_bytes(good[:20] + os.urandom(2000))
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "random":
        p.write_bytes(os.urandom(4096))
    elif case == "not_utf8":
        p = tmp_path / "paper.md"
        p.write_bytes("# Caf\xe9\n\nna\xefve text".encode("latin-1"))
    elif case == "missing":
        p = tmp_path / "nope.pdf"
    elif case == "unsupported":
        p = tmp_path / "paper.docx"
        p.write_bytes(b"PK\x03\x04 something")
    elif case == "bad_json":
        p = tmp_path / "paper.json"
        p.write_text("{not json")
    if case == "other_url":
        p = "https://openreview.net/pdf?id=abc"  # type: ignore[assignment]
    out = one_sentence(ingest(str(p)))
    assert expect in out


def test_file_over_the_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paper_pkg, "MAX_BYTES", 1000)
    p = make_pdf(tmp_path / "big.pdf")
    assert p.stat().st_size > 1000
    assert "larger than" in one_sentence(ingest(str(p)))


def test_unknown_and_unreachable_arxiv(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_arxiv({}, {}) as srv:
        monkeypatch.setenv("PAPERCODER_ARXIV_URL", srv.url)
        assert "arXiv has no paper 2101.09999" in one_sentence(ingest("arxiv:2101.09999"))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    monkeypatch.setenv("PAPERCODER_ARXIV_URL", f"http://127.0.0.1:{port}")
    assert "Cannot reach arXiv" in one_sentence(ingest("arxiv:2101.00005"))


def test_unknown_extractor_and_missing_pymupdf(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "p.pdf")
    assert "Unknown PDF extractor" in one_sentence(ingest(str(pdf), "--extractor", "magic"))
    try:
        import pymupdf4llm  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        out = one_sentence(ingest(str(pdf), "--extractor", "pymupdf"))
        assert "pymupdf4llm (AGPL), which is not installed" in out


def test_pypdf_warnings_do_not_reach_the_terminal(tmp_path: Path, capfd) -> None:  # noqa: ANN001
    good = make_pdf(tmp_path / "good.pdf").read_bytes()
    # A broken xref offset: pypdf repairs it and would log a warning.
    broken = good.replace(b"startxref\n", b"startxref\n1")
    p = tmp_path / "repaired.pdf"
    p.write_bytes(broken)
    r = ingest(str(p))
    captured = capfd.readouterr()
    assert "pypdf" not in captured.err
    assert r.exit_code == 0, r.output
    assert "pypdf reported" in r.output
