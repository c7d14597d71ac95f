"""arXiv ids and URLs, served by a loopback HTTP server playing arXiv: the LaTeX source is
preferred, the PDF is the fallback, downloads are cached."""

from __future__ import annotations

from pathlib import Path

import pytest

from papercoder.errors import PaperError
from papercoder.paper import load_paper
from papercoder.paper.arxiv import parse_arxiv_id
from tests.fixtures_paper import arxiv_archive, fake_arxiv, make_pdf


@pytest.mark.parametrize("text,ident", [
    ("arxiv:1706.03762", "1706.03762"), ("arXiv:1706.03762v7", "1706.03762v7"),
    ("https://arxiv.org/abs/1706.03762", "1706.03762"),
    ("https://arxiv.org/pdf/1706.03762v5.pdf", "1706.03762v5"),
    ("http://export.arxiv.org/abs/hep-th/9901001v1", "hep-th/9901001v1"),
    ("2401.12345", "2401.12345"), ("paper.pdf", None), ("notes", None)])
def test_parse_arxiv_id(text: str, ident: str | None) -> None:
    assert parse_arxiv_id(text) == ident


def test_bad_arxiv_reference_is_one_sentence() -> None:
    with pytest.raises(PaperError, match="is not an arXiv id"):
        parse_arxiv_id("arxiv:not-an-id")


def test_latex_source_is_preferred_and_cached(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = make_pdf(tmp_path / "p.pdf").read_bytes()
    with fake_arxiv({"2101.00001": arxiv_archive()}, {"2101.00001": pdf}) as srv:
        monkeypatch.setenv("PAPERCODER_ARXIV_URL", srv.url)
        paper = load_paper("arxiv:2101.00001")
        assert srv.requests == ["/e-print/2101.00001"]
    assert paper.source_format == "latex"
    assert paper.source == f"{srv.url}/abs/2101.00001"
    assert paper.title == "Width Matters: WidthNet for Layer Sizes"
    assert paper.sections[0].heading == "1 Introduction"
    # The server is gone; the cache answers.
    assert (tmp_path / "cache" / "arxiv" / "2101.00001.src").is_file()
    again = load_paper("https://arxiv.org/abs/2101.00001")
    assert again.to_markdown() == paper.to_markdown()


def test_pdf_is_the_fallback_when_there_is_no_source(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = make_pdf(tmp_path / "p.pdf").read_bytes()
    with fake_arxiv({}, {"2101.00002": pdf}) as srv:
        monkeypatch.setenv("PAPERCODER_ARXIV_URL", srv.url)
        paper = load_paper("https://arxiv.org/pdf/2101.00002")
        assert srv.requests == ["/e-print/2101.00002", "/pdf/2101.00002"]
    assert paper.source_format == "pdf"
    assert paper.title == "Width Matters: A Study of Layer Sizes"
    assert any("PDF was read instead" in w for w in paper.warnings)


def test_unreadable_source_falls_back_to_pdf(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pdf = make_pdf(tmp_path / "p.pdf").read_bytes()
    with fake_arxiv({"2101.00003": b"\x1f\x8bnot really gzip"}, {"2101.00003": pdf}) as srv:
        monkeypatch.setenv("PAPERCODER_ARXIV_URL", srv.url)
        paper = load_paper("arxiv:2101.00003")
    assert paper.source_format == "pdf"
    assert any("could not be read" in w for w in paper.warnings)


def test_unknown_id(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_arxiv({}, {}) as srv:
        monkeypatch.setenv("PAPERCODER_ARXIV_URL", srv.url)
        with pytest.raises(PaperError, match=r"^arXiv has no paper 2101\.09999; check the id\.$"):
            load_paper("arxiv:2101.09999")


def test_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("PAPERCODER_ARXIV_URL", f"http://127.0.0.1:{port}")
    with pytest.raises(PaperError, match="Cannot reach arXiv"):
        load_paper("arxiv:2101.00004")
