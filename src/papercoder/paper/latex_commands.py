"""What the LaTeX converter knows about environments and commands: data, not code."""

from __future__ import annotations

import re

DISPLAY_ENVS = ("equation", "align", "gather", "multline", "eqnarray", "flalign", "alignat",
                "displaymath", "dmath", "math")
MULTILINE_ENVS = ("align", "gather", "multline", "eqnarray", "flalign", "alignat")
FLOAT_FIGURE = ("figure", "figure*", "wrapfigure", "SCfigure", "subfigure")
FLOAT_TABLE = ("table", "table*", "wraptable", "SCtable", "subtable")
TABULAR = ("tabular", "tabular*", "tabularx", "tabulary", "longtable", "supertabular",
            "array", "tblr")
LISTS = {"itemize": "-", "enumerate": "1.", "description": "-", "compactitem": "-",
          "compactenum": "1.", "inparaenum": "1."}
CODE = ("verbatim", "verbatim*", "lstlisting", "minted", "Verbatim", "alltt", "codeblock")
DROP_ENVS = ("tikzpicture", "pgfpicture", "picture", "forest", "thebibliography", "titlepage",
              "abstract", "keywords", "IEEEkeywords", "CCSXML", "filecontents", "filecontents*",
              "tocentry")
ALGO = ("algorithm", "algorithm*", "algorithmic", "algorithm2e", "algorithmic*", "procedure")
THEOREMS = ("theorem", "lemma", "proposition", "corollary", "definition", "remark", "example",
             "assumption", "claim", "conjecture", "proof", "observation", "fact", "hypothesis",
             "problem", "question", "note", "exercise", "axiom", "property", "condition")

# Commands removed together with their arguments: (mandatory count, optional allowed)
DROP_ARGS = {
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
DROP_SWITCHES = {
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
TEXT_ARG = {"textbf": "**", "textit": "*", "emph": "*", "textsl": "*", "texttt": "`",
             "textsc": "", "textrm": "", "textsf": "", "textnormal": "", "textup": "",
             "textmd": "", "mbox": "", "hbox": "", "text": "", "underline": "", "uline": "",
             "ul": "", "textsuperscript": "^", "textsubscript": "_", "fbox": "", "framebox": "",
             "makebox": "", "mathrm": "", "mathbf": "**", "caption": "", "subcaption": "",
             "paragraph": "", "sout": "", "st": "", "hl": "", "textcolor": "",
             "colorbox": "", "centerline": "", "noun": "", "acro": "", "ac": "", "acp": "",
             "gls": "", "glspl": "", "acs": "", "acl": "", "acf": ""}
CITE = re.compile(r"(?:no)?cite[a-zA-Z]*\*?|[pP]arencite|[tT]extcite|[aA]utocite|"
                   r"footcite|citealp|citealt|shortcite")
REFS = {"ref": "", "eqref": "eq", "autoref": "auto", "cref": "auto", "Cref": "auto",
         "pageref": "", "nameref": "", "vref": "", "Autoref": "auto", "subref": "",
         "creflastconjunction": ""}
SYMBOLS = {
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
ACCENTS = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303",
            "=": "\u0304", ".": "\u0307", "c": "\u0327", "v": "\u030c", "u": "\u0306",
            "H": "\u030b", "k": "\u0328", "r": "\u030a", "d": "\u0323", "b": "\u0331"}
