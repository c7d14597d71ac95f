"""The pypdf reader on PDFs generated here with fpdf2: one and two columns, with and without
an outline, running headers and page numbers, captions, an equation and references."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from papercoder.paper import load_paper
from papercoder.paper.pdf import read_pdf
from tests.fixtures_paper import RUNNING_HEAD, PdfSpec, make_pdf

HEADINGS = ["1 Introduction", "2 Method", "2.1 Model", "3 Experiments", "4 Conclusion",
            "References"]


def _check_common(paper) -> None:  # noqa: ANN001
    assert paper.source_format == "pdf"
    assert paper.title == "Width Matters: A Study of Layer Sizes"
    assert paper.abstract.startswith("We measure how layer width changes accuracy.")
    assert [s.heading for s in paper.sections] == HEADINGS
    assert [s.level for s in paper.sections] == [1, 1, 2, 1, 1, 1]
    assert paper.sections[-1].kind == "references"
    md = paper.to_markdown()
    # The running head (= the title) appears once, as the title; page numbers are gone.
    assert md.count(RUNNING_HEAD) == 1
    assert not re.search(r"(?m)^\s*\d+\s*$", md)
    # A word hyphenated at a line end is joined again.
    assert "representation layer" in md and "represen-" not in md
    assert paper.figures == ["Figure 1: Accuracy as a function of layer width."]
    assert paper.tables == ["Table 1: Results on the three benchmarks."]
    assert len(paper.references) == 3
    assert paper.references[1].startswith("[2] C. Writer. Narrow layers")
    assert paper.references[0].endswith("pages 1-10, 2019.")
    # The equation line (set in the Symbol font) stays whole and is collected.
    assert paper.equations == ["ψ = Σ ω ξ + β \\tag{1}"]
    method = next(s for s in paper.sections if s.heading == "2.1 Model")
    assert "$$\nψ = Σ ω ξ + β \\tag{1}\n$$" in method.text.split("\n\n")
    assert paper.warnings == []


def test_one_column_with_outline_and_plain_headings(tmp_path: Path) -> None:
    # Headings in the body font: only the outline can tell they are headings.
    pdf = make_pdf(tmp_path / "p.pdf", PdfSpec(outline=True, bold_headings=False))
    paper = load_paper(pdf)
    _check_common(paper)


def test_one_column_without_outline_uses_fonts_and_numbers(tmp_path: Path) -> None:
    paper = load_paper(make_pdf(tmp_path / "p.pdf", PdfSpec()))
    _check_common(paper)


def test_line_numbers_of_a_review_copy_are_dropped(tmp_path: Path) -> None:
    paper = load_paper(make_pdf(tmp_path / "p.pdf", PdfSpec(line_numbers=True)))
    _check_common(paper)


def test_roman_numbered_capital_headings(tmp_path: Path) -> None:
    spec = PdfSpec(sections=[("I. INTRODUCTION", 1), ("II. METHOD", 1), ("2.1 Model", 2),
                             ("III. EXPERIMENTS", 1), ("IV. CONCLUSION", 1)],
                   bold_headings=False)
    paper = load_paper(make_pdf(tmp_path / "p.pdf", spec))
    assert [s.heading for s in paper.sections][:2] == ["I. INTRODUCTION", "II. METHOD"]
    assert "IV. CONCLUSION" in [s.heading for s in paper.sections]


def test_plain_headings_without_outline_are_not_invented(tmp_path: Path) -> None:
    paper = load_paper(make_pdf(tmp_path / "p.pdf", PdfSpec(bold_headings=False)))
    # Typography alone cannot find them: the text is there, under fewer headings.
    assert "2.1 Model" not in [s.heading for s in paper.sections]
    assert "2.1 Model" in paper.to_markdown()


@pytest.mark.parametrize("outline", [False, True])
def test_two_columns_are_read_left_then_right(tmp_path: Path, outline: bool) -> None:
    # The right column is written into the content stream first: order comes from layout.
    spec = PdfSpec(two_columns=True, right_column_first=True, outline=outline)
    paper = read_pdf(make_pdf(tmp_path / "p.pdf", spec))
    _check_common(paper)
    md = paper.to_markdown()
    positions = [md.index(f"## {h}") if not h.startswith("2.1") else md.index(f"### {h}")
                 for h in HEADINGS]
    assert positions == sorted(positions)


def test_full_width_table_on_a_two_column_page_keeps_its_rows(tmp_path: Path) -> None:
    paper = read_pdf(make_pdf(tmp_path / "p.pdf", PdfSpec(two_columns=True, wide_table=True)))
    _check_common(paper)
    md = paper.to_markdown()
    assert ("Method Acc F1 Time Memory Params\nOurs 91.2 88.0 1.2h 12GB 7B\n"
            "Baseline 85.1 80.3 3.4h 20GB 7B\nSmall 80.0 75.5 0.9h 8GB 1B") in md


def test_stream_order_does_not_matter(tmp_path: Path) -> None:
    a = read_pdf(make_pdf(tmp_path / "a.pdf", PdfSpec(two_columns=True)))
    b = read_pdf(make_pdf(tmp_path / "b.pdf", PdfSpec(two_columns=True,
                                                      right_column_first=True)))
    assert a.to_markdown() == b.to_markdown()


def test_sections_views_and_token_counts(tmp_path: Path) -> None:
    paper = read_pdf(make_pdf(tmp_path / "p.pdf"))
    counts = dict(paper.section_tokens())
    assert set(counts) == set(HEADINGS) and all(v > 0 for v in counts.values())
    slim = paper.without(["references"])
    assert slim.references == [] and "References" not in [s.heading for s in slim.sections]
    assert slim.estimate_tokens() < paper.estimate_tokens()


def test_rotated_text_is_left_out_with_a_warning(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format="letter")
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.text(72, 80, "A Paper With a Landscape Table")
    pdf.set_font("Helvetica", "B", 12)
    pdf.text(72, 120, "1 Introduction")
    pdf.set_font("Helvetica", "", 10)
    for k in range(20):
        pdf.text(72, 140 + 13 * k, f"Body line {k} of the introduction with ordinary words.")
    with pdf.rotation(90, 400, 700):
        for k in range(12):
            pdf.text(400, 700 + 12 * k, f"rotated cell row {k} alpha beta gamma delta epsilon")
    p = tmp_path / "rot.pdf"
    pdf.output(str(p))
    paper = read_pdf(p)
    assert "rotated cell" not in paper.to_markdown()
    assert any("rotated text" in w for w in paper.warnings)
    assert "Body line 19 of the introduction" in paper.sections[0].text


def test_a_page_pypdf_cannot_read_is_skipped_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from papercoder.paper import pdf_layout

    real = pdf_layout.page_runs
    calls = {"n": 0}

    def flaky(page, fonts, **kw):  # noqa: ANN001, ANN003, ANN202
        calls["n"] += 1
        if calls["n"] == 2:
            raise ValueError("broken content stream")
        return real(page, fonts, **kw)

    monkeypatch.setattr(pdf_layout, "page_runs", flaky)
    paper = read_pdf(make_pdf(tmp_path / "p.pdf"))
    assert paper.warnings == ["Page(s) 2 could not be read; their text is missing."]
    assert paper.sections[0].heading == "1 Introduction"


def test_structure_failure_falls_back_to_plain_text(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from papercoder.paper import pdf

    def boom(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise IndexError("odd layout")

    monkeypatch.setattr(pdf, "build_paper", boom)
    paper = read_pdf(make_pdf(tmp_path / "p.pdf"))
    assert [s.heading for s in paper.sections] == ["Text"]
    assert "Deep networks learn representations" in paper.sections[0].text
    assert "could not be recovered (IndexError)" in paper.warnings[0]


@pytest.mark.shared
def test_adaptive_pruning_table_marks_and_affiliations_are_read_right(shared: Path) -> None:
    """`papercoder ingest` on a shared two-column ICML paper: Table 1's check marks and
    arrows stay table text (not display equations, not counted as equations), and the
    first page's affiliation footnote is not spliced into the Introduction."""
    import json as _json

    from typer.testing import CliRunner

    from papercoder.cli import app

    pdf = shared / "papers" / "adaptive-pruning" / "paper.pdf"
    if not pdf.is_file():
        pytest.skip("adaptive-pruning is not in ../shared")
    r = CliRunner().invoke(app, ["ingest", str(pdf), "--json", "--no-source"])
    assert r.exit_code == 0, r.output
    paper = _json.loads(r.output)
    assert not any(ch in eq for eq in paper["equations"] for ch in "✓✗⇑⇓"), paper["equations"]
    intro = next(s for s in paper["sections"] if "Introduction" in s["heading"])
    assert "Correspondence to" not in intro["text"] and "Copyright" not in intro["text"]
    assert "For instance" in intro["text"] and "✗ ✓" in " ".join(
        s["text"] for s in paper["sections"])
