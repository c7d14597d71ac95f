"""The strict equation metric of bench/ingest_fidelity.py: order and structure count."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _load(name: str):  # noqa: ANN202 - a module loaded by path
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


m = _load("fidelity_metric")

REF = (r"\mathcal{J}(\psi)=\frac{1}{2} \int_{0}^{T} \lambda_{t} "
       r"\left\|s_{\psi}(\theta_{t})\right\|^{2} \mathrm{d} t")


def _grade(extraction: str) -> str:
    return m.grade(m.tokens(REF), m.EquationFinder(extraction))


def test_latex_and_unicode_agree_and_numbers_are_ignored() -> None:
    latex = "$$J(ψ) = \\frac{1}{2} ∫_{0}^{T} λ_t ‖s_ψ(θ_t)‖^{2} dt \\tag{6}$$"
    assert _grade(f"Some prose.\n\n{latex}\n") == "readable"
    assert _grade("J(ψ) = \\frac{1}{2} ∫_0^T λ_t ∥s_ψ(θ_t)∥^2 dt (6)") == "readable"


def test_flattened_fraction_and_lost_limits_are_damaged() -> None:
    # The old reader's output: numerator and limits on other lines, no structure.
    assert _grade("J(ψ) = 1 ∫ λ_t ‖s_ψ(θ_t)‖^2 dt (6)\n2 0") == "damaged"
    # Right symbols, wrong order: a bag of characters would accept this.
    assert _grade("dt ‖^{2} ‖ ) (θ_t s_ψ λ_t ∫_{0}^{T} \\frac{1}{2} = ) ψ ( J") != "readable"
    assert _grade("an unrelated sentence about something else entirely") == "lost"


def test_brackets_and_script_contents_must_survive() -> None:
    assert _grade("J(ψ) = \\frac{1}{2} ∫_{0}^{T} λ_t s_ψ(θ_t)^{2} dt") != "readable"
    assert _grade("J(ψ) = \\frac{1}{2} ∫_{0}^{T} λ_t ‖s_ψ(θ_t)‖^{4} dt") != "readable"
    assert _grade("J(ψ) = \\frac{2}{1} ∫_{0}^{T} λ_t ‖s_ψ(θ_t)‖^{2} dt") != "readable"


def test_bad_characters_are_counted() -> None:
    assert m.bad_chars("a\x02b\x03c\n\t\x85") == (3, 0)
    assert m.bad_chars("x\ue000y") == (0, 1)


def test_algorithm_box_must_be_contiguous() -> None:
    box = "Algorithm 1 Train\n for each step do\n update the weights\n end for\n return model"
    words = m.words_in_order(box)
    assert m.box_contiguous(words, "Algorithm 1 Train\nfor each step do\nupdate the weights\n"
                                   "end for\nreturn model\n")
    assert not m.box_contiguous(words, "Algorithm 1 Train\nfor each step do\n## 3 Method\n"
                                       "update the weights\nend for\nreturn model\n")
    assert not m.box_contiguous(words, "Algorithm 1 Train\nfor each step do\nMuch body text "
                                       "from the other column was spliced into the box here "
                                       "by a careless reader\nupdate the weights\nend for\n"
                                       "return model\n")


def test_reference_cleanup_keeps_maths_between_angle_brackets() -> None:
    fid = _load("ingest_fidelity")
    text = fid.latex_to_text(r"where $a<b$ and the long claim holds and $c>d$ <td>cell</td>")
    assert "long claim holds" in text
    assert "cell" in text and "<td>" not in text
