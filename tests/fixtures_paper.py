"""Build paper fixtures in tests: PDFs with fpdf2, LaTeX projects and arXiv archives, and a
loopback HTTP server that plays arXiv."""

from __future__ import annotations

import gzip
import http.server
import io
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fpdf import FPDF

BODY = (
    "Deep networks learn representations from data. We study how the width of each layer "
    "changes the accuracy of the model on held out examples, and we report every setting "
    "so that the experiments can be repeated by other groups without guessing. "
)
RUNNING_HEAD = "Width Matters: A Study of Layer Sizes"


def words(n: int, seed: int = 0) -> str:
    """Deterministic filler prose of about n words."""
    vocab = ("model layer width accuracy training data network results method figure table "
             "learning rate batch optimizer loss gradient baseline benchmark dataset "
             "experiment").split()
    out = [vocab[(i * 7 + seed * 3) % len(vocab)] for i in range(n)]
    return " ".join(out).capitalize() + "."


class _Paper(FPDF):
    def __init__(self, running: bool) -> None:
        super().__init__(unit="pt", format="letter")
        self.running = running
        self.set_auto_page_break(False)

    def header(self) -> None:
        if self.running and self.page_no() > 1:
            self.set_font("Helvetica", "", 8)
            self.set_xy(0, 20)
            self.cell(self.w, 10, RUNNING_HEAD, align="C")

    def footer(self) -> None:
        if self.running:
            self.set_font("Helvetica", "", 9)
            self.set_xy(0, self.h - 40)
            self.cell(self.w, 10, str(self.page_no()), align="C")


@dataclass
class PdfSpec:
    two_columns: bool = False
    outline: bool = False
    running: bool = True
    bold_headings: bool = True
    right_column_first: bool = False
    """Write the right column into the content stream before the left one."""
    line_numbers: bool = False
    """Number the lines in the left margin, like a review copy."""
    wide_table: bool = False
    """A table across both columns at the top of page 2 (cells clear of the gutter)."""
    sections: list[tuple[str, int]] = field(default_factory=lambda: [
        ("1 Introduction", 1), ("2 Method", 1), ("2.1 Model", 2), ("3 Experiments", 1),
        ("4 Conclusion", 1)])


def make_pdf(path: Path, spec: PdfSpec | None = None) -> Path:
    """A small paper: title, abstract, numbered sections over two pages, a figure and a
    table caption, an equation line, a hyphenated word and a reference list."""
    spec = spec or PdfSpec()
    pdf = _Paper(spec.running)
    pdf.set_margins(50, 60, 50)
    pdf.add_page()
    width = pdf.w - 100
    pdf.set_font("Helvetica", "B", 18)
    pdf.set_xy(50, 70)
    pdf.multi_cell(width, 22, "Width Matters: A Study of Layer Sizes", align="C")
    pdf.set_font("Helvetica", "", 10)
    pdf.set_x(50)
    pdf.multi_cell(width, 14, "Ada Lovelace and Alan Turing", align="C")
    pdf.ln(8)
    pdf.set_font("Helvetica", "B", 12)
    pdf.set_x(50)
    pdf.multi_cell(width, 16, "Abstract", align="C")
    pdf.set_font("Helvetica", "", 10)
    pdf.set_x(80)
    pdf.multi_cell(width - 60, 13, "We measure how layer width changes accuracy. " + BODY)
    top = pdf.get_y() + 12

    blocks = _blocks(spec)
    if spec.two_columns:
        col_w = (width - 20) / 2
        columns = [(50.0, col_w), (50 + col_w + 20, col_w)]
    else:
        columns = [(50.0, width)]
    _flow(pdf, spec, blocks, columns, top)
    pdf.output(str(path))
    return path


def _blocks(spec: PdfSpec) -> list[tuple[str, str, int]]:
    """(kind, text, level) in reading order."""
    out: list[tuple[str, str, int]] = []
    for k, (heading, level) in enumerate(spec.sections):
        out.append(("heading", heading, level))
        if heading.startswith("2.1"):
            out.append(("text", "The model computes its output with the linear map", 0))
            out.append(("equation", "y = S w x + b", 0))
            out.append(("text", "where W holds the weights and b is the bias of the "
                        "represen-\ntation layer, as in earlier work.", 0))
        out.append(("text", BODY + words(150, k), 0))
        if heading.startswith("3"):
            out.append(("caption", "Figure 1: Accuracy as a function of layer width.", 0))
            out.append(("text", words(40, k + 7), 0))
            out.append(("caption", "Table 1: Results on the three benchmarks.", 0))
            out.append(("text", BODY, 0))
    out.append(("heading", "References", 1))
    for i, ref in enumerate([
            "A. Author and B. Author. Wide networks generalize. In Proceedings of the "
            "Conference on Learning, pages 1-10, 2019.",
            "C. Writer. Narrow layers and their limits. Journal of Models, 12(3):45-67, 2020.",
            "D. Person, E. Person, and F. Person. A benchmark for width. arXiv preprint "
            "arXiv:2101.00001, 2021."], start=1):
        out.append(("ref", f"[{i}] {ref}", 0))
    return out


def _flow(pdf: FPDF, spec: PdfSpec, blocks: list[tuple[str, str, int]],
          columns: list[tuple[float, float]], top: float) -> None:
    """Lay the blocks out column by column; with right_column_first the right column of
    each page is drawn first."""
    bottom = pdf.h - 80
    # Lay out into (page, column) buckets first, then draw in the requested order.
    pages: list[list[list[tuple[str, str, int, float]]]] = [[[] for _ in columns]]
    col, y = 0, top
    for kind, text, level in blocks:
        lines = _wrap(pdf, text, kind, columns[col][1])
        need = len(lines) * 13 + (12 if kind in ("heading", "caption", "equation") else 6)
        if y + need > bottom:
            col += 1
            y = top if len(pages) == 1 else _page_top(spec, len(pages) - 1)
            if col == len(columns):
                pages.append([[] for _ in columns])
                col = 0
                y = _page_top(spec, len(pages) - 1)
        pages[-1][col].append((kind, text, level, y))
        y += need
    for p, page in enumerate(pages):
        if p > 0:
            pdf.add_page()
        if spec.outline:  # outline entries in reading order, whatever the drawing order
            for c, (x, _) in enumerate(columns):
                for kind, text, level, yy in page[c]:
                    if kind == "heading":
                        pdf.set_xy(x, yy)
                        pdf.start_section(text.split(" ", 1)[-1] if text[0].isdigit()
                                          else text, level=level - 1)
        if spec.wide_table and p == 1:
            pdf.set_font("Helvetica", "", 9)
            for k, row in enumerate(WIDE_TABLE):
                for x, cell in zip((60, 140, 220, 330, 410, 490), row, strict=True):
                    pdf.text(x, 80 + 13 * k, cell)
        if spec.line_numbers:
            pdf.set_font("Helvetica", "", 7)
            for k, yy in enumerate(range(int(top if p == 0 else 70), int(pdf.h - 80), 13)):
                pdf.set_xy(18, yy)
                pdf.cell(20, 13, str(p * 60 + k + 1))
        order = list(range(len(columns)))
        if spec.right_column_first:
            order.reverse()
        for c in order:
            x, w = columns[c]
            for kind, text, level, yy in page[c]:
                _draw(pdf, spec, kind, text, level, x, w, yy)


WIDE_TABLE = [("Method", "Acc", "F1", "Time", "Memory", "Params"),
              ("Ours", "91.2", "88.0", "1.2h", "12GB", "7B"),
              ("Baseline", "85.1", "80.3", "3.4h", "20GB", "7B"),
              ("Small", "80.0", "75.5", "0.9h", "8GB", "1B")]


def _page_top(spec: PdfSpec, page: int) -> float:
    return 70.0 + (13 * len(WIDE_TABLE) + 30 if spec.wide_table and page == 1 else 0)


def _wrap(pdf: FPDF, text: str, kind: str, width: float) -> list[str]:
    style = "B" if kind == "heading" else ""
    pdf.set_font("Helvetica", style, 10)
    return pdf.multi_cell(width, 13, text, dry_run=True, output="LINES")


def _draw(pdf: FPDF, spec: PdfSpec, kind: str, text: str, level: int, x: float, w: float,
          y: float) -> None:
    pdf.set_xy(x, y)
    if kind == "heading":
        size = 12 if level == 1 else 10
        pdf.set_font("Helvetica", "B" if spec.bold_headings else "", size)
        pdf.set_xy(x, y)
        pdf.multi_cell(w, 14, text)
    elif kind == "equation":
        # The Symbol font, like a math font: "y = S w x + b" shows as ψ = Σ ω ξ + β.
        pdf.set_font("Symbol", "", 10)
        pdf.set_xy(x + w * 0.3, y)
        pdf.cell(w * 0.4, 13, text)
        pdf.set_font("Helvetica", "", 10)
        pdf.set_xy(x + w - 20, y)
        pdf.cell(20, 13, "(1)", align="R")
    else:
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(w, 13, text, align="L")


# -- LaTeX --------------------------------------------------------------------------------
MAIN_TEX = r"""\documentclass{article}
\usepackage{amsmath}
% A comment that must vanish: SECRET-COMMENT
\newcommand{\R}{\mathbb{R}}
\newcommand{\vect}[1]{\mathbf{#1}}
\newcommand{\pair}[2][0]{\langle #1, #2 \rangle}
\def\loss#1{\mathcal{L}(#1)}
\newcommand{\method}{WidthNet}
\title{Width Matters: \method{} for Layer Sizes}
\begin{document}
\maketitle
\begin{abstract}
We study \method, a model with $\vect{x} \in \R^d$. Accuracy rises by 50\% % not this
in our tests.
\end{abstract}
\input{sections/intro}
\include{missing_chapter}
\section{Method}\label{sec:method}
The loss is
\begin{equation}\label{eq:loss}
\loss{\theta} = \sum_i \| \vect{y}_i - f(\vect{x}_i) \|^2
\end{equation}
and we minimise Equation~\eqref{eq:loss} as said in Section~\ref{sec:intro}.
\begin{align}
a &= \pair{b} \\
c &= \pair[1]{d}
\end{align}
Also $$E = mc^2$$ and \[ \vect{z} = \R \]
\subsection*{Details}
\begin{table}[t]
\caption{Results on the benchmarks.}\label{tab:res}
\begin{tabular}{lcc}
\toprule
Model & Acc & F1 \\
\midrule
\method & 91.2 & 88.0 \\
Baseline & 85.1 & 80.3 \\
\bottomrule
\end{tabular}
\end{table}
\begin{figure}
\includegraphics{fig.png}
\caption{Accuracy against width.}
\end{figure}
See Table~\ref{tab:res} and \cite{smith2020,doe2021}.
\begin{itemize}
\item first point
\item second point with \textbf{bold}
\end{itemize}
\section*{Acknowledgements}
We thank the reviewers.
\appendix
\section{Proofs}
The proof is short.
\begin{thebibliography}{9}
\bibitem{smith2020} J. Smith. \newblock Wide models. \newblock In \emph{Proc. ICML}, 2020.
\bibitem[Doe(2021)]{doe2021} J. Doe. Narrow models. 2021.
\end{thebibliography}
\end{document}
"""

INTRO_TEX = r"""\section{Introduction}\label{sec:intro}
Layers have widths.% joined
Wide ones help.
"""


def make_latex_project(root: Path) -> Path:
    (root / "sections").mkdir(parents=True, exist_ok=True)
    (root / "main.tex").write_text(MAIN_TEX, encoding="utf-8")
    (root / "sections" / "intro.tex").write_text(INTRO_TEX, encoding="utf-8")
    (root / "macros_unused.tex").write_text("\\section{Not the main file}\n", encoding="utf-8")
    return root


def tar_gz(files: dict[str, bytes], *, extra: list[tarfile.TarInfo] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tf.addfile(info)
    return buf.getvalue()


def arxiv_archive() -> bytes:
    return tar_gz({"main.tex": MAIN_TEX.encode(), "sections/intro.tex": INTRO_TEX.encode()})


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


# -- a loopback arXiv ---------------------------------------------------------------------
class FakeArxiv:
    """Serves /e-print/<id> and /pdf/<id> from dicts; counts requests."""

    def __init__(self, eprints: dict[str, bytes], pdfs: dict[str, bytes]) -> None:
        self.eprints, self.pdfs = eprints, pdfs
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests.append(self.path)
                kind, _, ident = self.path.lstrip("/").partition("/")
                table = {"e-print": outer.eprints, "pdf": outer.pdfs}.get(kind, {})
                body = table.get(ident)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)

    def __enter__(self) -> FakeArxiv:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def fake_arxiv(eprints: dict[str, bytes], pdfs: dict[str, bytes]) -> Iterator[FakeArxiv]:
    with FakeArxiv(eprints, pdfs) as srv:
        yield srv
