"""Turning the loaded data into one self-contained, script-safe HTML page.

Every text that came from a model, a file or run.json reaches the page only through Jinja's
autoescape, through Markdown rendered with raw HTML off and safe link schemes only, or through
pygments (which escapes). Mermaid sources are placed as escaped text and rendered by the
vendored mermaid with ``securityLevel: 'strict'``. The page's Content-Security-Policy allows
exactly the page's own inline scripts by their sha256, so nothing else can run.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import time
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from papercoder.report.loader import (
    Evaluation,
    ReportData,
    as_dict,
    as_list,
    integer,
    number,
    text,
    texts,
)

HERE = Path(__file__).parent
MERMAID_VERSION = "11.17.2"
HIGHLIGHT_LIMIT = 250_000
"""Characters of one file highlighted by pygments; longer files are shown as plain text."""
MERMAID_LIMIT = 60_000
MARKDOWN_LIMIT = 30_000
"""Characters of one Markdown text rendered as Markdown; longer texts are shown as written."""
LOG_LINES = 40
"""Lines shown of the end of each smoke command's log."""
MARKDOWN_SECONDS = 10.0
"""Time one page may spend rendering Markdown; later texts are shown as written."""
GRAPH_NODES = 150


# -- vendored and packaged text -----------------------------------------------------------
@lru_cache(maxsize=1)
def mermaid_js() -> str:
    js = (HERE / "vendor" / "mermaid.min.js").read_text(encoding="utf-8")
    if re.search(r"<(/?)script", js, re.I):
        raise RuntimeError("the vendored mermaid.min.js contains a script tag and cannot be "
                           "inlined")
    return js


@lru_cache(maxsize=1)
def page_js() -> str:
    return (HERE / "templates" / "report.js").read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def page_css() -> str:
    from pygments.formatters import HtmlFormatter

    css = (HERE / "templates" / "report.css").read_text(encoding="utf-8")
    return css + "\n" + HtmlFormatter(style="default").get_style_defs(".hl")


def csp_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def csp(scripts: Iterable[str]) -> str:
    hashes = " ".join(csp_hash(s) for s in scripts)
    script_src = f"script-src {hashes}" if hashes else "script-src 'none'"
    return ("default-src 'none'; " + script_src + "; style-src 'unsafe-inline'; "
            "img-src data:; font-src data:; base-uri 'none'; form-action 'none'; "
            "object-src 'none'; frame-src 'none'; connect-src 'none'")


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["money"] = money
    env.filters["num"] = fmt_num
    env.filters["secs"] = fmt_secs
    env.filters["pct"] = fmt_pct
    env.filters["md"] = markdown
    env.globals["when"] = when
    return env


# -- formatting ----------------------------------------------------------------------------
def money(x: Any) -> str:
    n = number(x)
    return "unknown" if n is None else f"${n:,.4f}"


def fmt_num(x: Any) -> str:
    n = number(x)
    if n is None:
        return "–"
    return f"{int(n):,}" if n.is_integer() else f"{n:,.2f}"


def fmt_secs(x: Any) -> str:
    n = number(x)
    if n is None:
        return "–"
    return f"{n:.1f} s" if n < 120 else f"{n / 60:.1f} min"


def fmt_pct(x: Any) -> str:
    n = number(x)
    return "–" if n is None else f"{n:.1f}%"


def when(x: Any) -> str:
    n = number(x)
    if n is None or not 0 < n < 1e11:
        return "–"
    return dt.datetime.fromtimestamp(n, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# -- Markdown ------------------------------------------------------------------------------
_SAFE_LINK = re.compile(r"^(https?:|mailto:|#)", re.I)


@lru_cache(maxsize=1)
def _md() -> Any:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "highlight": _fence})
    md.enable(["table", "strikethrough"])
    md.disable("image")  # no remote fetches; the CSP blocks them anyway
    md.validateLink = lambda url: bool(_SAFE_LINK.match(url.strip()))  # type: ignore[method-assign]
    return md


def _fence(code: str, lang: str, _attrs: str) -> str:
    if not lang or len(code) > HIGHLIGHT_LIMIT:
        return ""  # markdown-it escapes it
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name

    try:
        lexer = get_lexer_by_name(lang.split()[0][:40])
    except Exception:  # noqa: BLE001 - unknown or odd language names
        return ""
    return highlight(code, lexer, HtmlFormatter(nowrap=True))


def markdown(src: Any) -> Markup:
    """Model Markdown as HTML: raw HTML escaped, safe links only, headings below the page's."""
    s = text(src, 10**7)
    if not s.strip():
        return Markup("")
    if len(s) > MARKDOWN_LIMIT or _markdown_budget["seconds"] <= 0:
        # markdown-it is quadratic on some inputs: long texts, and every text once a page has
        # spent its time budget on Markdown, are shown as written
        return Markup('<pre class="wrap">' f"{escape(s)}</pre>")
    started = time.perf_counter()
    try:
        return _render_markdown(s)
    finally:
        _markdown_budget["seconds"] -= time.perf_counter() - started


_markdown_budget = {"seconds": MARKDOWN_SECONDS}


def _render_markdown(s: str) -> Markup:
    md = _md()
    tokens = md.parse(s)
    for t in tokens:
        if t.type in ("heading_open", "heading_close"):
            level = int(t.tag[1:]) if t.tag[1:].isdigit() else 6
            t.tag = f"h{min(6, level + 3)}"
        elif t.type == "link_open":
            t.attrSet("rel", "noopener noreferrer")
    return Markup('<div class="md">' + md.renderer.render(tokens, md.options, {}) + "</div>")


# -- code ----------------------------------------------------------------------------------
def highlight_code(code: str, filename: str, anchor: str) -> Markup:
    """Highlighted code with line numbers; line N has id ``{anchor}N``. Numbers are drawn by
    CSS counters, so they cost a few bytes a line and are not copied with the code."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import TextLexer, get_lexer_for_filename

    if len(code) > HIGHLIGHT_LIMIT:
        lines = [str(escape(x)) for x in code.split("\n")]
    else:
        try:
            lexer: Any = get_lexer_for_filename(filename.rsplit("/", 1)[-1][:100] or "x.txt",
                                                stripnl=False, ensurenl=False)
        except Exception:  # noqa: BLE001 - no lexer for this name
            lexer = TextLexer(stripnl=False, ensurenl=False)
        lines = highlight(code, lexer, HtmlFormatter(nowrap=True)).split("\n")
    if lines and lines[-1] == "" and code.endswith("\n"):
        lines.pop()
    body = "\n".join(f'<i id="{anchor}{n}"></i>{line}' for n, line in enumerate(lines, 1))
    return Markup(f'<div class="hl"><pre class="code"><code>{body}\n</code></pre></div>')


def highlight_diff(diff: str) -> Markup:
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import DiffLexer, TextLexer

    lexer = DiffLexer() if len(diff) <= HIGHLIGHT_LIMIT else TextLexer()
    return Markup(highlight(diff, lexer, HtmlFormatter(cssclass="hl diff", wrapcode=True)))


_ASSUMED = re.compile(r"#.*not given in the paper", re.I)


def config_lines(cfg: str, unmarked: Iterable[str]) -> list[tuple[str, Markup]]:
    """(kind, highlighted line) per line of config.yaml; kind is "assumed" for values the
    paper does not give (marked by the model), "unmarked" for values the pipeline found in
    neither the paper nor a comment, else ""."""
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import YamlLexer

    keys = {k.split(".")[-1] for k in unmarked if k}
    raw_lines = cfg.split("\n")
    if cfg.endswith("\n"):
        raw_lines = raw_lines[:-1]
    if len(cfg) <= HIGHLIGHT_LIMIT:
        html = highlight(cfg, YamlLexer(stripnl=False), HtmlFormatter(nowrap=True))
        hl = html.split("\n")
    else:
        hl = [str(escape(x)) for x in raw_lines]
    out = []
    for i, line in enumerate(raw_lines):
        kind = ""
        if _ASSUMED.search(line):
            kind = "assumed"
        else:
            m = re.match(r"^\s*([\w.-]+)\s*:\s*\S", line)
            if m and m.group(1) in keys:
                kind = "unmarked"
        out.append((kind, Markup(hl[i] if i < len(hl) else escape(line))))
    return out


# -- diagrams ------------------------------------------------------------------------------
def mermaid_source(src: str | None) -> str:
    """A model's mermaid text, without fences, config directives or front matter."""
    s = text(src, MERMAID_LIMIT)
    m = re.search(r"```+\s*mermaid[^\n]*\n(.*?)(```|$)", s, re.S | re.I)
    if m:
        s = m.group(1)
    else:
        s = re.sub(r"^\s*```+[^\n]*\n|```+\s*$", "", s)
    s = _drop_directives(s)
    if s.lstrip().startswith("---"):
        body = s.lstrip()[3:]
        end = body.find("\n---")
        s = body[end + 4:] if end >= 0 else body
    # Tags in labels become text: mermaid would otherwise parse them as HTML while it lays
    # the diagram out (its sanitiser and the page's CSP stop them, but not before they exist).
    s = re.sub(r"(?<!<)<(?=[A-Za-z/!?])", "#lt;", s)
    return s.strip()


def _drop_directives(s: str) -> str:
    """``s`` without ``%%{ ... }%%`` config directives (linear: no backtracking regex)."""
    out, i = [], 0
    while True:
        j = s.find("%%{", i)
        if j < 0:
            out.append(s[i:])
            return "".join(out)
        out.append(s[i:j])
        k = s.find("}%%", j + 3)
        if k < 0:
            return "".join(out)
        i = k + 3


def _node_label(name: str) -> str:
    label = re.sub(r"[^A-Za-z0-9_./ -]", "_", name)[:60]
    return label or "_"


def levels(order: list[str], deps: dict[str, list[str]]) -> dict[str, int]:
    """Level 0 for files depending on nothing, else one more than their deepest dependency
    (cycles, which the pipeline refuses, are cut)."""
    out: dict[str, int] = {}

    def level(f: str, stack: set[str]) -> int:
        if f in out:
            return out[f]
        if f in stack:
            return 0
        stack.add(f)
        ds = [d for d in deps.get(f, []) if d in deps]
        lv = 1 + max((level(d, stack) for d in ds), default=-1)
        stack.discard(f)
        out[f] = lv
        return lv

    for f in order:
        level(f, set())
    return out


def dependency_graph(order: list[str], deps: dict[str, list[str]]) -> str | None:
    """A mermaid flowchart of the files, grouped by level, labelled with their coding order;
    every id and label is generated here from a restricted alphabet."""
    if not order or len(order) > GRAPH_NODES:
        return None
    lv = levels(order, deps)
    ids = {f: f"n{i}" for i, f in enumerate(order)}
    lines = ["flowchart LR"]
    for level in sorted(set(lv.values())):
        lines.append(f'  subgraph L{level}["level {level}"]')
        for i, f in enumerate(order):
            if lv.get(f) == level:
                lines.append(f'    {ids[f]}["{i + 1}. {_node_label(f)}"]')
        lines.append("  end")
    for f in order:
        for d in direct_edges(f, deps):
            if d in ids:
                lines.append(f"  {ids[d]} --> {ids[f]}")
    return "\n".join(lines) + "\n"


def direct_edges(f: str, deps: dict[str, list[str]]) -> list[str]:
    """The dependencies of ``f`` not already reached through another dependency (the
    transitive reduction), so the picture shows the structure rather than every import."""
    own = [d for d in deps.get(f, []) if d in deps]

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            x = todo.pop()
            for y in deps.get(x, []):
                if y == goal:
                    return True
                if y not in seen and y in deps:
                    seen.add(y)
                    todo.append(y)
        return False

    return [d for d in own if not any(o != d and reaches(o, d) for o in own)]


# -- evaluation ----------------------------------------------------------------------------
def rubric_nodes(tree: Any) -> tuple[dict[str, Any] | None, int]:
    """The rubric tree as clean nodes with each node's share of the total score, and the
    number of leaves."""
    count = {"nodes": 0, "leaves": 0}

    def walk(node: Any, share: float, depth: int) -> dict[str, Any] | None:
        n = as_dict(node)
        if not n or count["nodes"] >= 5000 or depth > 40:
            return None
        count["nodes"] += 1
        subs = [as_dict(s) for s in as_list(n.get("sub_tasks"), 1000)]
        subs = [s for s in subs if s]
        weights = [max(number(s.get("weight")) or 0.0, 0.0) for s in subs]
        total = sum(weights)
        children = []
        for s, w in zip(subs, weights, strict=True):
            c = walk(s, share * (w / total) if total else 0.0, depth + 1)
            if c is not None:
                children.append(c)
        if not subs:
            count["leaves"] += 1
        valid = n.get("valid")
        return {
            "id": text(n.get("id"), 200), "requirements": text(n.get("requirements"), 20_000),
            "weight": number(n.get("weight")), "share": share, "score": number(n.get("score")),
            "valid": valid if isinstance(valid, bool) else None,
            "category": text(n.get("task_category"), 100),
            "explanation": text(n.get("explanation"), 20_000),
            "files": texts(n.get("files"), 100), "children": children, "leaf": not subs,
            "flag": text(n.get("flag"), 60),
        }

    root = walk(tree, 1.0, 0)
    return root, count["leaves"]


SEVERITIES = ("high", "medium", "low")


def critiques(samples: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in (*SEVERITIES, "other")}
    for s in samples:
        idx = integer(s.get("index"))
        for c in as_list(s.get("critiques"), 500):
            c = as_dict(c)
            sev = text(c.get("severity"), 20).lower()
            out[sev if sev in SEVERITIES else "other"].append({
                "sample": idx, "file": text(c.get("file"), 300),
                "function": text(c.get("function"), 300),
                "gold_file": text(c.get("gold_file"), 300),
                "gold_function": text(c.get("gold_function"), 300),
                "problem": text(c.get("problem"), 10_000)})
    return out


def evaluation_view(e: Evaluation, index: int) -> dict[str, Any]:
    s = e.summary
    spread = as_dict(s.get("spread"))
    tree, leaves = rubric_nodes(e.tree) if e.tree is not None else (None, 0)
    return {
        "anchor": f"eval-{index}", "name": e.name, "mode": text(s.get("mode"), 60),
        "judge": text(s.get("judge"), 200), "score": number(s.get("score")),
        "valid": integer(s.get("valid_samples")),
        "samples": [number(x) for x in as_list(s.get("samples"), 500)],
        "std": number(spread.get("std")), "min": number(spread.get("min")),
        "max": number(spread.get("max")), "guard": text(s.get("guard"), 60),
        "per_category": {text(k, 100): number(v)
                         for k, v in list(as_dict(s.get("per_category")).items())[:100]},
        "leaves": integer(s.get("leaves")), "invalid_leaves": integer(s.get("invalid_leaves")),
        "files_shown": texts(s.get("files_shown"), 1000),
        "left_out": [(text(as_dict(x).get("path"), 300), text(as_dict(x).get("reason"), 500))
                     for x in as_list(s.get("files_left_out"), 1000)],
        "cost": number(s.get("cost_usd")), "has_cost": "cost_usd" in s,
        "sample_rows": [{"index": integer(x.get("index")), "valid": x.get("valid") is True,
                         "score": number(x.get("score")), "error": text(x.get("error"), 2000)}
                        for x in e.samples],
        "critiques": critiques(e.samples), "tree": tree, "tree_leaves": leaves,
        "notes": e.notes, "report_md": e.report_md,
    }


# -- the page ------------------------------------------------------------------------------
def _anchor_for(path: str, i: int) -> str:
    """A readable, unique id for a file's section (line ids use the short ``f{i}L``)."""
    return f"file-{i + 1}-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", path).strip("-")[:60] or "x")


def context(d: ReportData) -> dict[str, Any]:
    run = d.run
    paper = as_dict(run.get("paper"))
    files = d.files
    counts: dict[str, int] = {}
    for f in files:
        counts[f.status] = counts.get(f.status, 0) + 1
    stages = []
    for name, st in list(as_dict(run.get("stages")).items())[:20]:
        st = as_dict(st)
        stages.append({"name": text(name, 60), **{k: st.get(k) for k in (
            "calls", "cache_hits", "prompt_tokens", "cached_prompt_tokens",
            "completion_tokens", "cost_usd", "seconds")}, "status": text(st.get("status"), 40),
            "has_cost": "cost_usd" in st})
    totals = as_dict(run.get("totals"))
    file_views: list[dict[str, Any]] = []
    for i, f in enumerate(files):
        anchor = _anchor_for(f.path, i)
        file_views.append({
            "e": f, "anchor": anchor,
            "lines": f"f{i + 1}L",
            "code": highlight_code(f.code, f.path, f"f{i + 1}L") if f.code is not None else None,
            "diffs": [(label, highlight_diff(part)) for label, part in f.diffs]})
    extra = []
    for i, f in enumerate(d.extra_files):
        anchor = f"extra-{i + 1}"
        extra.append({"e": f, "anchor": anchor,
                      "code": highlight_code(f.code or "", f.path, f"x{i + 1}L"),
                      "diffs": [(label, highlight_diff(part)) for label, part in f.diffs]})
    lv = levels(d.order or list(d.deps), d.deps)
    order = d.order or list(d.deps)
    graph = dependency_graph(order, d.deps)
    diagrams = []
    for key, title, src in (("class-diagram", "Class diagram", d.class_diagram),
                            ("sequence-diagram", "Sequence diagram", d.sequence_diagram)):
        diagrams.append({"anchor": key, "title": title,
                         "src": mermaid_source(src) if src else ""})
    verify = d.verify
    smoke = as_dict(verify.get("smoke"))
    commands = []
    for c in as_list(smoke.get("commands"), 100):
        c = as_dict(c)
        log_rel = text(c.get("log"), 300)
        log_tail = None
        if log_rel:
            from papercoder.report.loader import LOG_TAIL, read_file

            log_tail, _ = read_file(d.out, log_rel, LOG_TAIL, tail=True)
            if log_tail is not None:
                log_tail = "\n".join(log_tail.rstrip("\n").split("\n")[-LOG_LINES:])
        commands.append({"cmd": text(c.get("cmd"), 2000), "exit": integer(c.get("exit")),
                         "seconds": number(c.get("seconds")),
                         "timed_out": c.get("timed_out") is True,
                         "outputs_ok": c.get("outputs_ok"), "seed": integer(c.get("seed")),
                         "log": log_rel, "log_tail": log_tail})
    rounds = [{"r": r, "diff": highlight_diff(r.diff) if r.diff else None} for r in d.rounds]
    static = as_dict(verify.get("static"))
    remaining = as_list(static.get("remaining"), 100_000) if "remaining" in static else None
    repair = as_dict(static.get("repair"))
    static_repair = {"applied": repair.get("applied"), "error": text(repair.get("error")),
                     "md": d.static_repair_md,
                     "diff": highlight_diff(d.static_repair_diff)
                     if d.static_repair_diff else None} if repair else None
    commands_recorded = bool(as_list(smoke.get("commands")))
    smoke_ran = commands_recorded and smoke.get("skipped") is not True
    kinds: dict[str, int] = {}
    for finding in d.findings:
        kinds[finding.kind or "other"] = kinds.get(finding.kind or "other", 0) + 1
    return {
        "d": d, "out_display": text(str(d.out), 2000), "run_id": text(run.get("run_id"), 100),
        "title": text(paper.get("title"), 500),
        "source": text(paper.get("source"), 1000), "reader": text(paper.get("format"), 60),
        "paper_tokens": paper.get("tokens"), "paper_warnings": texts(paper.get("warnings"), 200),
        "references_in_prompts": paper.get("references_in_prompts"),
        "model": text(run.get("model"), 200), "status": text(run.get("status"), 40) or "unknown",
        "error": text(run.get("error")), "started": run.get("started"),
        "finished": run.get("finished"), "counts": counts, "stages": stages, "totals": totals,
        "reductions": texts(run.get("reductions"), 200),
        "warnings": texts(run.get("warnings"), 500),
        "settings": {text(k, 60): text(v, 300) for k, v in
                     list(as_dict(run.get("settings")).items())[:60]
                     if isinstance(v, (str, int, float, bool)) or v is None},
        "files": file_views, "extra": extra, "levels": lv, "order": order, "graph": graph,
        "graph_too_big": len(order) > GRAPH_NODES, "diagrams": diagrams,
        "config": config_lines(d.config, d.unmarked) if d.config is not None else None,
        "verify": verify, "static_kinds": kinds,
        "environment": as_dict(verify.get("environment")),
        "isolation": as_dict(verify.get("isolation")), "smoke": smoke, "commands": commands,
        "rounds": rounds, "executability": as_dict(verify.get("executability")),
        "smoke_ran": smoke_ran, "static_repair": static_repair,
        "remaining": len(remaining) if remaining is not None else None,
        "evaluations": [evaluation_view(e, i) for i, e in enumerate(d.evaluations)],
        "contract": contract_rows(d.out, {v["e"].path: v["lines"] for v in file_views}),
        "text": text, "as_dict": as_dict, "as_list": as_list, "number": number,
        "integer": integer, "mermaid_version": MERMAID_VERSION,
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def contract_rows(out: Any, line_prefix: dict[str, str]) -> Any:
    from papercoder.report.contract import contract_rows as rows

    return rows(out, line_prefix)


def build_html(d: ReportData) -> str:
    """The report page for the loaded data, as one string."""
    from papercoder import __version__

    _markdown_budget["seconds"] = MARKDOWN_SECONDS
    ctx = context(d)
    has_diagrams = bool(ctx["graph"] or any(x["src"] for x in ctx["diagrams"]))
    scripts = [mermaid_js(), page_js()] if has_diagrams else [page_js()]
    tmpl = environment().get_template("report.html.j2")
    return tmpl.render(**ctx, csp=csp(scripts), scripts=[Markup(s) for s in scripts],
                       css=Markup(page_css()), version=__version__)
