"""One repair round: what failed goes to the model, its SEARCH/REPLACE edits come back.

The prompt holds the command, the condensed output (the last traceback first), the files the
traceback implicates plus their direct dependencies, the smoke commands and the relevant
part of the logic design. Every request is made through the run's :class:`Caller` (stage
``verify``), so it is logged, priced and answered from the cache on a rerun; the prompt is
made stable (paths, addresses and timings normalised) so that a resumed loop asks the same
questions and pays nothing twice.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from papercoder.edits import apply_to, parse_edits
from papercoder.errors import FormatError
from papercoder.llm import Caller
from papercoder.models.base import Completion, Message
from papercoder.prompts import render
from papercoder.pyparse import parse_python
from papercoder.verify.smoke import Failure, SmokeCommand

OUTPUT_CHARS = 8000
FILES_CHARS = 60000
ALWAYS = ("requirements.txt", "config.yaml")
_FRAME = re.compile(r'^\s*File "([^"]+)", line (\d+)', re.M)


def stable(text: str) -> str:
    """Output with addresses, timings and temporary paths replaced, so reruns match."""
    text = re.sub(r"0x[0-9a-fA-F]{6,}", "0x…", text)
    text = re.sub(r"\b\d+(\.\d+)?\s?(s|ms|sec|seconds|it/s|s/it)\b", "<time>", text)
    text = re.sub(r"/tmp/[\w./-]*?tmp\w+", "/tmp/…", text)
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def condense(output: str, limit: int = OUTPUT_CHARS) -> str:
    """The last traceback first, then the end of the rest, within ``limit`` characters."""
    text = stable(output)
    start = text.rfind("Traceback (most recent call last):")
    if start < 0:
        return text[-limit:]
    tb = text[start:]
    if len(tb) > limit * 2 // 3:
        tb = tb[: limit // 3] + "\n[...]\n" + tb[-limit // 3:]
    rest = text[:start].rstrip()
    room = limit - len(tb)
    before = ("\n\nOutput before the traceback (its end):\n" + rest[-room:]) if rest and \
        room > 200 else ""
    return tb + before


_OUR_NOTE = re.compile(r"^\[(exit status|killed:) ")
"""The notes the smoke run appends to the output (not the program's own words)."""


def headline(failure: Failure) -> str:
    """What went wrong, for people: the exit status (a real number) and the error's line."""
    if failure.kind == "timeout":
        return f"{failure.command}: no exit within the time limit"
    if failure.kind == "outputs":
        return f"{failure.command}: exit status 0, but no {', '.join(failure.missing)}"
    lines = [x.strip() for x in failure.output.splitlines()
             if x.strip() and not _OUR_NOTE.match(x.strip())]
    exc = next((x for x in reversed(lines) if re.match(r"^[\w.]+(Error|Exception|Exit|"
                                                       r"Interrupt)\b", x)), None)
    last = exc or (lines[-1] if lines else "")
    status = f": exit status {failure.exit}" if failure.exit is not None else ""
    return f"{failure.command}{status}" + (f": {last[:200]}" if last else "")


def signature(failure: Failure) -> str:
    """What identifies an error across rounds: its type and message (numbers dropped) and
    the innermost repository frame."""
    if failure.kind in ("timeout", "outputs", "start"):
        return f"{failure.kind}: {failure.command} {' '.join(failure.missing)}"
    text = stable(failure.output)
    lines = [x.strip() for x in text.splitlines() if x.strip() and not _OUR_NOTE.match(x)]
    exc = next((x for x in reversed(lines) if re.match(r"^[\w.]+(Error|Exception|Exit|"
                                                       r"Interrupt)\b", x)), None)
    frames = [f for f, _ in _FRAME.findall(text) if not f.startswith("/")]
    where = f" @ {frames[-1]}" if frames else ""
    if exc is None:
        errs = [x for x in lines if x.startswith("ERROR") or "error" in x.lower()]
        exc = errs[-1] if errs else (lines[-1] if lines else f"exit {failure.exit}")
    return re.sub(r"\d+", "N", f"{failure.kind}: {exc[:200]}{where}")


def _local_imports(source: str, modules: dict[str, str]) -> list[str]:
    try:
        tree = parse_python(source)
    except SyntaxError:
        return []
    out: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            f = modules.get(n)
            if f and f not in out:
                out.append(f)
    return out


def _modules(code: Mapping[str, str]) -> dict[str, str]:
    mods = {}
    for f in code:
        if f.endswith(".py"):
            m = f[:-3].replace("/", ".")
            mods[m.removesuffix(".__init__")] = f
    return mods


def implicated(failure: Failure | None, code: Mapping[str, str],
               findings: list[dict[str, Any]] | None = None) -> list[str]:
    """Files named by the traceback (innermost first) or the findings, the script the
    command runs, and their direct dependencies."""
    named: list[str] = []
    if failure is not None:
        for f, _ in reversed(_FRAME.findall(stable(failure.output))):
            f = f.removeprefix("./")
            if f in code and f not in named:
                named.append(f)
        for word in failure.command.split():
            w = word.strip("'\"").removeprefix("./")
            if w in code and w not in named:
                named.append(w)
        if not named:
            named += [f for f in ("reproduce.sh", "main.py") if f in code]
    for item in findings or []:
        if item["file"] in code and item["file"] not in named:
            named.append(item["file"])
    mods = _modules(code)
    out = list(named)
    for f in named:
        for dep in _local_imports(code[f], mods) if f.endswith(".py") else []:
            if dep not in out:
                out.append(dep)
    return out + [f for f in ALWAYS if f in code and f not in out]


def plan_excerpt(logic_json: str | None, files: list[str], limit: int = 6000) -> str:
    if not logic_json:
        return ""
    try:
        data = json.loads(logic_json)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(data, dict):
        return ""
    parts = []
    for item in data.get("logic_analysis") or []:
        if isinstance(item, dict) and item.get("file") in files:
            parts.append(f"{item['file']}: {str(item.get('notes', '')).strip()}")
    shared = str(data.get("shared_knowledge") or "").strip()
    if shared:
        parts.append("Shared knowledge: " + shared)
    text = "\n\n".join(parts)
    return text if len(text) <= limit else text[:limit] + "\n[... cut ...]"


def build_messages(*, mode: str, code: Mapping[str, str], commands: list[SmokeCommand],
                   logic_json: str | None, failure: Failure | None = None,
                   findings: list[dict[str, Any]] | None = None,
                   open_findings: list[dict[str, Any]] | None = None,
                   prompts_dir: Any = None) -> list[Message]:
    files = implicated(failure, code, findings)
    shown: list[dict[str, str]] = []
    used = 0
    for f in files:
        content = code[f]
        if used + len(content) > FILES_CHARS and shown:
            continue
        shown.append({"path": f, "content": content.rstrip("\n")})
        used += len(content)
    others = sorted(f for f in code if f not in {s["path"] for s in shown})
    user = render("debug", prompts_dir, mode=mode, findings=findings or [],
                  open_findings=(open_findings or [])[:30],
                  command=failure.command if failure else "",
                  seed=failure.seed if failure and failure.seed is not None else "",
                  kind=failure.kind if failure else "",
                  output=condense(failure.output) if failure else "",
                  commands=[{"command": c.command, "outputs": c.outputs} for c in commands],
                  plan=plan_excerpt(logic_json, [s["path"] for s in shown]),
                  files=shown, others=others[:200])
    return [{"role": "system", "content": render("debug_system", prompts_dir)},
            {"role": "user", "content": user}]


@dataclass
class Repair:
    new: dict[str, str]
    """path -> new content of every file the edits touch."""
    answer: str


async def ask_repair(caller: Caller, messages: list[Message], code: Mapping[str, str], *,
                     label: str, repairs: int = 2) -> Repair:
    """The model's edits for ``code``, checked against it (re-asked on a bad edit)."""
    def check(c: Completion) -> dict[str, str]:
        new = apply_to(code, parse_edits(c.text))
        for p, content in new.items():
            if p.endswith(".py"):
                try:
                    parse_python(content)
                except SyntaxError as e:
                    raise FormatError(
                        f"After your edits {p} does not parse ({e.msg}, line {e.lineno}). "
                        "Send all the edits again, corrected.",
                        user_message=f"the edits left {p} unparsable") from None
        return new

    c = await caller.call(messages, stage="verify", file=label, check=check, repairs=repairs,
                          continuations=2)
    return Repair(new=c.parsed, answer=c.text)
