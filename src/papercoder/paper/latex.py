"""LaTeX papers: title, abstract, sections (numbered like LaTeX numbers them), equations
kept as LaTeX, tables and captions, and the bibliography (thebibliography or a .bbl)."""

from __future__ import annotations

import posixpath
import re

from papercoder.errors import PaperError
from papercoder.paper import latex_macros
from papercoder.paper.latex_lex import find_env, read_group, read_optional, strip_comments
from papercoder.paper.latex_source import Project, find_main, flatten
from papercoder.paper.latex_text import Context, Converter
from papercoder.paper.model import Paper, Section, section_kind

_SECTION = re.compile(r"\\(part|chapter|section|subsection|subsubsection|paragraph|"
                      r"subparagraph)(\*?)(?![A-Za-z])|\\appendix(?![A-Za-z])|"
                      r"\\begin\s*\{appendices\}")
_LEVEL = {"part": 0, "chapter": 0, "section": 1, "subsection": 2, "subsubsection": 3,
          "paragraph": 4, "subparagraph": 5}
_BEGIN_DOC = re.compile(r"\\begin\s*\{document\}")
_END_DOC = re.compile(r"\\end\s*\{document\}")
_ACK_ENVS = ("ack", "acks", "acknowledgments", "acknowledgements", "acknowledgment",
             "acknowledgement")


def _letters(n: int) -> str:
    s = ""
    while n > 0:
        n, r = divmod(n - 1, 26)
        s = chr(ord("A") + r) + s
    return s


def _command_arg(text: str, name: str) -> tuple[str, int, int] | None:
    """The argument of the first \\name[...]{...}, with the command's span."""
    m = re.search(r"\\" + name + r"\*?(?![A-Za-z])", text)
    if not m:
        return None
    _, i = read_optional(text, m.end())
    g = read_group(text, i)
    if g is None:
        return None
    return g[0], m.start(), g[1]


def read_latex(project: Project, *, prefer: str | None = None) -> Paper:
    """Read a LaTeX project; unexpected markup becomes one clear error, not a traceback."""
    try:
        return _read_latex(project, prefer)
    except PaperError:
        raise
    except (RecursionError, IndexError, KeyError, ValueError, TypeError, AttributeError) as e:
        raise PaperError(f"The LaTeX of {project.name} could not be converted "
                         f"({type(e).__name__}); give the paper's PDF instead.") from None


def _read_latex(project: Project, prefer: str | None) -> Paper:
    main = find_main(project, prefer)
    text = flatten(project, main)
    macros = _package_macros(project, text)
    found, text = latex_macros.collect(text)
    macros.update(found)
    m = _BEGIN_DOC.search(text)
    pre, body = (text[:m.start()], text[m.end():]) if m else ("", text)
    e = _END_DOC.search(body)
    if e:
        body = body[:e.start()]
    body = latex_macros.expand(body, macros)
    pre = latex_macros.expand(pre, macros)

    ctx = Context()
    conv = Converter(ctx)
    title = ""
    for src in (pre, body):
        t = _command_arg(src, "title") or _command_arg(src, "icmltitle")
        if t:
            title = _clean_title(conv.inline(t[0]))
            break
    abstract = ""
    env = find_env(body, "abstract") or find_env(pre, "abstract")
    if env is not None:
        holder = body if find_env(body, "abstract") else pre
        abstract = conv.convert(holder[env[1]:env[2]])
        if holder is body:
            body = body[:env[0]] + body[env[3]:]
    else:
        a = _command_arg(body, "abstract")
        if a:
            abstract = conv.convert(a[0])
            body = body[:a[1]] + body[a[2]:]

    refs_tex, body = _bibliography(project, main, body)
    for name in _ACK_ENVS:
        while (env := find_env(body, name)) is not None:
            body = (body[:env[0]] + "\\section*{Acknowledgements}\n" + body[env[1]:env[2]]
                    + body[env[3]:])

    chunks = _split_sections(body)
    # Two passes: the first only learns what every \label will be numbered.
    for _pass in range(2):
        ctx.reset()
        ctx.appendix = False
        sections: list[Section] = []
        for heading, level, kind, number, content in chunks:
            ctx.section = number
            converted = conv.convert(content)
            if heading is None:
                if converted.strip():
                    sections.append(Section(heading="Preface", text=converted, level=1))
                continue
            sections.append(Section(heading=heading, text=converted, level=level, kind=kind))
    references = [_clean_ref(conv.convert(r)) for r in refs_tex]
    references = [r for r in references if r]
    if references:
        sections.append(Section(heading="References", level=1, kind="references",
                                text="\n".join(f"- {r}" for r in references)))
    if not title and sections and sections[0].heading == "Preface":
        # A hand-made title block: a bold first line before the first section.
        m = re.match(r"\*\*(.{3,200}?)\*\*(?:\n|$)", sections[0].text)
        if m:
            title = m.group(1).strip()
    if not title:
        title = next((s.heading for s in sections if s.heading != "Preface"),
                     posixpath.basename(main))
    return Paper(title=title, abstract=abstract, sections=sections,
                 equations=list(ctx.equations), tables=list(ctx.tables),
                 figures=list(ctx.figures), references=references, source=project.name,
                 source_format="latex", warnings=list(project.warnings))


def _package_macros(project: Project, text: str) -> dict[str, latex_macros.Macro]:
    """Definitions from the paper's own .sty files (\\usepackage{mymacros})."""
    macros: dict[str, latex_macros.Macro] = {}
    for m in re.finditer(r"\\usepackage\s*(?:\[[^\]]*\])?\s*\{([^}]*)\}", text):
        for name in m.group(1).split(","):
            path = name.strip() + ".sty"
            hits = [k for k in project.files if k == path or k.endswith("/" + path)]
            if hits:
                found, _ = latex_macros.collect(strip_comments(project.files[hits[0]]))
                macros.update(found)
    return macros


def _clean_title(t: str) -> str:
    t = re.sub(r"\(Footnote:.*?\)", "", t)
    return re.sub(r"\s+", " ", t).strip()


def _split_sections(body: str) -> list[tuple[str | None, int, str, str, str]]:
    """(heading, level, kind, number, content) per sectioning command; the text before the
    first one has heading None."""
    out: list[tuple[str | None, int, str, str, str]] = []
    counters = [0] * 6
    appendix = False
    has_chapters = re.search(r"\\chapter\*?(?![A-Za-z])", body) is not None
    heading: str | None = None
    level, kind, number = 1, "body", ""
    pos = 0
    for m in _SECTION.finditer(body):
        if m.start() < pos:
            continue
        if m.group(0).startswith(("\\appendix", "\\begin")):
            out.append((heading, level, kind, number, body[pos:m.start()]))
            heading, pos = None, m.end()
            appendix = True
            counters[1:] = [0] * 5
            if out[-1][0] is None and not out[-1][4].strip():
                out.pop()
            continue
        cmd, star = m.group(1), m.group(2)
        _, i = read_optional(body, m.end())
        g = read_group(body, i)
        if g is None:
            continue
        out.append((heading, level, kind, number, body[pos:m.start()]))
        raw = re.sub(r"\s+", " ", g[0]).strip()
        depth = _LEVEL[cmd] + (1 if has_chapters and cmd not in ("part", "chapter") else 0)
        depth = max(depth, 1)
        title = Converter(Context()).inline(raw).strip()
        if star or cmd in ("paragraph", "subparagraph", "part"):
            number = number if cmd in ("paragraph", "subparagraph") else ""
            heading = title
        else:
            counters[depth] += 1
            counters[depth + 1:] = [0] * (5 - depth)
            parts = [str(c) for c in counters[1:depth + 1]]
            if appendix and not has_chapters:
                parts[0] = _letters(counters[1])
            number = ".".join(parts)
            heading = f"{number} {title}"
        level = min(depth, 4)
        kind = section_kind(title)
        if appendix and kind == "body":
            kind = "appendix"
        pos = g[1]
    out.append((heading, level, kind, number, body[pos:]))
    if out and out[0][0] is None and not out[0][4].strip():
        out.pop(0)
    return out


def _bibliography(project: Project, main: str, body: str) -> tuple[list[str], str]:
    """The reference entries (LaTeX), from thebibliography in the text or a .bbl file."""
    env = find_env(body, "thebibliography")
    src = None
    if env is not None:
        src = body[env[1]:env[2]]
        body = body[:env[0]] + body[env[3]:]
    else:
        stem = posixpath.splitext(main)[0]
        names = [stem + ".bbl"]
        bib = _command_arg(body, "bibliography")
        if bib:
            names += [posixpath.join(posixpath.dirname(main), b.strip() + ".bbl")
                      for b in bib[0].split(",")]
        names += sorted(k for k in project.files if k.endswith(".bbl"))
        for n in names:
            if n in project.files:
                bbl = project.files[n]
                e = find_env(bbl, "thebibliography")
                if e is not None:
                    src = bbl[e[1]:e[2]]
                    break
        if src is None and (bib or re.search(r"\\printbibliography", body)):
            project.warnings.append("The references are in a .bib file without a compiled "
                                    ".bbl; the reference list is empty.")
    if src is None:
        return [], body
    _, i = read_optional(src, 0)
    g = read_group(src, i)  # the widest label
    if g is not None and src[:i].strip() == "" and src.lstrip().startswith("{"):
        src = src[g[1]:]
    items = re.split(r"\\bibitem(?![A-Za-z])", src)[1:]
    entries = []
    for it in items:
        _, i = read_optional(it, 0)
        g = read_group(it, i)
        entries.append(it[g[1]:] if g is not None else it)
    return entries, body


def _clean_ref(text: str) -> str:
    text = re.sub(r"\\newblock", " ", text)
    return re.sub(r"\s+", " ", text).strip()
