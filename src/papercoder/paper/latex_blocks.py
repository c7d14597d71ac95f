"""Display math, lists, floats, tables and algorithms: the block half of the LaTeX
converter (a mixin of :class:`papercoder.paper.latex_text.Converter`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from papercoder.paper.latex_commands import (
    DISPLAY_ENVS,
    FLOAT_FIGURE,
    FLOAT_TABLE,
    MULTILINE_ENVS,
    TABULAR,
)
from papercoder.paper.latex_lex import (
    drop_command,
    find_env,
    read_group,
    read_optional,
    split_cells,
    take_optional,
    top_level_items,
)


def _literal(text: str) -> Callable[[re.Match[str]], str]:
    """A re.sub replacement that inserts ``text`` as it is (no backslash escapes)."""
    return lambda _m: text


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


class Blocks:
    ctx: Context

    def convert(self, text: str) -> str:  # pragma: no cover - implemented by Converter
        raise NotImplementedError

    def inline(self, text: str) -> str:  # pragma: no cover - implemented by Converter
        raise NotImplementedError

    def _label(self, key: str, number: str, kind: str) -> None:
        self.ctx.labels.setdefault(key, number)
        self.ctx.kinds.setdefault(key, kind)

    def display(self, body: str, env: str | None) -> str:
        content = re.sub(r"\\label\s*\{[^}]*\}", "", body)
        numbered = env is None or not env.endswith("*")
        base = (env or "").rstrip("*")
        if env is None:
            numbered = False
        tags: list[str] = []
        if numbered and base in DISPLAY_ENVS and base not in ("displaymath", "math"):
            rows = re.split(r"\\\\(?![a-zA-Z])", body) if base in MULTILINE_ENVS and \
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
        if base in MULTILINE_ENVS:
            latex = f"\\begin{{{env}}}\n{content.strip()}\n\\end{{{env}}}"
        else:
            latex = content.strip()
        self.ctx.equations.append(latex)
        tag = f" \\tag{{{tags[0]}}}" if len(tags) == 1 and base not in MULTILINE_ENVS else ""
        if len(tags) > 1 or (tags and base in MULTILINE_ENVS):
            tag = ""
            suffix = f" ({', '.join(tags)})"
        else:
            suffix = ""
        return f"\n\n$$\n{latex}{tag}\n$${suffix}\n\n"

    def listing(self, body: str, marker: str, description: bool) -> str:
        parts = top_level_items(body)
        lines: list[str] = []
        for n, part in enumerate(parts[1:], start=1):
            label, part = take_optional(part)
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
        for t in TABULAR:
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
            cells = [self._cell(c) for c in split_cells(raw)]
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
        body = drop_command(body, "@capdrop", 1)
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
            body = re.sub(r"\\" + cmd + r"(?![A-Za-z])", _literal(rep), body)
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
