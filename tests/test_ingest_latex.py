"""LaTeX: projects with \\input and macros, folders, arXiv archives read safely in memory."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from papercoder.errors import PaperError
from papercoder.paper import load_paper
from papercoder.paper.latex_lex import strip_comments
from papercoder.paper.latex_macros import collect, expand
from papercoder.paper.latex_source import project_from_archive
from tests.fixtures_paper import INTRO_TEX, MAIN_TEX, arxiv_archive, gz, make_latex_project, tar_gz


def _check_project(paper) -> None:  # noqa: ANN001
    assert paper.source_format == "latex"
    assert paper.title == "Width Matters: WidthNet for Layer Sizes"
    assert paper.abstract.startswith("We study WidthNet, a model with $\\mathbf{x} \\in "
                                     "\\mathbb{R}^d$. Accuracy rises by 50% in our tests.")
    heads = [(s.heading, s.level, s.kind) for s in paper.sections]
    assert heads == [
        ("1 Introduction", 1, "body"), ("2 Method", 1, "body"), ("Details", 2, "body"),
        ("Acknowledgements", 1, "acknowledgements"), ("A Proofs", 1, "appendix"),
        ("References", 1, "references")]
    md = paper.to_markdown()
    assert "SECRET-COMMENT" not in md and "not this" not in md
    # "%" at a line end joins the lines, as in TeX.
    assert "Layers have widths.Wide ones help." in md
    # Macros with an argument, with an optional default, and \def, expanded in the math.
    assert paper.equations[0] == ("\\mathcal{L}(\\theta) = \\sum_i \\| \\mathbf{y}_i - "
                                  "f(\\mathbf{x}_i) \\|^2")
    assert paper.equations[1] == ("\\begin{align}\na &= \\langle 0, b \\rangle \\\\\n"
                                  "c &= \\langle 1, d \\rangle\n\\end{align}")
    assert paper.equations[2:] == ["E = mc^2", "\\mathbf{z} = \\mathbb{R}"]
    assert "$$\n\\mathcal{L}(\\theta) = \\sum_i" in md and "\\tag{1}" in md
    # References resolve to LaTeX's numbers.
    assert "we minimise Equation (1) as said in Section 1." in md
    assert "See Table 1 and [smith2020, doe2021]." in md
    assert paper.tables[0].startswith("Table 1: Results on the benchmarks.")
    assert "| WidthNet | 91.2 | 88.0 |" in paper.tables[0]
    assert paper.figures == ["Figure 1: Accuracy against width."]
    assert "- second point with **bold**" in md
    assert paper.references == ["J. Smith. Wide models. In *Proc. ICML*, 2020.",
                                "J. Doe. Narrow models. 2021."]
    assert any("missing_chapter" in w and "not found" in w for w in paper.warnings)


def test_folder_project_finds_main_and_flattens_inputs(tmp_path: Path) -> None:
    root = make_latex_project(tmp_path / "proj")
    _check_project(load_paper(root))


def test_single_tex_file_reads_its_inputs(tmp_path: Path) -> None:
    root = make_latex_project(tmp_path / "proj")
    _check_project(load_paper(root / "main.tex"))


def test_arxiv_archive_in_memory(tmp_path: Path) -> None:
    p = tmp_path / "2101.00001.tar.gz"
    p.write_bytes(arxiv_archive())
    _check_project(load_paper(p))


def test_archive_ignores_unsafe_members(tmp_path: Path) -> None:
    link = tarfile.TarInfo("sections/link.tex")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    data = tar_gz({"main.tex": MAIN_TEX.encode(), "sections/intro.tex": INTRO_TEX.encode(),
                   "../evil.tex": b"\\section{Evil}", "/abs/evil2.tex": b"\\section{Evil}"},
                  extra=[link])
    project = project_from_archive(data, "paper.tar.gz")
    assert set(project.files) == {"main.tex", "sections/intro.tex"}
    assert any("unsafe paths" in w for w in project.warnings)
    assert not (tmp_path.parent / "evil.tex").exists()


def test_single_gzipped_tex_and_bbl_bibliography(tmp_path: Path) -> None:
    tex = (r"\documentclass{article}\title{One File}\begin{document}\section{Intro}"
           r"Text \citep{a}.\bibliography{refs}\end{document}")
    p = tmp_path / "one.gz"
    p.write_bytes(gz(tex.encode()))
    paper = load_paper(p)
    assert paper.title == "One File" and paper.sections[0].heading == "1 Intro"
    assert any(".bib" in w for w in paper.warnings)

    bbl = (r"\begin{thebibliography}{1}\bibitem[A(2020)]{a} A. Author. \newblock "
           r"\emph{A title}. 2020.\end{thebibliography}")
    p2 = tmp_path / "two.tar.gz"
    p2.write_bytes(tar_gz({"paper.tex": tex.encode(), "paper.bbl": bbl.encode()}))
    paper = load_paper(p2)
    assert paper.references == ["A. Author. *A title*. 2020."]


def test_gzipped_pdf_in_an_eprint_is_read_as_pdf(tmp_path: Path) -> None:
    from tests.fixtures_paper import make_pdf

    pdf = make_pdf(tmp_path / "x.pdf").read_bytes()
    p = tmp_path / "eprint.gz"
    p.write_bytes(gz(pdf))
    assert load_paper(p).source_format == "pdf"


def test_archive_without_tex_is_an_error(tmp_path: Path) -> None:
    p = tmp_path / "figs.tar.gz"
    p.write_bytes(tar_gz({"fig.png": b"\x89PNG..."}))
    with pytest.raises(PaperError, match="holds no .tex file"):
        load_paper(p)


def test_comments_are_stripped_but_escaped_percent_stays() -> None:
    src = "a 50\\% b % gone\n% whole line\n\nc%\n   d \\\\% e\n"
    assert strip_comments(src) == "a 50\\% b \n\ncd \\\\\n"


def test_macros_with_arguments_defaults_and_def() -> None:
    macros, rest = collect(r"\newcommand{\x}[2][k]{#1^{#2}}\def\y#1{[#1]}"
                           r"\renewcommand*\z{zz}\DeclareMathOperator{\tr}{tr} $\x{2} \x[j]{3} "
                           r"\y{q} \z \tr A \zq$")
    assert set(macros) == {"x", "y", "z", "tr"}
    assert expand(rest, macros) == " $k^{2} j^{3} [q] zz \\operatorname{tr} A \\zq$"


def test_recursive_macro_stops() -> None:
    macros, rest = collect(r"\newcommand{\r}{\r\r}\r")
    out = expand(rest, macros)
    assert len(out) < 100_000


def test_macros_from_a_local_package_and_pdf_strings(tmp_path: Path) -> None:
    (tmp_path / "mymacros.sty").write_text("\\newcommand{\\E}{\\mathbb{E}}\n"
                                           "\\ProvidesPackage{mymacros}\n")
    (tmp_path / "paper.tex").write_text(
        "\\documentclass{article}\\usepackage{amsmath,mymacros}\\begin{document}"
        "\\section{Risk \\texorpdfstring{$\\E[X]$}{E[X]}}Text $\\E[Y]$.\n"
        "\\begin{algorithm2e}\\caption{Train}step one\\end{algorithm2e}\\end{document}")
    paper = load_paper(tmp_path / "paper.tex")
    assert paper.sections[0].heading == "1 Risk $\\mathbb{E}[X]$"
    assert "Text $\\mathbb{E}[Y]$." in paper.sections[0].text
    assert "algorithm2e" not in paper.to_markdown()


def test_latin1_source_is_read_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "m.tex").write_bytes("\\section{Caf\xe9}\nText.\n".encode("latin-1"))
    paper = load_paper(tmp_path / "m.tex")
    assert paper.sections[0].heading == "1 Café"
    assert any("Latin-1" in w for w in paper.warnings)


def test_tar_reader_does_not_extract_to_disk(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    def refuse(*a, **k):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("extract to disk")

    monkeypatch.setattr(tarfile.TarFile, "extractall", refuse)
    monkeypatch.setattr(tarfile.TarFile, "extract", refuse)
    project = project_from_archive(arxiv_archive(), "a.tar.gz")
    assert "main.tex" in project.files
    assert io  # imported for the archive helpers


def test_theorems_lists_code_and_algorithms(tmp_path: Path) -> None:
    tex = r"""\documentclass{article}\title{Bits}\begin{document}
\section{Odd}
\begin{theorem}[Main]\label{thm:x} For all $x$, $f(x)\ge 0$.\end{theorem}
\begin{proof} Trivial. \end{proof}
\begin{enumerate}\item one \begin{itemize}\item nested\end{itemize}\item two\end{enumerate}
\begin{lstlisting}[language=Python]
def f(x): return x % 2
\end{lstlisting}
\begin{algorithm}\caption{Train}\label{alg:t}\begin{algorithmic}[1]
\Require data $D$
\For{$t=1..T$} \State update $\theta$ \EndFor
\end{algorithmic}\end{algorithm}
See \autoref{thm:x} and Algorithm~\ref{alg:t}.
\end{document}"""
    (tmp_path / "b.tex").write_text(tex)
    text = load_paper(tmp_path / "b.tex").sections[0].text
    assert "**Theorem 1 (Main).** For all $x$, $f(x)\\ge 0$." in text
    assert "*Proof.* Trivial." in text
    assert "1. one\n  - nested\n2. two" in text
    assert "```\ndef f(x): return x % 2\n```" in text
    assert ("Algorithm 1: Train\n\n```\nRequire: data $D$\nfor $t=1..T$ do\nupdate $\\theta$\n"
            "end for\n```") in text
    assert "See Theorem 1 and Algorithm 1." in text


def test_title_block_line_breaks_and_dings(tmp_path: Path) -> None:
    tex = (r"\begin{document}\begin{center}{\LARGE \textbf{Wavelet Skips\\[4pt] for "
           r"Segmentation}}\\[20pt]\today\end{center}\section{A}"
           "\n" r"\begin{tabular}{lc}Ours & \ding{51} \\ Old & \ding{55}\end{tabular}"
           "\n" r"Then \[ a=b \] and\\[2pt] more.\end{document}")
    (tmp_path / "t.tex").write_text(tex)
    paper = load_paper(tmp_path / "t.tex")
    assert paper.title == "Wavelet Skips for Segmentation"
    assert paper.equations == ["a=b"]
    assert "| Ours | ✓ |\n|---|---|\n| Old | ✗ |" in paper.to_markdown()
