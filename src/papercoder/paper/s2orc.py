"""S2ORC / GROBID JSON: paragraphs with section names, equations in eq_spans.

GROBID leaves a placeholder ("EQUATION") in the paragraph text where a display equation
was; each eq_span gives its position and the equation as extracted text (raw_str) with its
number. We put the equation back in place.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

from papercoder.errors import PaperError
from papercoder.paper.model import Paper, Section, section_kind


def is_s2orc(data: Any) -> bool:
    return isinstance(data, dict) and (
        isinstance(data.get("pdf_parse"), dict) or isinstance(data.get("body_text"), list))


def _paragraph(p: dict[str, Any], equations: list[str]) -> str:
    text = str(p.get("text") or "")
    spans = [s for s in (p.get("eq_spans") or []) if isinstance(s, dict)]
    for s in sorted(spans, key=lambda s: int(s.get("start") or 0), reverse=True):
        raw = str(s.get("raw_str") or s.get("text") or "").strip()
        if not raw:
            continue
        num = str(s.get("eq_num") or "").strip()
        equations.append(raw + (f" {num}" if num else ""))
        start, end = int(s.get("start") or 0), int(s.get("end") or 0)
        if not (0 <= start <= end <= len(text)):
            text = text + "\n\n" + raw
            continue
        block = f"\n\n{raw}" + (f"    {num}" if num else "") + "\n\n"
        text = text[:start].rstrip() + block + text[end:].lstrip()
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _html_table(content: str) -> str:
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", content, re.S):
        cells = re.findall(r"<td[^>]*/>|<td[^>]*>(.*?)</td>", tr, re.S)
        rows.append("| " + " | ".join(html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                                      for c in cells) + " |")
    return "\n".join(rows)


def _title(raw: str) -> str:
    t = re.sub(r"\s+", " ", raw).strip()
    # GROBID sometimes glues a copyright notice in front of the title.
    if len(t) > 120 and ". " in t:
        t = t.rsplit(". ", 1)[1]
    return t


def read_s2orc(data: dict[str, Any], *, source: str = "") -> Paper:
    if not is_s2orc(data):
        raise PaperError(f"{source or 'The JSON'} is not S2ORC/GROBID JSON (no pdf_parse or "
                         "body_text); give the paper as PDF, LaTeX or Markdown.")
    pdf_parse = data.get("pdf_parse")
    parse: dict[str, Any] = pdf_parse if isinstance(pdf_parse, dict) else data
    equations: list[str] = []
    sections: list[Section] = []
    key: tuple[str, str] | None = None
    buf: list[str] = []

    def flush(back: bool) -> None:
        if key is None or not buf:
            return
        name, num = key
        heading = f"{num} {name}".strip() if num else name
        level = max(1, len([x for x in num.strip(".").split(".") if x])) if num else 1
        kind = section_kind(name)
        if back and kind == "body" and (name.lower() in ("annex", "appendix") or
                                        re.match(r"^[A-Z](\.\d+)*\.?\s", heading)):
            kind = "appendix"
        if name.lower().startswith("acknowledg"):
            kind = "acknowledgements"
        sections.append(Section(heading=heading or "Text", text="\n\n".join(buf), level=level,
                                kind=kind))

    for group, back in (("body_text", False), ("back_matter", True)):
        for p in parse.get(group) or []:
            if not isinstance(p, dict):
                continue
            k = (str(p.get("section") or "").strip(), str(p.get("sec_num") or "").strip())
            if k != key:
                flush(back)
                key, buf = k, []
            text = _paragraph(p, equations)
            if text:
                buf.append(text)
        flush(back)
        key, buf = None, []

    abstract = str(data.get("abstract") or "").strip()
    if not abstract:
        abstract = "\n\n".join(_paragraph(p, equations) for p in parse.get("abstract") or []
                               if isinstance(p, dict))
    figures, tables = [], []
    for ref in (parse.get("ref_entries") or {}).values():
        if not isinstance(ref, dict):
            continue
        text = str(ref.get("text") or "").strip()
        if ref.get("type_str") == "table":
            num = ref.get("num") or ""
            grid = _html_table(str(ref.get("content") or ""))
            head = (f"Table {num}: " if num else "") + text
            tables.append(head + ("\n\n" + grid if grid else ""))
        elif text:
            figures.append(text)
    references = []
    for b in (parse.get("bib_entries") or {}).values():
        if isinstance(b, dict):
            raw = str(b.get("raw_text") or "").strip()
            if not raw:
                raw = ". ".join(x for x in (
                    ", ".join(f"{a.get('first', '')} {a.get('last', '')}".strip()
                              for a in b.get("authors") or [] if isinstance(a, dict)),
                    str(b.get("title") or ""), str(b.get("venue") or ""),
                    str(b.get("year") or "")) if x)
            if raw:
                references.append(raw)
    if references:
        sections.append(Section(heading="References", level=1, kind="references",
                                text="\n".join(f"- {r}" for r in references)))
    title = _title(str(data.get("title") or "")) or str(data.get("paper_id") or "Untitled")
    warnings = [] if sections else ["The JSON holds no body text."]
    return Paper(title=title, abstract=abstract, sections=sections, equations=equations,
                 tables=tables, figures=figures, references=references, source=source,
                 source_format="s2orc", warnings=warnings)


def loads(text: str, *, source: str) -> Paper:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise PaperError(f"{source} is not valid JSON ({e.msg} at line {e.lineno}); give S2ORC "
                         "JSON, a PDF, LaTeX or Markdown.") from None
    except RecursionError:
        raise PaperError(f"{source} is not valid JSON (nested too deeply); give S2ORC JSON, a "
                         "PDF, LaTeX or Markdown.") from None
    return read_s2orc(data, source=source)
