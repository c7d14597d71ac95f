"""LaTeX body text to Markdown, keeping every formula as LaTeX.

Display math (equation, align, gather, multline, eqnarray, \\[ \\], $$) is kept verbatim
inside $$ ... $$ and collected; inline math stays $...$. Lists become Markdown lists,
tables pipe tables, figures and tables their numbered captions, algorithms numbered-free
lines, and the rest of the markup is dropped while its text is kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from papercoder.paper.latex_lex import find_env, read_group, read_optional

DISPLAY_ENVS = ("equation", "align", "gather", "multline", "eqnarray", "flalign", "alignat",
                "displaymath", "dmath", "math")
_MULTILINE_ENVS = ("align", "gather", "multline", "eqnarray", "flalign", "alignat")
FLOAT_FIGURE = ("figure", "figure*", "wrapfigure", "SCfigure", "subfigure")
FLOAT_TABLE = ("table", "table*", "wraptable", "SCtable", "subtable")
_TABULAR = ("tabular", "tabular*", "tabularx", "tabulary", "longtable", "supertabular",
            "array", "tblr")
_LISTS = {"itemize": "-", "enumerate": "1.", "description": "-", "compactitem": "-",
          "compactenum": "1.", "inparaenum": "1."}
_CODE = ("verbatim", "verbatim*", "lstlisting", "minted", "Verbatim", "alltt", "codeblock")
_DROP_ENVS = ("tikzpicture", "pgfpicture", "picture", "forest", "thebibliography", "titlepage",
              "abstract", "keywords", "IEEEkeywords", "CCSXML", "filecontents", "filecontents*",
              "tocentry")
_ALGO = ("algorithm", "algorithm*", "algorithmic", "algorithm2e", "algorithmic*", "procedure")
_THEOREMS = ("theorem", "lemma", "proposition", "corollary", "definition", "remark", "example",
             "assumption", "claim", "conjecture", "proof", "observation", "fact", "hypothesis",
             "problem", "question", "note", "exercise", "axiom", "property", "condition")

# Commands removed together with their arguments: (mandatory count, optional allowed)
_DROP_ARGS = {
    "label": 1, "vspace": 1, "vspace*": 1, "hspace": 1, "hspace*": 1, "includegraphics": 1,
    "bibliographystyle": 1, "bibliography": 1, "usepackage": 1, "setlength": 2,
    "addtolength": 2, "setcounter": 2, "addtocounter": 2, "addcontentsline": 3,
    "thispagestyle": 1, "pagestyle": 1, "newcolumntype": 2, "captionsetup": 1, "rule": 2,
    "phantom": 1, "vphantom": 1, "hphantom": 1, "linespread": 1, "fontsize": 2, "color": 1,
    "definecolor": 3, "hypersetup": 1, "newtheorem": 2, "newtheorem*": 2, "theoremstyle": 1,
    "graphicspath": 1, "crefname": 3, "Crefname": 3, "newcounter": 1, "nocite": 1,
    "pdfbookmark": 2, "cmidrule": 1, "specialrule": 3, "arrayrulecolor": 1, "rowcolor": 1,
    "cellcolor": 1, "columncolor": 1, "pagenumbering": 1, "icmlsetsymbol": 2,
    "icmlaffiliation": 2, "icmlcorrespondingauthor": 2, "icmlkeywords": 1, "affiliation": 1,
    "email": 1, "orcid": 1, "institute": 1, "address": 1, "keywords": 1, "acmConference": 1,
    "setcopyright": 1, "acmYear": 1, "acmDOI": 1, "copyrightyear": 1, "acmPrice": 1,
    "acmISBN": 1, "settopmatter": 1, "ccsdesc": 1, "newif": 1, "DeclareGraphicsExtensions": 1,
    "numberwithin": 2, "urlstyle": 1, "enlargethispage": 1, "belowcaptionskip": 0,
    "addbibresource": 1, "printbibliography": 0, "newlength": 1, "newenvironment": 3,
    "renewenvironment": 3, "author": 1, "date": 1, "title": 1, "thanks": 1, "twocolumn": 0,
    "icmltitle": 1, "icmltitlerunning": 1, "runningtitle": 1, "shorttitle": 1,
    "runningauthor": 1, "markboth": 2, "footnotemark": 0, "tnotetext": 1,
}
_DROP_SWITCHES = {
    "maketitle", "centering", "small", "footnotesize", "scriptsize", "tiny", "large", "Large",
    "LARGE", "huge", "Huge", "normalsize", "noindent", "newpage", "clearpage", "cleardoublepage",
    "pagebreak", "bigskip", "medskip", "smallskip", "vfill", "hfill", "par", "indent",
    "appendix", "tableofcontents", "listoffigures", "listoftables", "protect", "relax",
    "boldmath", "unboldmath", "raggedright", "raggedleft", "sloppy", "fussy", "bf", "it", "em",
    "rm", "sf", "tt", "sc", "sl", "bfseries", "itshape", "mdseries", "upshape", "ttfamily",
    "rmfamily", "sffamily", "scshape", "slshape", "normalfont", "hline", "toprule", "midrule",
    "bottomrule", "addlinespace", "endhead", "endfirsthead", "endfoot", "endlastfoot",
    "nolinenumbers", "linenumbers", "onecolumn", "printAffiliationsAndNotice",
    "icmlEqualContribution",
    "and", "AND", "IEEEpeerreviewmaketitle", "frenchspacing", "nonfrenchspacing", "xspace",
    "null", "strut", "makeatletter", "makeatother", "balance", "FloatBarrier", "vskip",
    "hskip", "ignorespaces", "unskip", "nobreak", "allowbreak", "break", "linebreak",
    "nopagebreak", "selectfont", "leavevmode", "noalign", "centerline", "hss", "vss",
}
_TEXT_ARG = {"textbf": "**", "textit": "*", "emph": "*", "textsl": "*", "texttt": "`",
             "textsc": "", "textrm": "", "textsf": "", "textnormal": "", "textup": "",
             "textmd": "", "mbox": "", "hbox": "", "text": "", "underline": "", "uline": "",
             "ul": "", "textsuperscript": "^", "textsubscript": "_", "fbox": "", "framebox": "",
             "makebox": "", "mathrm": "", "mathbf": "**", "caption": "", "subcaption": "",
             "paragraph": "", "sout": "", "st": "", "hl": "", "textcolor": "",
             "colorbox": "", "centerline": "", "noun": "", "acro": "", "ac": "", "acp": "",
             "gls": "", "glspl": "", "acs": "", "acl": "", "acf": ""}
_CITE = re.compile(r"(?:no)?cite[a-zA-Z]*\*?|[pP]arencite|[tT]extcite|[aA]utocite|"
                   r"footcite|citealp|citealt|shortcite")
_REFS = {"ref": "", "eqref": "eq", "autoref": "auto", "cref": "auto", "Cref": "auto",
         "pageref": "", "nameref": "", "vref": "", "Autoref": "auto", "subref": "",
         "creflastconjunction": ""}
_SYMBOLS = {
    "ldots": "…", "dots": "…", "textellipsis": "…", "textendash": "–", "textemdash": "—",
    "textbullet": "•", "LaTeX": "LaTeX", "TeX": "TeX", "ss": "ß", "o": "ø", "O": "Ø",
    "aa": "å", "AA": "Å", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "l": "ł", "L": "Ł",
    "i": "ı", "S": "§", "P": "¶", "copyright": "©", "textregistered": "®",
    "texttrademark": "™", "dag": "†", "ddag": "‡", "textdagger": "†", "textdaggerdbl": "‡",
    "checkmark": "✓", "cmark": "✓", "xmark": "✗", "textasciitilde": "~", "textbackslash": "\\",
    "textbar": "|", "textless": "<", "textgreater": ">", "textquoteleft": "‘",
    "textquoteright": "’", "textquotedblleft": "“", "textquotedblright": "”", "textdegree": "°",
    "degree": "°", "pounds": "£", "euro": "€", "times": "×", "eg": "e.g.", "ie": "i.e.",
    "etal": "et al.", "etc": "etc.", "vs": "vs.", "wrt": "w.r.t.", "cf": "cf.",
}
_ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303",
            "=": "\u0304", ".": "\u0307", "c": "\u0327", "v": "\u030c", "u": "\u0306",
            "H": "\u030b", "k": "\u0328", "r": "\u030a", "d": "\u0323", "b": "\u0331"}


@dataclass
class Context:
    """State shared across the whole document: numbering and what was collected."""

    labels: dict[str, str] = field(default_factory=dict)
    section: str = ""
    figure: int = 0
    table: int = 0
    equation: int = 0
    algorithm: int = 0
    theorems: dict[str, int] = field(default_factory=dict)
    appendix: bool = False
    equations: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    """label -> what it names (section, figure, table, equation, algorithm)."""

    def reset(self) -> None:
        self.figure = self.table = self.equation = self.algorithm = 0
        self.theorems = {}
        self.equations, self.figures, self.tables = [], [], []


class Converter:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- blocks ------------------------------------------------------------------------------
    def convert(self, text: str) -> str:
        """LaTeX (no sectioning commands) to Markdown paragraphs."""
        out: list[str] = []
        pos = 0
        display = re.compile(r"\\begin\s*\{([A-Za-z0-9*]+)\}|(?<!\\)\\\[|(?<!\\)\$\$")
        while True:
            m = display.search(text, pos)
            if m is None:
                out.append(self.inline(text[pos:]))
                break
            out.append(self.inline(text[pos:m.start()]))
            if m.group(0) == "\\[":
                end = text.find("\\]", m.end())
                end = len(text) if end == -1 else end
                out.append(self.display(text[m.end():end], None))
                pos = end + 2
            elif m.group(0) == "$$":
                end = text.find("$$", m.end())
                end = len(text) if end == -1 else end
                out.append(self.display(text[m.end():end], None))
                pos = end + 2
            else:
                name = m.group(1)
                env = find_env(text, name, m.start())
                if env is None:  # pragma: no cover - the regex found a \begin
                    pos = m.end()
                    continue
                _, c0, c1, end = env
                out.append(self.environment(name, text[c0:c1]))
                pos = end
        return _tidy("".join(out))

    def environment(self, name: str, body: str) -> str:
        base = name.rstrip("*")
        if base in DISPLAY_ENVS:
            return self.display(body, name)
        if name in _DROP_ENVS:
            return "\n\n"
        if base in _LISTS or name in _LISTS:
            return self.listing(body, _LISTS.get(base, "-"), base == "description")
        if name in FLOAT_FIGURE or name in FLOAT_TABLE:
            return self.floating(name, body)
        if base in _TABULAR:
            return "\n\n" + self.tabular(body) + "\n\n"
        if name in _CODE:
            _, body = _take_optional(body)
            return "\n\n```\n" + body.strip("\n") + "\n```\n\n"
        if name in _ALGO:
            return self.algorithm(name, body)
        if base.lower() in _THEOREMS or base.lower().rstrip("s") in _THEOREMS:
            title, body = _take_optional(body)
            label = base.capitalize()
            if base.lower() != "proof" and not name.endswith("*"):
                n = self.ctx.theorems[base.lower()] = self.ctx.theorems.get(base.lower(), 0) + 1
                label += f" {n}"
                for lab in _own_labels(body):
                    self._label(lab, str(n), base.lower())
            label += f" ({self.inline(title)})" if title else ""
            inner = self.convert(body)
            style = "*" if base.lower() == "proof" else "**"
            return f"\n\n{style}{label}.{style} {inner}\n\n"
        if base in ("appendices", "appendix"):
            self.ctx.appendix = True
        # Anything else (center, minipage, quote, unknown): keep its text.
        if base in ("minipage", "tabularx", "adjustbox", "wrapfigure", "multicols", "column"):
            _, body = _take_optional(body)
            g = read_group(body, 0)
            if g is not None and re.fullmatch(r"[\d.\\a-z]*", g[0].strip() or "x"):
                body = body[g[1]:]
        return "\n\n" + self.convert(body) + "\n\n"

    def display(self, body: str, env: str | None) -> str:
        content = re.sub(r"\\label\s*\{[^}]*\}", "", body)
        numbered = env is None or not env.endswith("*")
        base = (env or "").rstrip("*")
        if env is None:
            numbered = False
        tags: list[str] = []
        if numbered and base in DISPLAY_ENVS and base not in ("displaymath", "math"):
            rows = re.split(r"\\\\(?![a-zA-Z])", body) if base in _MULTILINE_ENVS and \
                base != "multline" else [body]
            for row in rows:
                if not row.strip() or re.search(r"\\(nonumber|notag)\b", row):
                    continue
                if re.search(r"\\tag\*?\s*\{", row):
                    continue
                self.ctx.equation += 1
                tags.append(str(self.ctx.equation))
                for lab in re.findall(r"\\label\s*\{([^}]*)\}", row):
                    self._label(lab.strip(), str(self.ctx.equation), "equation")
        content = content.strip("\n")
        if base in _MULTILINE_ENVS:
            latex = f"\\begin{{{env}}}\n{content.strip()}\n\\end{{{env}}}"
        else:
            latex = content.strip()
        self.ctx.equations.append(latex)
        tag = f" \\tag{{{tags[0]}}}" if len(tags) == 1 and base not in _MULTILINE_ENVS else ""
        if len(tags) > 1 or (tags and base in _MULTILINE_ENVS):
            tag = ""
            suffix = f" ({', '.join(tags)})"
        else:
            suffix = ""
        return f"\n\n$$\n{latex}{tag}\n$${suffix}\n\n"

    def listing(self, body: str, marker: str, description: bool) -> str:
        parts = _top_level_items(body)
        lines: list[str] = []
        for n, part in enumerate(parts[1:], start=1):
            label, part = _take_optional(part)
            text = self.convert(part).strip()
            text = re.sub(r"\n+", "\n  ", text)  # nested paragraphs and lists, indented
            bullet = f"{n}." if marker == "1." else "-"
            if label:
                text = f"**{self.inline(label).strip()}** {text}"
            lines.append(f"{bullet} {text}")
        return "\n\n" + "\n".join(lines) + "\n\n"

    def _caption(self, body: str) -> tuple[str, list[str]]:
        caps: list[str] = []
        for m in re.finditer(r"\\(?:sub)?caption(?:of)?\*?(?![A-Za-z])", body):
            i = m.end()
            if "captionof" in m.group(0):
                g = read_group(body, i)
                i = g[1] if g else i
            _, i = read_optional(body, i)
            g = read_group(body, i)
            if g is not None:
                caps.append(self.inline(g[0]).strip())
        labels = re.findall(r"\\label\s*\{([^}]*)\}", body)
        return " ".join(c for c in caps if c), labels

    def floating(self, name: str, body: str) -> str:
        is_table = name in FLOAT_TABLE or ("\\begin{tabular" in body and name not in
                                           FLOAT_FIGURE)
        caption, labels = self._caption(body)
        if name in ("subfigure", "subtable"):
            return f"\n\n({caption})\n\n" if caption else "\n\n"
        if is_table:
            self.ctx.table += 1
            num, kind = self.ctx.table, "table"
            head = f"Table {self._appendix_num(num)}"
        else:
            self.ctx.figure += 1
            num, kind = self.ctx.figure, "figure"
            head = f"Figure {self._appendix_num(num)}"
        for lab in labels:
            self._label(lab.strip(), self._appendix_num(num), kind)
        grids = []
        pos = 0
        for t in _TABULAR:
            pos = 0
            while True:
                env = find_env(body, t, pos)
                if env is None:
                    break
                grids.append((env[0], self.tabular(body[env[1]:env[2]])))
                pos = env[3]
        grid = "\n\n".join(g for _, g in sorted(grids))
        line = f"{head}: {caption}" if caption else head
        if is_table:
            self.ctx.tables.append(line + ("\n\n" + grid if grid else ""))
        else:
            self.ctx.figures.append(line)
        return "\n\n" + line + ("\n\n" + grid if grid else "") + "\n\n"

    def _appendix_num(self, n: int) -> str:
        return str(n)

    def tabular(self, body: str) -> str:
        # Drop the column spec: {lcc} (and the width of tabular*/tabularx).
        g = read_group(body, 0)
        if g is not None and body.lstrip().startswith("{"):
            spec = g[0]
            body = body[g[1]:]
            if re.fullmatch(r"[\d.\s]*\\(textwidth|linewidth|columnwidth|hsize)", spec.strip()):
                g = read_group(body, 0)
                body = body[g[1]:] if g is not None else body
        rows = []
        for raw in re.split(r"\\\\(?:\[[^\]]*\])?|\\tabularnewline", body):
            raw = re.sub(r"\\(hline|toprule|midrule|bottomrule|addlinespace|endhead|"
                         r"endfirsthead|cline\s*\{[^}]*\}|cmidrule(\([^)]*\))?\s*\{[^}]*\}|"
                         r"specialrule\s*\{[^}]*\}\s*\{[^}]*\}\s*\{[^}]*\})", " ", raw)
            cells = [self._cell(c) for c in _split_cells(raw)]
            if any(c for c in cells):
                rows.append(cells)
        if not rows:
            return ""
        width = max(len(r) for r in rows)
        lines = []
        for k, r in enumerate(rows):
            r = r + [""] * (width - len(r))
            lines.append("| " + " | ".join(r) + " |")
            if k == 0:
                lines.append("|" + "---|" * width)
        return "\n".join(lines)

    def _cell(self, cell: str) -> str:
        cell = re.sub(r"\\multicolumn\s*\{[^}]*\}\s*\{[^}]*\}", "", cell)
        cell = re.sub(r"\\multirow\s*(\[[^\]]*\])?\s*\{[^}]*\}\s*(\[[^\]]*\])?\s*\{[^}]*\}", "",
                      cell)
        return re.sub(r"\s+", " ", self.inline(cell)).strip().replace("|", "\\|")

    def algorithm(self, name: str, body: str) -> str:
        caption, labels = self._caption(body) if name.startswith("algorithm") else ("", [])
        head = ""
        if name.startswith("algorithm") and caption:
            self.ctx.algorithm += 1
            head = f"Algorithm {self.ctx.algorithm}: {caption}\n\n"
            for lab in labels:
                self._label(lab.strip(), str(self.ctx.algorithm), "algorithm")
        # algorithmic inside the algorithm float: one block, not a block in a block.
        body = re.sub(r"\\begin\s*\{algorithmic\*?\}(\s*\[[^\]]*\])?|\\end\s*\{algorithmic\*?\}",
                      "\n\n", body)
        body = re.sub(r"^\s*\[[^\]]*\]", "", body)  # algorithmic's own [1]
        body = re.sub(r"\\caption\*?\s*(\[[^\]]*\])?\s*\{", r"\\@capdrop{", body)
        body = _drop_command(body, "@capdrop", 1)
        steps = {
            "State": "\n\n", "STATE": "\n\n", "Statex": "\n\n", "Require": "\n\nRequire:",
            "REQUIRE": "\n\nRequire:", "Ensure": "\n\nEnsure:", "ENSURE": "\n\nEnsure:",
            "Input": "\n\nInput:", "Output": "\n\nOutput:", "KwIn": "\n\nInput:",
            "KwOut": "\n\nOutput:",
            "Else": "\n\nelse", "ELSE": "\n\nelse", "EndIf": "\n\nend if", "ENDIF": "\n\nend if",
            "EndFor": "\n\nend for", "ENDFOR": "\n\nend for", "EndWhile": "\n\nend while",
            "ENDWHILE": "\n\nend while", "EndFunction": "\n\nend function",
            "EndProcedure": "\n\nend procedure", "Return": "return", "RETURN": "\n\nreturn",
        }
        heads = {"If": "\n\nif {} then", "IF": "\n\nif {} then", "ElsIf": "\n\nelse if {} then",
                 "ELSIF": "\n\nelse if {} then", "For": "\n\nfor {} do", "FOR": "\n\nfor {} do",
                 "ForAll": "\n\nfor all {} do", "FORALL": "\n\nfor all {} do",
                 "While": "\n\nwhile {} do", "WHILE": "\n\nwhile {} do", "Comment": " // {}",
                 "COMMENT": " // {}", "tcp": " // {}", "Until": "\n\nuntil {}"}

        for cmd, fmt in heads.items():
            pat = re.compile(r"\\" + cmd + r"(?![A-Za-z])")
            while True:
                m = pat.search(body)
                if m is None:
                    break
                g = read_group(body, m.end())
                arg = g[0] if g else ""
                end = g[1] if g else m.end()
                body = body[:m.start()] + fmt.format(arg) + body[end:]
        for cmd, rep in steps.items():
            body = re.sub(r"\\" + cmd + r"(?![A-Za-z])", lambda _m, r=rep: r, body)
        for cmd in ("Function", "Procedure"):
            pat = re.compile(r"\\" + cmd + r"(?![A-Za-z])")
            while (m := pat.search(body)) is not None:
                g1 = read_group(body, m.end())
                g2 = read_group(body, g1[1]) if g1 else None
                end = g2[1] if g2 else (g1[1] if g1 else m.end())
                args = f"{g1[0] if g1 else ''}({g2[0] if g2 else ''})"
                body = body[:m.start()] + f"\n\n{cmd.lower()} {args}" + body[end:]
        inner = self.convert(body)
        lines = [ln.strip() for ln in inner.splitlines() if ln.strip()]
        return "\n\n" + head + "```\n" + "\n".join(lines) + "\n```\n\n"

    def _label(self, key: str, number: str, kind: str) -> None:
        self.ctx.labels.setdefault(key, number)
        self.ctx.kinds.setdefault(key, kind)

    # -- inline ------------------------------------------------------------------------------
    def inline(self, text: str) -> str:
        """Text with inline math kept verbatim and markup removed."""
        out: list[str] = []
        pos = 0
        while True:
            m = _INLINE_TOKEN.search(text, pos)
            if m is None:
                out.append(_plain(text[pos:]))
                break
            out.append(_plain(text[pos:m.start()]))
            tok = m.group(0)
            if tok == "$" or tok == "\\(":
                close = "$" if tok == "$" else "\\)"
                end = _find_math_end(text, m.end(), close)
                if end is None:
                    out.append(_plain(tok))
                    pos = m.end()
                    continue
                math = re.sub(r"\\label\s*\{[^}]*\}", "", text[m.end():end])
                out.append("$" + math.strip() + "$")
                pos = end + len(close)
                continue
            name = m.group(1)
            rep, i = self._command(name, text, m.end())
            out.append(rep)
            pos = max(i, m.end())
        return "".join(out)

    def _command(self, name: str, text: str, i: int) -> tuple[str, int]:
        bare = name.rstrip("*")
        if bare in ("verb", "lstinline") and i < len(text):
            _, i = read_optional(text, i) if bare == "lstinline" else (None, i)
            delim = "}" if text[i] == "{" else text[i]
            end = text.find(delim, i + 1)
            if end == -1:
                return "", i
            return f"`{text[i + 1:end]}`", end + 1
        if bare == "label":
            g = read_group(text, i)
            if g is None:
                return "", i
            if self.ctx.section:
                self._label(g[0].strip(), self.ctx.section, "section")
            return "", g[1]
        if name in _ACCENTS or (bare in _ACCENTS and len(bare) == 1 and bare.isalpha()
                                and re.match(r"\s*\{", text[i:])):
            g = read_group(text, i)
            if g is None:
                return "", i
            letter = g[0].strip().lstrip("\\")
            letter = {"i": "i", "j": "j"}.get(letter, letter)
            if len(letter) == 1:
                return letter + _ACCENTS[name if name in _ACCENTS else bare], g[1]
            return letter, g[1]
        if name in _DROP_ARGS or bare in _DROP_ARGS:
            n = _DROP_ARGS.get(name, _DROP_ARGS.get(bare, 1))
            _, i = read_optional(text, i)
            for _ in range(n):
                g = read_group(text, i)
                if g is None:
                    break
                i = g[1]
                _, i = read_optional(text, i)
            return "", i
        if bare in _DROP_SWITCHES:
            return (" " if bare in ("and", "AND") else ""), i
        if _CITE.fullmatch(name):
            _, i = read_optional(text, i)
            _, i = read_optional(text, i)
            g = read_group(text, i)
            if g is None:
                return "", i
            if name.startswith("nocite"):
                return "", g[1]
            keys = ", ".join(k.strip() for k in g[0].split(",") if k.strip())
            return f"[{keys}]", g[1]
        if bare in _REFS:
            g = read_group(text, i)
            if g is None:
                return "", i
            return self._ref(bare, g[0]), g[1]
        if bare in ("footnote", "footnotetext", "tablefootnote"):
            _, i = read_optional(text, i)
            g = read_group(text, i)
            if g is None:
                return "", i
            return f" (Footnote: {self.inline(g[0]).strip()})", g[1]
        if bare == "url":
            g = read_group(text, i)
            return (g[0], g[1]) if g else ("", i)
        if bare == "href":
            g1 = read_group(text, i)
            g2 = read_group(text, g1[1]) if g1 else None
            if g1 is None or g2 is None:
                return "", i
            label = self.inline(g2[0]).strip()
            return (f"{label} ({g1[0]})" if label != g1[0] else g1[0]), g2[1]
        if bare == "ding":
            g = read_group(text, i)
            if g is None:
                return "", i
            return {"51": "✓", "52": "✓", "55": "✗", "56": "✗"}.get(g[0].strip(), ""), g[1]
        if bare == "texorpdfstring":
            g1 = read_group(text, i)
            g2 = read_group(text, g1[1]) if g1 else None
            if g1 is None:
                return "", i
            return self.inline(g1[0]), (g2[1] if g2 else g1[1])
        if bare in ("begin", "end"):  # a stray environment marker
            g = read_group(text, i)
            return "", (g[1] if g else i)
        if bare in ("textcolor", "colorbox"):
            g = read_group(text, i)  # the colour
            return ("", g[1]) if g else ("", i)
        if bare in ("resizebox", "scalebox", "raisebox", "adjustbox", "rotatebox"):
            n = 2 if bare == "resizebox" else 1
            for _ in range(n):
                _, i = read_optional(text, i)
                g = read_group(text, i)
                if g is None:
                    break
                i = g[1]
            return "", i
        if bare in _TEXT_ARG:
            mark = _TEXT_ARG[bare]
            _, i = read_optional(text, i)
            g = read_group(text, i)
            if g is None:
                return "", i
            inner = self.inline(g[0])
            if mark in ("^", "_"):
                return f"{mark}{{{inner}}}", g[1]
            return (f"{mark}{inner.strip()}{mark}" if inner.strip() and mark else inner), g[1]
        if bare in _SYMBOLS:
            if text[i:i + 2] == "{}":
                i += 2
            return _SYMBOLS[bare], i
        if bare in ("item",):
            return "\n- ", i
        # Unknown: drop the command name, keep any braced text that follows.
        return "", i

    def _ref(self, kind: str, keys: str) -> str:
        out = []
        for key in (k.strip() for k in keys.split(",")):
            num = self.ctx.labels.get(key)
            what = self.ctx.kinds.get(key, "")
            if num is None:
                out.append(f"[{key}]")
                continue
            if _REFS[kind] == "eq" or (what == "equation" and _REFS[kind] == "auto"):
                text = f"({num})"
                out.append(("Equation " if _REFS[kind] == "auto" else "") + text)
            elif _REFS[kind] == "auto":
                word = {"section": "Appendix" if num[:1].isalpha() else "Section",
                        "figure": "Figure", "table": "Table",
                        "algorithm": "Algorithm"}.get(what, what.capitalize())
                out.append(f"{word} {num}".strip())
            else:
                out.append(num)
        return ", ".join(out)


def _top_level_items(body: str) -> list[str]:
    """The text before the first \\item, then each item, ignoring items of nested lists."""
    parts: list[str] = []
    depth = 0
    start = 0
    for m in re.finditer(r"\\(begin|end)\s*\{[^}]*\}|\\item(?![A-Za-z])", body):
        tok = m.group(1)
        if tok == "begin":
            depth += 1
        elif tok == "end":
            depth -= 1
        elif depth == 0:
            parts.append(body[start:m.start()])
            start = m.end()
    parts.append(body[start:])
    return parts


def _own_labels(body: str) -> list[str]:
    """Labels of an environment itself, not of equations or floats inside it."""
    outer = re.sub(r"\\begin\s*\{(equation|align|gather|multline|eqnarray|figure|table)"
                   r"(\*?)\}.*?\\end\s*\{\1\2\}", "", body, flags=re.S)
    return [lab.strip() for lab in re.findall(r"\\label\s*\{([^}]*)\}", outer)]


def _take_optional(text: str) -> tuple[str | None, str]:
    """A leading [...] argument and the text after it."""
    opt, i = read_optional(text, 0)
    return (opt, text[i:]) if opt is not None else (None, text)


def _split_cells(row: str) -> list[str]:
    cells, depth, cur = [], 0, []
    i = 0
    while i < len(row):
        c = row[i]
        if c == "\\" and i + 1 < len(row):
            cur.append(row[i:i + 2])
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "&" and depth == 0:
            cells.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    cells.append("".join(cur))
    return cells


def _drop_command(text: str, name: str, nargs: int) -> str:
    pat = re.compile(r"\\" + re.escape(name) + r"(?![A-Za-z])")
    while (m := pat.search(text)) is not None:
        i = m.end()
        for _ in range(nargs):
            g = read_group(text, i)
            if g is None:
                break
            i = g[1]
        text = text[:m.start()] + text[i:]
    return text


_INLINE_TOKEN = re.compile(r"\\\(|(?<!\\)\$|\\([A-Za-z@]+\*?|[\"'`^~=.])")


def _find_math_end(text: str, i: int, close: str) -> int | None:
    while i < len(text):
        if text.startswith(close, i):
            return i
        i += 2 if text[i] == "\\" else 1
    return None


def _plain(text: str) -> str:
    """Character-level cleanup of text between commands."""
    if not text:
        return text
    text = text.replace("---", "—").replace("--", "–")
    text = text.replace("``", "“").replace("''", "”")
    text = re.sub(r"(?<!\\)~", " ", text)
    text = re.sub(r"\\\\(\[[^\]]*\])?", "\n", text)
    text = text.replace("\\{", "\x01").replace("\\}", "\x02")
    text = re.sub(r"\\([&%$#_])", r"\1", text)
    text = re.sub(r"\\[,;:! ]", " ", text)
    text = re.sub(r"\\/", "", text)
    text = re.sub(r"[{}]", "", text)
    return text.replace("\x01", "{").replace("\x02", "}")


def _tidy(text: str) -> str:
    lines = []
    for ln in text.split("\n"):
        indent = re.match(r"^( +)(?=- |\d+\. )", ln)  # nested list items keep their indent
        ln = re.sub(r"[ \t]+", " ", ln).strip()
        lines.append((indent.group(1) if indent else "") + ln)
    text = "\n".join(lines)
    text = re.sub(r"\n{3,}", "\n\n", text)
    # Single line breaks inside a paragraph are soft: join them, except in lists, tables,
    # code and display math.
    paras = []
    for p in text.split("\n\n"):
        if p.lstrip().startswith(("```", "$$", "|", "- ", "1. ")) or "\n- " in p or \
                "\n|" in p or "\n  - " in p or \
                re.search(r"^\d+\. ", p, re.M) or "\n$$" in p:
            paras.append(p)
        else:
            paras.append(re.sub(r"\s*\n\s*", " ", p))
    return "\n\n".join(p for p in paras if p.strip()).strip()
