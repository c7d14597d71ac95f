"""The strict measures of bench/ingest_fidelity.py: display equations as ordered token
sequences with their structure, control and private-use characters, algorithm boxes.

LaTeX (the reference, or the reader's linear LaTeX) and Unicode text (what a PDF gives) are
brought to one token stream: one token per symbol (letters, digits, operators, brackets;
NFKC, so 𝑥 and x agree), commands mapped to their characters (\\alpha -> α, \\sum -> ∑,
\\mid -> |, \\| -> ‖), fonts, accents, sizing (\\left, \\big) and spacing dropped, and the
structure kept as tokens of its own: ``^{`` … ``}``, ``_{`` … ``}``, ``\\frac{`` … ``}{`` … ``}``,
``\\sqrt{`` … ``}``. Equation numbers (``\\tag{6}``, a trailing ``(6)``) are not part of an
equation on either side; an ellipsis however set (\\ldots, \\cdots, ···) is three full stops.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from difflib import SequenceMatcher

GREEK = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε",
    "zeta": "ζ", "eta": "η", "theta": "θ", "vartheta": "θ", "iota": "ι", "kappa": "κ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "xi": "ξ", "pi": "π", "varpi": "π", "rho": "ρ",
    "varrho": "ρ", "sigma": "σ", "varsigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ",
    "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ",
    "Theta": "Θ", "Lambda": "Λ", "Xi": "Ξ", "Pi": "Π", "Sigma": "Σ", "Upsilon": "Υ",
    "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω",
}
SYMBOLS = {
    "mid": "|", "vert": "|", "lvert": "|", "rvert": "|", "Vert": "‖", "lVert": "‖",
    "rVert": "‖", "|": "‖", "leq": "≤", "le": "≤", "leqslant": "≤", "geq": "≥", "ge": "≥",
    "geqslant": "≥", "neq": "≠", "ne": "≠", "approx": "≈", "propto": "∝", "sim": "∼",
    "simeq": "≃", "cong": "≅", "equiv": "≡", "in": "∈", "notin": "∉", "ni": "∋",
    "subset": "⊂", "subseteq": "⊆", "supset": "⊃", "supseteq": "⊇", "cup": "∪", "cap": "∩",
    "bigcup": "∪", "bigcap": "∩", "times": "×", "cdot": "·", "cdots": "...", "ldots": "...",
    "dots": "...", "vdots": "⋮", "ddots": "⋱", "rightarrow": "→", "to": "→",
    "longrightarrow": "→", "leftarrow": "←", "gets": "←", "Rightarrow": "⇒",
    "Leftarrow": "⇐", "Leftrightarrow": "⇔", "leftrightarrow": "↔", "mapsto": "↦",
    "uparrow": "↑", "downarrow": "↓", "Uparrow": "⇑", "Downarrow": "⇓", "infty": "∞",
    "nabla": "∇", "partial": "∂", "sum": "∑", "prod": "∏", "int": "∫", "oint": "∮",
    "iint": "∬", "forall": "∀", "exists": "∃", "pm": "±", "mp": "∓", "langle": "⟨",
    "rangle": "⟩", "lceil": "⌈", "rceil": "⌉", "lfloor": "⌊", "rfloor": "⌋", "prime": "′",
    "star": "⋆", "ast": "*", "circ": "∘", "odot": "⊙", "otimes": "⊗", "oplus": "⊕",
    "emptyset": "∅", "varnothing": "∅", "setminus": "∖", "neg": "¬", "lnot": "¬",
    "wedge": "∧", "land": "∧", "vee": "∨", "lor": "∨", "triangleq": "≜", "ll": "≪", "gg": "≫",
    "perp": "⊥", "top": "⊤", "dagger": "†", "ell": "ℓ", "hbar": "ℏ", "checkmark": "✓",
    "lbrace": "\\{", "rbrace": "\\}", "{": "\\{", "}": "\\}", "backslash": "∖",
    "colon": ":", "coloneqq": ":=", "div": "÷", "bullet": "•", "diamond": "◇",
    "square": "□", "Box": "□", "triangle": "△", "angle": "∠", "aleph": "ℵ", "Re": "ℜ",
    "Im": "ℑ", "wp": "℘", "models": "⊨", "vdash": "⊢", "sharp": "♯", "flat": "♭",
    "%": "%", "#": "#", "&": "&", "_": "_", "$": "$", "lt": "<", "gt": ">",
}
WORDS = {"log", "exp", "ln", "min", "max", "sin", "cos", "tan", "tanh", "sinh", "cosh", "arg",
         "lim", "det", "sup", "inf", "Pr", "dim", "ker", "deg", "gcd", "liminf", "limsup",
         "argmin", "argmax", "softmax", "sgn", "tr", "Tr", "diag", "var", "Var", "Cov"}
KEEP_ARG = {"mathrm", "mathbf", "mathit", "mathsf", "mathtt", "mathcal", "mathbb", "mathfrak",
            "mathscr", "boldsymbol", "bm", "pmb", "text", "textrm", "textit", "textbf", "textsf",
            "texttt", "textnormal", "operatorname", "mathnormal", "mbox", "hbox", "mathop",
            "mathbin", "mathrel", "mathord", "emph", "textup", "up", "underbrace", "overbrace",
            # accents: not part of the measured structure (a PDF sets them as loose glyphs)
            "tilde", "widetilde", "hat", "widehat", "bar", "overline", "underline", "dot",
            "ddot", "vec", "check", "breve", "acute", "grave", "mathring", "overrightarrow"}
DROP = {"left", "right", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl", "Bigr",
        "biggl", "biggr", "Biggl", "Biggr", "middle", "limits", "nolimits", "displaystyle",
        "textstyle", "scriptstyle", "scriptscriptstyle", "quad", "qquad", "nonumber", "notag",
        "rm", "bf", "it", "cal", "sf", "tt", "boldmath", "hline", "cr", "relax", "nobreak",
        "allowbreak", "strut", "mathstrut", "centering", "enspace", "thinspace", "negthinspace"}
DROP_ARG = {"label", "tag", "hspace", "vspace", "phantom", "hphantom", "vphantom", "color",
            "textcolor", "eqref", "ref", "cite", "citep", "citet"}
FRACS = {"frac", "dfrac", "tfrac", "cfrac", "binom", "dbinom", "tbinom"}
BIG_OPS = {"∑", "∏", "∫", "∮", "∬", "∪", "∩", "lim"}
LIMIT_WORDS = ("lim", "max", "min", "sup", "inf")
BRACKETS = {"(", ")", "[", "]", "\\{", "\\}", "|", "‖", "⟨", "⟩", "⌈", "⌉", "⌊", "⌋"}
OPEN = {"^{", "_{", "\\frac{", "\\sqrt{"}
_CHAR_MAP = {"−": "-", "∗": "*", "∥": "‖", "∣": "|", "'": "′", "〈": "⟨", "〉": "⟩",
             "ϵ": "ε", "ϑ": "θ", "ϕ": "φ", "ϱ": "ρ", "ς": "σ", "ϖ": "π", "⩽": "≤", "⩾": "≥",
             "∙": "·", "⋅": "·", "⋯": "...", "…": "...", "∶": ":", "～": "∼", "˜": "", "ˆ": "",
             "¯": "", "˙": "", "¨": "", "ˇ": "", "`": "", "´": "", "ℓ": "l"}
_EQ_NUMBER_END = re.compile(r"\(\s*[A-Z]?\d{1,3}[a-z]?\s*\)\s*$")


def _chars(text: str) -> list[str]:
    """Maths symbols, one token each. Not words_in_order(): an equation's tokens keep every
    symbol (operators, brackets, primes; look-alikes mapped to one character) and no case
    folding (x and X are different variables), where prose is compared as case-folded runs
    of letters and digits only."""
    out = []
    for c in unicodedata.normalize("NFKC", text):
        c = _CHAR_MAP.get(c, c)
        for d in c:
            if d.isspace() or unicodedata.category(d) in ("Mn", "Cf"):
                continue
            out.append(d)
    return out


class _Parser:
    def __init__(self, s: str) -> None:
        self.s = s
        self.i = 0

    def seq(self, stop: str | None = None) -> list[str]:
        out: list[str] = []
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if stop is not None and c == stop:
                self.i += 1
                return out
            out += self.atom()
        return out

    def atom(self) -> list[str]:
        s = self.s
        c = s[self.i]
        if c == "{":
            self.i += 1
            return self.seq("}")
        if c in "}&$~":
            self.i += 1
            return []
        if c in "^_":
            self.i += 1
            return [c + "{", *self.arg(), "}"]
        if c == "\\":
            return self.command()
        self.i += 1
        return _chars(c)

    def arg(self) -> list[str]:
        s = self.s
        while self.i < len(s) and s[self.i].isspace():
            self.i += 1
        if self.i >= len(s):
            return []
        if s[self.i] == "{":
            self.i += 1
            return self.seq("}")
        if s[self.i] == "\\":
            return self.command()
        c = s[self.i]
        self.i += 1
        return _chars(c)

    def raw_arg(self) -> str:
        """A {...} argument as text (for names and column specs)."""
        s = self.s
        while self.i < len(s) and s[self.i].isspace():
            self.i += 1
        if self.i < len(s) and s[self.i] == "{":
            depth, j = 0, self.i
            while j < len(s):
                if s[j] == "{":
                    depth += 1
                elif s[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            text = s[self.i + 1:j]
            self.i = j + 1
            return text
        return ""

    def command(self) -> list[str]:
        s = self.s
        self.i += 1  # the backslash
        if self.i >= len(s):
            return []
        m = re.match(r"[A-Za-z]+\*?", s[self.i:])
        if not m:
            c = s[self.i]
            self.i += 1
            if c in ",;:! \\":
                return []
            return [SYMBOLS.get(c, c)]
        name = m.group(0).rstrip("*")
        self.i += len(m.group(0))
        if name in ("left", "right", "bigl", "bigr", "Bigl", "Bigr", "biggl", "biggr", "big",
                    "Big", "bigg", "Bigg", "middle"):
            while self.i < len(s) and s[self.i].isspace():
                self.i += 1
            if self.i < len(s) and s[self.i] == ".":
                self.i += 1
            return []
        if name in DROP:
            return []
        if name in DROP_ARG:
            self.raw_arg()
            return []
        if name in ("begin", "end"):
            env = self.raw_arg()
            if name == "begin" and env.rstrip("*") in ("array", "tabular"):
                self.raw_arg()
            return []
        if name in FRACS:
            a = self.arg()
            b = self.arg()
            return ["\\frac{", *a, "}{", *b, "}"]
        if name == "sqrt":
            index: list[str] = []
            if self.i < len(s) and s[self.i] == "[":
                j = s.find("]", self.i)
                j = len(s) if j < 0 else j
                index = _chars(s[self.i + 1:j])
                self.i = j + 1
            body = self.arg()
            return [*(["^{", *index, "}"] if index else []), "\\sqrt{", *body, "}"]
        if name in ("overset", "stackrel"):
            top = self.arg()
            return [*self.arg(), "^{", *top, "}"]
        if name == "underset":
            bottom = self.arg()
            return [*self.arg(), "_{", *bottom, "}"]
        if name in KEEP_ARG:
            return self.arg()
        if name in GREEK:
            return [GREEK[name]]
        if name in SYMBOLS:
            return _chars(SYMBOLS[name]) if len(SYMBOLS[name]) > 1 and \
                not SYMBOLS[name].startswith("\\") else [SYMBOLS[name]]
        if name in WORDS:
            return list(name)
        if name in ("not",):
            return ["¬"]
        return ["\\" + name]


def _tidy(toks: list[str]) -> list[str]:
    """Empty groups go; a superscript of primes is the primes themselves; a superscript
    followed by a subscript of the same base is written subscript first."""
    out: list[str] = []
    for t in toks:
        out.append(t)
        if t == "}" and len(out) >= 2 and out[-2] in ("^{", "_{"):
            del out[-2:]
        elif t == "}" and len(out) >= 3 and out[-3] == "^{" and out[-2] == "′":
            del out[-3]
            del out[-1]
    return _dots(_sub_first(out))


def _dots(toks: list[str]) -> list[str]:
    """Three centred dots are an ellipsis, as three full stops are (\\cdots = \\ldots)."""
    out: list[str] = []
    for t in toks:
        out.append(t)
        if out[-3:] == ["·", "·", "·"]:
            out[-3:] = [".", ".", "."]
    return out


def _group_end(toks: list[str], k: int) -> int:
    """Index just past the group opened at k."""
    depth = 0
    for j in range(k, len(toks)):
        if toks[j] in OPEN:
            depth += 1
        elif toks[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(toks)


def _sub_first(toks: list[str]) -> list[str]:
    out = list(toks)
    k = 0
    while k < len(out):
        if out[k] == "^{":
            e = _group_end(out, k)
            if e < len(out) and out[e] == "_{":
                e2 = _group_end(out, e)
                out[k:e2] = out[e:e2] + out[k:e]
        k += 1
    return out


def tokens(text: str) -> list[str]:
    """The normalised token stream of LaTeX or Unicode maths."""
    text = _EQ_NUMBER_END.sub("", text.strip())
    return _tidy(_Parser(text).seq())


def structure(toks: list[str]) -> Counter[tuple[str, tuple[str, ...]]]:
    """The structural units: each script (limits of big operators apart), each fraction's
    numerator and denominator, each root's extent, with their exact contents."""
    units: Counter[tuple[str, tuple[str, ...]]] = Counter()
    stack: list[tuple[str, int]] = []
    for k, t in enumerate(toks):
        if t in OPEN:
            kind = {"^{": "sup", "_{": "sub", "\\frac{": "numerator", "\\sqrt{": "root"}[t]
            if t in ("^{", "_{"):
                base = _base(toks, k)
                if base in BIG_OPS:
                    kind = "limit-" + kind
            stack.append((kind, k + 1))
        elif t == "}{" and stack:
            kind, start = stack.pop()
            units[(kind, tuple(toks[start:k]))] += 1
            stack.append(("denominator", k + 1))
        elif t == "}" and stack:
            kind, start = stack.pop()
            units[(kind, tuple(toks[start:k]))] += 1
    return units


def _base(toks: list[str], k: int) -> str:
    """The token a script at k attaches to (skipping an earlier script of the same base)."""
    j = k - 1
    depth = 0
    while j >= 0:
        t = toks[j]
        if t == "}":
            depth += 1
        elif t in OPEN or t == "}{":
            if depth == 0:
                return ""
            if t in OPEN:
                depth -= 1
            if depth == 0 and t in ("^{", "_{"):
                j -= 1
                continue
        elif depth == 0:
            before = "".join(toks[max(0, j - 5):j + 1])
            if any(before.endswith(w) for w in LIMIT_WORDS):
                return "lim"
            return t
        j -= 1
    return ""


def brackets(toks: list[str]) -> list[str]:
    return [t for t in toks if t in BRACKETS]


def structure_ok(ref: list[str], got: list[str]) -> bool:
    """Every structural unit of the reference is in the candidate, with the same contents,
    and the brackets come in the same order."""
    return not (structure(ref) - structure(got)) and brackets(ref) == brackets(got)


def similarity(ref: list[str], got: list[str]) -> float:
    return SequenceMatcher(None, ref, got, autojunk=False).ratio()


class EquationFinder:
    """Finds, for a reference equation, the best-aligned window of consecutive non-blank
    lines of an extraction (one to ten lines: a stacked formula read line by line takes
    several)."""

    def __init__(self, markdown: str, max_lines: int = 10) -> None:
        self.lines = [t for t in (tokens(ln) for ln in markdown.splitlines()) if t]
        self.bags = [Counter(t for t in ln if t not in OPEN and t not in ("}", "}{"))
                     for ln in self.lines]
        self.max_lines = max_lines

    def best(self, ref: list[str]) -> tuple[float, list[str]]:
        want = Counter(t for t in ref if t not in OPEN and t not in ("}", "}{"))
        n = sum(want.values())
        if not ref or not n:
            return 1.0, []
        # Seeds: the lines most like the equation (Dice overlap of their symbols).
        scored = sorted(((2 * sum((b & want).values()) / (n + b.total()), i)
                         for i, b in enumerate(self.bags) if b), reverse=True)[:12]
        best, best_toks = 0.0, []
        seen: set[tuple[int, int]] = set()
        for score, i in scored:
            if score < 0.1:
                break
            for a in range(max(0, i - self.max_lines + 1), i + 1):
                for b in range(i, min(len(self.lines), a + self.max_lines)):
                    if (a, b) in seen:
                        continue
                    seen.add((a, b))
                    got = [t for ln in self.lines[a:b + 1] for t in ln]
                    if len(got) > 3 * len(ref) + 10:
                        break
                    sm = SequenceMatcher(None, ref, got, autojunk=False)
                    if sm.real_quick_ratio() <= best or sm.quick_ratio() <= best:
                        continue
                    r = sm.ratio()
                    if r > best or (r == best and len(got) < len(best_toks)):
                        best, best_toks = r, got
        return best, best_toks


READABLE = 0.9
PRESENT = 0.5


def grade(ref: list[str], finder: EquationFinder) -> str:
    """readable: ordered tokens align (ratio >= 0.9) and the structure survives;
    damaged: the content is there (ratio >= 0.5) but not readable; lost: otherwise."""
    r, got = finder.best(ref)
    if r >= READABLE and structure_ok(ref, got):
        return "readable"
    return "damaged" if r >= PRESENT else "lost"


# -- characters and algorithm boxes -----------------------------------------------------------
def bad_chars(text: str) -> tuple[int, int]:
    """Control characters (C0/C1 other than newline and tab) and private-use characters."""
    control = sum(1 for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0)
    private = sum(1 for c in text if unicodedata.category(c) == "Co")
    return control, private


_WORD = re.compile(r"[^\W_]+")


def words_in_order(text: str) -> list[str]:
    """The words of prose, in order: maximal runs of Unicode letters or digits (numbers
    included) after NFKC and case folding. The one word normaliser of the fidelity bench."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


def algorithm_boxes(md: str) -> list[str]:
    """The reference's algorithm boxes: fenced blocks starting with "Algorithm N"."""
    out = []
    for m in re.finditer(r"```[^\n]*\n(.*?)```", md, re.S):
        body = m.group(1)
        if re.match(r"\s*Algorithm\s+\d", body):
            out.append(body)
    return out


def box_contiguous(box_words: list[str], extraction: str) -> bool:
    """The box's words come in order, without foreign text between them: from where its
    title ("Algorithm 3 ...") is, at least 85% of its words align inside a window at most
    1.15 times its length, and no heading line falls inside."""
    lines = extraction.splitlines()
    words: list[str] = []
    for ln in lines:
        if ln.lstrip().startswith("#"):
            words.append("\x00heading")
        else:
            words += words_in_order(ln)
    n = len(box_words)
    if n < 3:
        return True
    head = box_words[:3]
    span = int(1.15 * n) + 3
    for k in range(len(words) - 2):
        if words[k:k + 3] != head:
            continue
        window = words[k:k + span]
        sm = SequenceMatcher(None, box_words, window, autojunk=False)
        # Where 85% of the box has been matched, in order: no heading before that.
        got, last = 0, None
        for b in sm.get_matching_blocks():
            got += b.size
            if got >= 0.85 * n:
                last = b.b + b.size
                break
        if last is not None and "\x00heading" not in window[:last]:
            return True
    return False
