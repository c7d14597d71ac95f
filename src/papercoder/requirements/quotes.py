"""Is a quote in the paper? Both sides are reduced to a comparable skeleton first.

The skeleton ignores what differs between a paper's text and a faithful quote of it: case,
whitespace and line breaks, a word hyphenated at the end of a line, Unicode compatibility
forms (ligatures, full-width digits), typographic quotes and dashes, and maths written as
LaTeX (``$\\eta = 0.05$``, ``\\frac{1}{n}``) or as Unicode (``η = 0.05``). What is left are
letters, digits and the symbols that carry meaning in maths.
"""

from __future__ import annotations

import re
import unicodedata

MIN_QUOTE_CHARS = 12
"""A quote whose skeleton is shorter than this grounds nothing (``"the"``, ``"$x$"``)."""
MAX_QUOTE_CHARS = 600
"""Longer quotes are not quotes (the prompt asks for about 300 characters)."""

LATEX_SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "θ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "rho": "ρ", "sigma": "σ",
    "tau": "τ", "upsilon": "υ", "phi": "φ", "varphi": "φ", "chi": "χ", "psi": "ψ",
    "omega": "ω", "Gamma": "γ", "Delta": "δ", "Theta": "θ", "Lambda": "λ", "Xi": "ξ",
    "Pi": "π", "Sigma": "σ", "Phi": "φ", "Psi": "ψ", "Omega": "ω",
    "sum": "∑", "prod": "∏", "int": "∫", "nabla": "∇", "partial": "∂", "infty": "∞",
    "top": "⊤", "intercal": "⊤", "cdot": "·", "times": "×", "leq": "≤", "le": "≤",
    "geq": "≥", "ge": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "sim": "∼", "in": "∈",
    "to": "→", "rightarrow": "→", "leftarrow": "←", "gets": "←", "pm": "±", "sqrt": "√",
    "ell": "ℓ", "odot": "⊙", "otimes": "⊗", "oplus": "⊕", "log": "log", "exp": "exp",
    "max": "max", "min": "min", "arg": "arg", "softmax": "softmax",
}
_COMMAND = re.compile(r"\\([A-Za-z]+)")
_HYPHEN_BREAK = re.compile(r"(\w)[-\u00ad\u2010]\s*\n\s*(\w)")
_HYPHEN_SPACE = re.compile(r"(\w)[-\u00ad\u2010] +([a-z])")
"""A line-end hyphen whose line break became a space ("be- cause"), as PDF text and copies
of it often have."""
_SOFT = str.maketrans({"\u00ad": None, "\u2018": "'", "\u2019": "'", "\u201c": '"',
                       "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u2212": "-",
                       "\u2217": "*", "\u22c5": "·", "\u00b7": "·"})
_KEEP = re.compile(r"[^\w=+\-*/<>^·×≤≥≠≈∼∈→←±√∑∏∫∇∂∞⊤ℓ⊙⊗⊕%.]")


def _command(m: re.Match[str]) -> str:
    return LATEX_SYMBOLS.get(m.group(1), LATEX_SYMBOLS.get(m.group(1).lower(), ""))


def skeleton(text: str) -> str:
    """The comparable form of ``text`` (see the module's docstring)."""
    t = unicodedata.normalize("NFKC", text).translate(_SOFT)
    t = _HYPHEN_BREAK.sub(r"\1\2", t)
    t = _COMMAND.sub(_command, t)
    t = _HYPHEN_SPACE.sub(r"\1\2", t.replace("\\", "").casefold())
    t = "".join(ch for ch in unicodedata.normalize("NFKD", t) if not unicodedata.combining(ch))
    t = t.replace("_", "")  # subscripts: $w_t$ and w_t and wt
    t = _KEEP.sub("", t)
    t = t.replace("^", "")  # superscripts: x^2 and x2 (Unicode ² is "2" after NFKC)
    return re.sub(r"\.(?=\D|$)", "", t)  # sentence full stops; decimal points stay


class QuoteIndex:
    """The skeleton of a paper (and addendum) for repeated quote look-ups."""

    def __init__(self, *texts: str) -> None:
        self.text = "\n".join(skeleton(t) for t in texts if t)

    def problem(self, quote: str) -> str | None:
        """Why ``quote`` does not ground a requirement in this paper, or None when it does."""
        if not isinstance(quote, str) or not quote.strip():
            return "the quote is empty"
        if len(quote) > MAX_QUOTE_CHARS:
            return f"the quote is longer than {MAX_QUOTE_CHARS} characters"
        s = skeleton(quote)
        if len(s) < MIN_QUOTE_CHARS:
            return "the quote is too short to locate in the paper"
        if s not in self.text:
            # ellipses: every part must be in the paper, in order
            parts = [skeleton(x) for x in re.split(r"\.\.\.|…|\[\.\.\.\]", quote)]
            parts = [x for x in parts if x]
            if len(parts) > 1 and all(len(x) >= MIN_QUOTE_CHARS for x in parts):
                at = 0
                for x in parts:
                    at = self.text.find(x, at)
                    if at < 0:
                        break
                    at += len(x)
                else:
                    return None
            return "the quote is not in the paper (it must be copied verbatim)"
        return None
