"""Stage 3: write the files in dependency order, each seeing the plan, its analysis and the
code it depends on.

A coding prompt is laid out for the provider's prompt cache: first what every call shares
(system prompt, paper, plan artifacts), then the earlier code in a fixed, append-only order,
then what is the file's own (its dependencies named, its analysis, the instruction). Each
prompt therefore extends the earlier prompts byte for byte and pays full price only for the
code written since and its own tail.

Scoped context (default): the full code of every file of a lower dependency level (which
holds all of its dependencies), grouped by level; the files of one level are written
concurrently as soon as the lower levels are done, and its prompt depends only on them, so
every prompt is the same on a rerun and the response cache answers it. Full context (as
published): every earlier file in full, one by one. On a small window earlier files become
public interfaces (non-dependencies first) or are left out, and that is said.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from papercoder.crosscheck import unresolved_imports
from papercoder.errors import ModelOutputError
from papercoder.filecheck import check_file, lang_of, requirements
from papercoder.models.base import Completion, Message
from papercoder.outdir.record import FileRecord
from papercoder.outdir.workspace import artifact_name
from papercoder.pipeline.answers import extract_code
from papercoder.pipeline.context import clip
from papercoder.pipeline.interfaces import public_interface
from papercoder.pipeline.order import entry_point
from papercoder.requirements.stage import for_file
from papercoder.tokens import estimate_tokens

if TYPE_CHECKING:
    from papercoder.pipeline.runner import Pipeline

log = logging.getLogger("papercoder")

def levels(order: list[str], deps: dict[str, list[str]]) -> dict[str, int]:
    lvl: dict[str, int] = {}
    for f in order:  # order is topological
        lvl[f] = 1 + max((lvl[d] for d in deps.get(f, []) if d in lvl), default=-1)
    return lvl


def earlier_files(p: Pipeline, file: str) -> list[str]:
    """The files whose code comes before ``file``'s own part of the prompt, in a fixed order
    (deterministic, whatever the timing).

    Full context: every earlier file in the plan's order. Scoped context: every file of a
    lower dependency level, by level and then the plan's order. Either way the list of a file
    starts with the whole list of every file of a lower level (of every earlier file), so
    each coding prompt extends the prompts sent before it byte for byte and reads them from
    the provider's prompt cache; files of one level share their whole prefix and run
    concurrently."""
    idx = p.order.index(file)
    if p.opts.context == "full":
        return p.order[:idx]
    lvl = levels(p.order, p.deps)
    return sorted((f for f in p.order if lvl[f] < lvl[file]),
                  key=lambda f: (lvl[f], p.order.index(f)))


def context_items(p: Pipeline, file: str, code: dict[str, str]) -> list[dict[str, Any]]:
    """The earlier files in full, each in its own group: its level (scoped) or its place in
    the order (full). A file looks the same in every prompt it appears in."""
    lvl = levels(p.order, p.deps)
    items = []
    for f in earlier_files(p, file):
        if f not in code:
            continue  # failed earlier; nothing to show
        group = p.order.index(f) if p.opts.context == "full" else lvl[f]
        items.append({"file": f, "full": True, "lang": lang_of(f), "code": code[f],
                      "group": group})
    return items


def code_blocks(p: Pipeline, items: list[dict[str, Any]]) -> list[Message]:
    """The earlier code as one user message per group, each a cache breakpoint: a prompt
    holds the previous prompts' groups unchanged, then its own new ones."""
    groups: list[list[dict[str, Any]]] = []
    for i in items:
        if groups and groups[-1][0]["group"] == i["group"]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [{"role": "user", "content": p.render("earlier_code", earlier=g, first=n == 0),
             "cache": True} for n, g in enumerate(groups)]


def fit_items(p: Pipeline, file: str, items: list[dict[str, Any]], analysis: str,
              room: int) -> tuple[list[dict[str, Any]], str]:
    """Shrink earlier code, then the analysis, until the prompt fits ``room`` tokens."""
    def size() -> int:
        return sum(estimate_tokens(i["code"]) + 20 for i in items) + estimate_tokens(analysis)

    if size() <= room:
        return items, analysis
    direct = set(p.deps.get(file, []))
    # 1. non-dependencies as interfaces, 2. dependencies as interfaces
    for only_deps in (False, True):
        for i in items:
            if i["full"] and i["file"].endswith(".py") and ((i["file"] in direct) == only_deps):
                i["full"], i["code"] = False, public_interface(i["code"])
                p.note("coding: earlier files given as interfaces only to fit the context window")
                if size() <= room:
                    return items, analysis
    # 3. drop the interfaces that are not dependencies, oldest first; then the rest
    for keep_deps in (True, False):
        for i in list(items):
            if size() <= room:
                return items, analysis
            if keep_deps and i["file"] in direct:
                continue
            items.remove(i)
            p.note("coding: some earlier files left out of prompts to fit the context window")
    notes: list[str] = []
    analysis = clip(analysis, max(room - size() + estimate_tokens(analysis), 100),
                    f"analysis of {file}", notes)
    if notes:
        p.note("coding: analyses shortened to fit the context window")
    return items, analysis


def make_check(file: str) -> Callable[[Completion], str]:
    def check(c: Completion) -> str:
        code = extract_code(c.text, file)
        check_file(code, file)  # by its kind: Python, YAML, JSON, shell, or by content
        return code.rstrip() + "\n"

    return check


async def write_file(p: Pipeline, file: str, code: dict[str, str],
                     sem: asyncio.Semaphore) -> None:
    state = p.manifest.files.setdefault(file, FileRecord(status="pending"))
    prefix = p.plan_prefix()
    room = p.budget.input - sum(estimate_tokens(m["content"]) for m in prefix) - 200
    items, analysis = fit_items(p, file, context_items(p, file, code),
                                p.analyses.get(file, ""), max(room, 200))
    prompt = p.render("coding", file=file, lang=lang_of(file), analysis=analysis,
                      requirements=for_file(p, file),
                      depends_on=[d for d in p.deps.get(file, []) if d in code])
    # What every prompt shares comes first (paper, plan, the earlier code in a fixed order);
    # what is this file's own (its analysis and the instruction) comes last.
    code_block = code_blocks(p, items)
    async with sem:
        p.progress.working(file)
        try:
            c = await p.call(prefix + code_block + [{"role": "user", "content": prompt}],
                             stage="coding", file=file, check=make_check(file), repairs=1)
        except ModelOutputError as e:
            state.status, state.error = "failed", str(e)
            p.warn(f"{file} was not written: {e}")
            p.save()
            p.progress.advance(file)
            return
    p.ws.write_artifact(f"coding/{artifact_name(file)}.md", c.text)
    p.ws.write_repo_file(file, c.parsed)
    code[file] = c.parsed
    state.status, state.error, state.bytes = "written", None, len(c.parsed.encode())
    state.model = p.model.name
    p.save()
    p.progress.advance(file)


async def run(p: Pipeline) -> None:
    redo = p.opts.from_stage in ("planning", "analysis", "coding")
    code: dict[str, str] = {}
    todo: list[str] = []
    for f in p.order:
        state = p.manifest.files.setdefault(f, FileRecord(status="pending"))
        existing = p.ws.read_repo_file(f)
        if not redo and state.status == "written" and existing is not None:
            code[f] = existing
        else:
            state.status, state.error = "pending", None
            state.unset("model")
            todo.append(f)
    p.progress.stage("coding", len(p.order), done=len(p.order) - len(todo))
    sem = asyncio.Semaphore(1 if p.opts.context == "full" else p.opts.concurrency)
    # Each file waits for the files its prompt shows: those of lower levels (full context:
    # every earlier file).
    written = {f: asyncio.Event() for f in p.order}
    for f in p.order:
        if f not in todo:
            written[f].set()
    errors: list[BaseException] = []

    async def one(f: str) -> None:
        try:
            for d in earlier_files(p, f):
                if d in written:
                    await written[d].wait()
            if not errors:  # after a budget stop or a crash, start nothing new
                await write_file(p, f, code, sem)
        except BaseException as e:
            errors.append(e)
            raise
        finally:
            written[f].set()

    await asyncio.gather(*(one(f) for f in todo), return_exceptions=True)
    if errors:
        raise errors[0]
    for problem in unresolved_imports(code):
        p.warn(problem)
    finish_repo(p, code)


def who_wrote(p: Pipeline) -> str:
    """The model, or the models per stage when a rerun with --from mixed them."""
    m = p.manifest
    by_stage: dict[str, set[str]] = {"planning": set(), "analysis": set(), "coding": set()}
    for step in m.steps:
        if step in m.models:
            by_stage["analysis" if step.startswith("analysis:") else "planning"].add(
                m.models[step])
    by_stage["coding"] = {s.model for s in m.files.values()
                          if s.status == "written" and s.model}
    names = set().union(*by_stage.values())
    if len(names) <= 1:
        return next(iter(names), p.model.name)
    return "; ".join(f"{', '.join(sorted(v))} ({k})" for k, v in by_stage.items() if v)


_NOTHING = re.compile(r"^(none|n/?a|nothing|no|nil|null|-+|\.+|\[\]|\{\}|\"\"|''|tbd|"
                      r"nothing (is )?unclear|no open questions?|everything is clear)\W*$",
                      re.I)
_MARKUP = re.compile(r"^[\s#>*`_|+=~-]*(\d+[.)]\s+)?")


def _prose_lines(text: str) -> list[str]:
    """The lines of ``text`` that say something: markup, code and fences dropped."""
    out: list[str] = []
    fenced = False
    for raw in text.splitlines():
        if raw.strip().startswith("```"):
            fenced = not fenced
            continue
        if raw.lstrip().startswith("#"):
            continue  # a heading names, it does not describe
        line = _MARKUP.sub("", raw).strip().rstrip("*_`").strip()
        if fenced or not re.search(r"[A-Za-z]{3}", line) or _NOTHING.match(line):
            continue
        if re.match(r"^[\[{]", line) or line.endswith(("{", "[")) or "\": \"" in line:
            continue  # JSON pieces
        out.append(" ".join(line.split()))
    return out


def describe_file(notes: str, analysis: str) -> str:
    """One line saying what a file is for: the logic design's note, else the analysis."""
    for text in (notes, analysis):
        lines = _prose_lines(text or "")
        if lines:
            first = lines[0]
            return first if len(first) <= 200 else first[:199].rstrip() + "…"
    return "(the plan gives no description)"


def open_questions(*texts: str) -> str:
    """The plan's open questions as a list of real questions and notes; "None", "N/A",
    fences, JSON pieces and repeats are left out ("" when nothing is left)."""
    seen: list[str] = []
    for text in texts:
        for line in _prose_lines(text or ""):
            if line not in seen:
                seen.append(line)
    return "\n".join(f"- {q}" for q in seen[:20])


def finish_repo(p: Pipeline, code: dict[str, str]) -> None:
    """config.yaml, requirements.txt and README.md beside the generated files."""
    assert p.architecture is not None and p.logic is not None
    p.ws.write_repo_file("config.yaml", p.config_text)
    reqs, bad, dropped = requirements(p.logic.required_packages)
    if bad:
        p.warn("requirements left out (not pip requirement specs): " + ", ".join(bad))
    if dropped:
        log.info("requirements.txt leaves out pip, the standard library and Python: %s",
                 ", ".join(dropped))
    p.ws.write_repo_file("requirements.txt", "\n".join(reqs) + ("\n" if reqs else ""))
    # The README points only at files that exist, and says which are missing.
    written = [f for f in p.order if f in p.manifest.files
               and p.manifest.files[f].status == "written"]
    p.ws.write_repo_file("README.md", p.render(
        "repo_readme", title=p.paper.title, source=p.paper.source, model=who_wrote(p),
        approach=p.architecture.implementation_approach,
        files=[(f, describe_file(next((x.notes for x in p.logic.logic_analysis
                                       if x.file == f), ""), p.analyses.get(f, "")),
                p.manifest.files.get(f, FileRecord()).status) for f in p.order],
        entry=entry_point(written), planned_entry=entry_point(p.order),
        missing=[f for f in p.order if f not in written],
        unclear=open_questions(p.architecture.anything_unclear, p.logic.anything_unclear),
        has_requirements=bool(reqs), warnings=p.manifest.warnings) + "\n")
