"""The fault catalogue: one misbehaviour of the model, the server or the output folder per case.

A :class:`Case` says what the loopback server answers for which pipeline step (the first
requests of that step get the faulty replies, later ones the good answer unless the fault
``repeats``), what is prepared in OUT beforehand, and which outcome classes are acceptable.
:func:`all_cases` generates the catalogue; :mod:`tests.faults.harness` runs a case and
classifies its outcome. Both the test suite and ``bench/faults.py`` use them.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import pipeline_helpers as ph
from tests.fakes.server import Reply

# -- outcome classes ----------------------------
REPAIRED = "success after repair"
CLEAN = "clean failure"
TRACEBACK = "traceback"
SILENT = "silent wrong result"
OUTSIDE = "write outside OUT"
DOUBLE = "double payment"
CONSOLE = "unsafe console output"
UNCLEAR = "unclear failure"
HANG = "hang"
GOOD_CLASSES = (REPAIRED, CLEAN)
BAD_CLASSES = (TRACEBACK, SILENT, OUTSIDE, DOUBLE, CONSOLE, UNCLEAR, HANG)
ALL_CLASSES = GOOD_CLASSES + BAD_CLASSES

CANARY_SECRET = "CANARY-SECRET-7f3a"
"""Content of a file outside OUT: seen in a request means OUT leaked a read."""
ESCAPES = ("\x1b]0;PWNED\x07", "\x1b[2J")
"""Terminal escape sequences injected into model/server text."""

# -- the good answers ----------------------------
GOOD_PLAN = ("## Plan\nImplement momentum SGD (Sec. 1) with learning rate 0.05 and momentum "
             "0.9, average the iterates, and report the held-out mean squared error.")


def good_answer(step: str) -> str:
    s = ph.script(plan=GOOD_PLAN)
    if step in s:
        return s[step]
    kind, _, file = step.partition(":")
    if kind == "analysis":
        return f"# Analysis of {file}\nImplements the part of Sec. 1 that {file} holds."
    if kind == "coding":  # a file a case added to the plan
        return f"## Code: {file}\n```\n# {file}\nVALUE = 1\n```\n"
    return "I cannot tell which step this is."


_STEP = {"Step 1 of the plan": "plan", "Step 2 of the plan": "architecture",
         "Step 3 of the plan": "logic", "Step 4 of the plan": "config"}


def _content_text(content: Any) -> str:
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, Mapping))
    return str(content or "")


def step_of(body: Mapping[str, Any]) -> str:
    """The pipeline step a request belongs to: the newest user turn that names one (re-asks
    and continuations follow the step's own prompt)."""
    for m in reversed(list(body.get("messages") or [])):
        if m.get("role") != "user":
            continue
        text = _content_text(m.get("content"))
        for marker, step in _STEP.items():
            if marker in text:
                return step
        found = re.search(r"detailed logic analysis for (\S+), the file", text)
        if found:
            return f"analysis:{found.group(1)}"
        found = re.search(r"Now write (\S+)\. Follow the paper", text)
        if found:
            return f"coding:{found.group(1)}"
    return "other"


# -- cases ----------------------------
Spec = Any
"""A reply: text, or a mapping for :class:`tests.fakes.server.Reply` (status, body, raw,
finish_reason, headers, trickle, ...)."""


@dataclass(frozen=True)
class Case:
    id: str
    klass: str
    """answers, extraction, paths, parsing, shapes, bounds (ours); fs, console, concurrency,
    signal (the file-system/console half of the hardening)."""
    faults: Mapping[str, tuple[Spec, ...]] = field(default_factory=dict)
    repeat: bool = False
    """The last faulty reply of each step repeats forever (the model never gets it right)."""
    expect: frozenset[str] = frozenset({REPAIRED})
    args: tuple[str, ...] = ()
    protocol: str = "openai"
    files: tuple[str, ...] | None = None
    """The plan's file list when the case changes it (the good answers follow)."""
    message: str | None = None
    """Text the error sentence must contain when the run fails."""
    prepare: str | None = None
    """A preparation of OUT (see harness.PREPARE) before the first run."""
    between: str | None = None
    """A change to OUT between the first run and the rerun."""
    runner: str = "run"
    """run (two runs in a row), concurrent (two at once), sigint (interrupt, then rerun)."""
    subprocess_only: bool = False
    ours: bool = True
    """False for the other half's classes: the bench runs them, the tests here do not."""

    def responder(self) -> FaultResponder:
        return FaultResponder(self)


class FaultResponder:
    """The server side of a case: faulty replies for the first requests of a step, then the
    good answer (or the last fault again, when the case repeats)."""

    def __init__(self, case: Case) -> None:
        self.case = case
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __call__(self, body: Any) -> Reply:
        step = step_of(body) if isinstance(body, Mapping) else "other"
        with self._lock:
            n = self.counts[step]
            self.counts[step] += 1
        specs = self.case.faults.get(step) or self.case.faults.get(step.split(":")[0] + ":*")
        if specs and (n < len(specs) or self.case.repeat):
            return Reply.coerce(specs[min(n, len(specs) - 1)])
        if step == "architecture" and self.case.files is not None:
            return Reply(text=ph.architecture(list(self.case.files)))
        if step == "logic" and self.case.files is not None:
            deps = {f: ph.DEPS.get(f, []) for f in self.case.files}
            return Reply(text=ph.logic(deps))
        return Reply(text=good_answer(step))


# -- building blocks ----------------------------
def code_text(file: str) -> str:
    return ph.CODE[file]


def answer_with(block: str, *, heading: str | None = None, lang: str = "python",
                before: str = "Here it is.") -> str:
    head = f"\n\n## Code: {heading}" if heading else ""
    return f"{before}{head}\n```{lang}\n{block}```\n"


def openai_body(text: Any = "ok", *, finish: Any = "stop", message: Any = None,
                choices: Any = None, usage: Any = None, drop: tuple[str, ...] = ()) -> dict:
    msg = {"role": "assistant", "content": text} if message is None else message
    body: dict[str, Any] = {
        "id": "chatcmpl-x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}]
        if choices is None else choices,
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if usage is None else usage,
    }
    for k in drop:
        body.pop(k, None)
    return body


def nested_json(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def yaml_alias_bomb(levels: int) -> str:
    """A "billion laughs": each level a list of ten aliases of the level before."""
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


REFUSALS = ("I'm sorry, I can't help with that.", "I’m sorry, but I cannot assist with "
            "that request.", "Sorry, I can't do that.", "I cannot help with this.",
            "As an AI language model, I must decline.", "I am unable to comply with this.")


def _half(text: str) -> tuple[str, str]:
    cut = len(text) // 2
    return text[:cut], text[cut:]


# -- the catalogue ----------------------------
def answer_cases() -> list[Case]:
    """Unfinished answers: truncation, content filter, refusals, answers without substance."""
    out: list[Case] = []
    code = ph.code_answer("model.py")
    a, b = _half(code)
    out.append(Case("trunc-code-continued", "answers", {
        "coding:model.py": ({"text": a, "finish_reason": "length"}, b)}))
    out.append(Case("trunc-code-always", "answers", {
        "coding:model.py": ({"text": a, "finish_reason": "length"},)}, repeat=True,
        expect=frozenset({CLEAN})))
    out.append(Case("trunc-code-then-reasked", "answers", {
        "coding:model.py": tuple({"text": a, "finish_reason": "length"} for _ in range(3))}))
    pa, _ = _half(GOOD_PLAN)
    out.append(Case("trunc-plan-always", "answers", {
        "plan": ({"text": pa, "finish_reason": "length"},)}, repeat=True,
        expect=frozenset({CLEAN})))
    out.append(Case("trunc-plan-once", "answers", {
        "plan": tuple({"text": pa, "finish_reason": "length"} for _ in range(3))}))
    for step, filtered in (("plan", "content_filter"), ("coding:model.py", "content_filter"),
                           ("analysis:data.py", "content_filter"), ("config", "content_filter"),
                           ("coding:main.py", "refusal")):
        good = good_answer(step)
        part = good[: len(good) // 3]
        name = step.replace(":", "-").replace(".py", "")
        out.append(Case(f"filter-{name}-once", "answers", {
            step: ({"text": part, "finish_reason": filtered},)}))
        out.append(Case(f"filter-{name}-always", "answers", {
            step: ({"text": part, "finish_reason": filtered},)}, repeat=True,
            expect=frozenset({CLEAN})))
    for i, r in enumerate(REFUSALS):
        step = ("plan", "analysis:model.py", "coding:model.py", "config", "plan",
                "coding:utils.py")[i]
        name = step.replace(":", "-").replace(".py", "")
        out.append(Case(f"refusal{i}-{name}-once", "answers", {step: (r,)}))
    out.append(Case("refusal-plan-always", "answers", {"plan": (REFUSALS[0],)}, repeat=True,
                    expect=frozenset({CLEAN}), message="declined"))
    out.append(Case("refusal-code-always", "answers", {"coding:data.py": (REFUSALS[1],)},
                    repeat=True, expect=frozenset({CLEAN})))
    out.append(Case("plan-no-substance", "answers", {"plan": ("Plan.",)}))
    out.append(Case("plan-empty-always", "answers", {"plan": ("  ",)}, repeat=True,
                    expect=frozenset({CLEAN})))
    out.append(Case("analysis-empty-always", "answers", {"analysis:model.py": ("ok",)},
                    repeat=True, expect=frozenset({CLEAN})))
    # Structured answers closed after a cut-off lose files: never accepted.
    arch = ph.architecture()
    cut = arch.index('"model.py"') + 4
    out.append(Case("trunc-architecture-once", "answers", {
        "architecture": ({"text": arch[:cut], "finish_reason": "length"},)}))
    out.append(Case("trunc-architecture-always", "answers", {
        "architecture": ({"text": arch[:cut], "finish_reason": "length"},)}, repeat=True,
        expect=frozenset({CLEAN})))
    logic = ph.logic()
    cut = logic.index('"model.py"') + 3
    out.append(Case("trunc-logic-once", "answers", {
        "logic": ({"text": logic[:cut], "finish_reason": "length"},)}))
    out.append(Case("trunc-logic-always", "answers", {
        "logic": ({"text": logic[:cut], "finish_reason": "length"},)}, repeat=True,
        expect=frozenset({CLEAN})))
    out.append(Case("architecture-refusal", "answers", {"architecture": (REFUSALS[0],)}))
    return out


def extraction_cases() -> list[Case]:
    """The wrong content for a file: empty, another file's, another language, ambiguous."""
    target = "model.py"
    code = code_text(target)
    other = code_text("data.py")
    wrong = {
        "empty-block": answer_with("", heading=target),
        "other-file-heading": answer_with(other, heading="data.py"),
        "other-file-info": f"Here.\n```python data.py\n{other}```\n",
        "js-block": answer_with("function fit(x) {\n  return x;\n}\n", lang="javascript"),
        "js-parses-as-python": answer_with("x = 1\n", lang="javascript"),
        "two-unnamed-blocks": f"Code:\n```python\n{code}```\nUsage:\n```python\n"
                              "r = Regressor()\nr.fit([], [])\n```\n",
        "no-block": "The model is a linear regressor trained with momentum SGD.",
        "two-headed-blocks": answer_with(code, heading=target) + answer_with(
            "print('x')\n", heading=target),
        "yaml-block-for-py": answer_with("a: 1\n", lang="yaml"),
        "unterminated-wrong-lang": "Here:\n```javascript\nlet x = 1;\n",
    }
    out = []
    for name, text in wrong.items():
        out.append(Case(f"extract-{name}-once", "extraction", {f"coding:{target}": (text,)}))
        out.append(Case(f"extract-{name}-always", "extraction", {f"coding:{target}": (text,)},
                        repeat=True, expect=frozenset({CLEAN})))
    # Answers that must be accepted as they are (no re-ask needed, content exact).
    fine = {
        "prose-around": f"Sure! Some notes first.\n\n**model.py**\n```python\n{code}```\n"
                        "That is all. Run it with:\n```bash\npython main.py\n```\n",
        "info-string-name": f"```python title=\"model.py\"\n{code}```\n",
        "tilde-fence": f"## Code: model.py\n~~~python\n{code}~~~\n",
        "untagged-single": f"```\n{code}```\n",
        "example-for-other-file": f"## Code: model.py\n```python\n{code}```\n\nIn main.py "
                                  "use it:\n```python\nfrom model import Regressor\n```\n",
    }
    for name, text in fine.items():
        out.append(Case(f"extract-ok-{name}", "extraction", {f"coding:{target}": (text,)},
                        repeat=True))
    return out


def path_cases() -> list[Case]:
    """File lists with unusable names: refused at planning, re-asked."""
    base = list(ph.FILES)
    bad = {
        "folder-like": base + ["pkg/"],
        "case-clash": base + ["Model.py"],
        "file-and-folder": base + ["data.py/extra.py"],
        "climbs-out": base + ["../evil.py"],
        "absolute": base + ["/tmp/evil.py"],
        "generated-case-clash": base + ["readme.md"],
        "git-dir": base + [".git/config"],
    }
    out = []
    for name, files in bad.items():
        text = ph.architecture(files)
        out.append(Case(f"paths-{name}-once", "paths", {"architecture": (text,)}))
        out.append(Case(f"paths-{name}-always", "paths", {"architecture": (text,)},
                        repeat=True, expect=frozenset({CLEAN})))
    return out


def parsing_cases() -> list[Case]:
    """Answers beyond the parsing bounds: a format error for that answer, never a crash."""
    deep_code = "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    deep_indent = "".join("    " * i + f"if x{i}:\n" for i in range(120)) + "    " * 120 + \
        "pass\n"
    deep_list = "x = " + "[" * 300 + "]" * 300 + "\n"
    deep_unary = "x = " + "-" * 4000 + "1\n"
    deep_chain = "x = " + " + ".join(["1"] * 600) + "\n"
    yaml_bomb = yaml_alias_bomb(10)
    out = [
        Case("deep-json-architecture", "parsing",
             {"architecture": ("[CONTENT]\n" + nested_json(50_000) + "\n[/CONTENT]",)}),
        Case("deep-json-logic", "parsing", {"logic": (nested_json(3000),)}),
        Case("deep-json-always", "parsing", {"architecture": (nested_json(50_000),)},
             repeat=True, expect=frozenset({CLEAN})),
        Case("deep-code-parens", "parsing",
             {"coding:model.py": (answer_with(deep_code, heading="model.py"),)}),
        Case("deep-code-indent", "parsing",
             {"coding:model.py": (answer_with(deep_indent, heading="model.py"),)}),
        Case("deep-code-list", "parsing",
             {"coding:utils.py": (answer_with(deep_list, heading="utils.py"),)}),
        Case("deep-code-always", "parsing",
             {"coding:model.py": (answer_with(deep_code, heading="model.py"),)}, repeat=True,
             expect=frozenset({CLEAN})),
        Case("deep-yaml-config", "parsing", {"config": ("```yaml\n" + "a:\n" + "".join(
            "  " * i + f"k{i}:\n" for i in range(1, 400)) + "```\n",)}),
        # Deep without brackets: the parser itself runs out of stack (ast.parse), or the
        # file parses but pyflakes (the static check after coding) cannot walk it.
        Case("deep-code-unary", "parsing",
             {"coding:model.py": (answer_with(deep_unary, heading="model.py"),)}),
        Case("deep-code-chain", "parsing",
             {"coding:model.py": (answer_with(deep_chain, heading="model.py"),)}),
        Case("deep-code-chain-always", "parsing",
             {"coding:data.py": (answer_with(deep_chain, heading="data.py"),)}, repeat=True,
             expect=frozenset({CLEAN})),
        # YAML aliases of aliases: tiny text, ten billion values once expanded.
        Case("yaml-bomb-config", "parsing", {"config": (f"```yaml\n{yaml_bomb}```\n",)}),
        Case("yaml-bomb-config-always", "parsing",
             {"config": (f"```yaml\n{yaml_bomb}```\n",)}, repeat=True,
             expect=frozenset({CLEAN})),
        Case("yaml-self-alias-config", "parsing", {"config": (
            "```yaml\ntraining: &t\n  lr: 0.05\n  again: [*t]\n```\n",)}),
        Case("yaml-bomb-model-file", "parsing",
             {"coding:settings.yaml": (answer_with(yaml_bomb, heading="settings.yaml",
                                                   lang="yaml"),)},
             files=tuple(ph.FILES) + ("settings.yaml",)),
        Case("surrogate-in-prose", "parsing", {"coding:model.py": ({
            "raw": json.dumps(openai_body(ph.code_answer("model.py").replace(
                "Here it is.", "Here it is \ud800."))).encode()},)}),
        Case("surrogate-in-plan", "parsing", {"plan": ({
            "raw": json.dumps(openai_body(GOOD_PLAN + " \udc80")).encode()},)}),
        Case("surrogate-in-file-list", "parsing", {"architecture": ({
            "raw": json.dumps(openai_body(ph.architecture(list(ph.FILES) + [
                "odd\ud800.py"]))).encode()},)}),
        Case("surrogate-in-diagram", "parsing", {"architecture": ({
            "raw": json.dumps(openai_body(ph.architecture().replace(
                "Plain Python.", "Plain Python \\ud800."))).encode()},)}),
        Case("nul-in-code", "parsing", {"coding:model.py": (
            answer_with("x = 1\x00\n", heading="model.py"),)}),
    ]
    return out


def shape_cases() -> list[Case]:
    """200 answers of the wrong shape: an error for that attempt, stored, not paid twice."""
    bodies: dict[str, Any] = {
        "choices-object": openai_body(choices={"0": {"message": {"content": "x"}}}),
        "choices-empty": openai_body(choices=[]),
        "choices-missing": openai_body(drop=("choices",)),
        "choice-string": openai_body(choices=["hello"]),
        "message-string": openai_body(message="hello"),
        "message-missing": openai_body(choices=[{"index": 0, "finish_reason": "stop"}]),
        "content-number": openai_body(42),
        "content-list": openai_body([{"type": "text", "text": "hi"}]),
        "content-object": openai_body({"text": "hi"}),
        "finish-number": openai_body("hi", finish=7),
        "usage-string": openai_body("hi", usage="lots"),
        "usage-tokens-string": openai_body("hi", usage={"prompt_tokens": "ten",
                                                        "completion_tokens": 5}),
        "usage-negative": openai_body("hi", usage={"prompt_tokens": -5,
                                                   "completion_tokens": 5}),
        "usage-float": openai_body("hi", usage={"prompt_tokens": 1.5,
                                                "completion_tokens": 5}),
        "body-list": [1, 2, 3],
        "body-string": "hello",
        "body-null": None,
    }
    out = []
    for name, body in bodies.items():
        out.append(Case(f"shape-{name}", "shapes",
                        {"plan": ({"raw": json.dumps(body).encode()},)},
                        expect=frozenset({CLEAN}), message="not a valid answer"))
    raws = {"not-json": b"<html>502 Bad Gateway</html>", "truncated-json": b'{"choices": [',
            "deep-json": nested_json(100_000).encode(), "empty": b""}
    for name, raw in raws.items():
        out.append(Case(f"shape-{name}", "shapes", {"plan": ({"raw": raw},)},
                        expect=frozenset({CLEAN}), message="not a valid answer"))
    out.append(Case("shape-in-coding", "shapes", {"coding:model.py": ({"raw": json.dumps(
        openai_body(message="x")).encode()},)}, expect=frozenset({CLEAN})))
    anthropic = {
        "content-string": {"type": "message", "content": "hi", "stop_reason": "end_turn",
                           "usage": {"input_tokens": 1, "output_tokens": 1}},
        "usage-missing": {"type": "message", "content": [{"type": "text", "text": "hi"}],
                          "stop_reason": "end_turn"},
        "text-number": {"type": "message", "content": [{"type": "text", "text": 5}],
                        "stop_reason": "end_turn",
                        "usage": {"input_tokens": 1, "output_tokens": 1}},
        "usage-string": {"type": "message", "content": [{"type": "text", "text": "hi"}],
                         "stop_reason": "end_turn",
                         "usage": {"input_tokens": "one", "output_tokens": 1}},
    }
    for name, body in anthropic.items():
        out.append(Case(f"shape-anthropic-{name}", "shapes",
                        {"plan": ({"raw": json.dumps(body).encode()},)}, protocol="anthropic",
                        expect=frozenset({CLEAN}), message="not a valid answer"))
    out.append(Case("anthropic-refusal-stop", "answers", {"plan": (
        {"text": "I can", "finish_reason": "refusal"},)}, protocol="anthropic"))
    out.append(Case("anthropic-max-tokens-always", "answers", {"coding:model.py": (
        {"text": "```python\nimport os\n", "finish_reason": "max_tokens"},)}, repeat=True,
        protocol="anthropic", expect=frozenset({CLEAN})))
    return out


def bound_cases() -> list[Case]:
    """Calls that must stay bounded: trickling bodies, long Retry-After, 5xx then success."""
    err500 = {"status": 500, "body": {"error": {"message": "boom", "type": "server_error"}}}
    out = [
        # The body would take over ten minutes at one byte a second.
        Case("trickle-body", "bounds", {"plan": ({"text": GOOD_PLAN, "trickle": 1.0},)},
             repeat=True, args=("--timeout", "4", "--max-retries", "1"),
             expect=frozenset({CLEAN}), message="2 attempts"),
        Case("trickle-once-then-ok", "bounds", {"plan": ({"text": GOOD_PLAN, "trickle": 1.0},)},
             args=("--timeout", "8", "--max-retries", "2")),
        Case("retry-after-120", "bounds", {"plan": ({"status": 429, "headers": {
            "Retry-After": "120"}, "body": {"error": {"message": "slow down"}}},)},
             repeat=True, expect=frozenset({CLEAN}), message="asked to wait 120"),
        Case("retry-after-date", "bounds", {"plan": ({"status": 503, "headers": {
            "Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}, "body": {"error": {
                "message": "later"}}},)}, repeat=True, expect=frozenset({CLEAN}),
             message="asked to wait"),
        Case("retry-after-1-then-ok", "bounds", {"plan": ({"status": 429, "headers": {
            "Retry-After": "1"}, "body": {"error": {"message": "slow down"}}},)}),
        Case("500-twice-then-ok", "bounds", {"plan": (err500, err500)}),
        Case("500-always-attempts", "bounds", {"plan": (err500,)}, repeat=True,
             args=("--max-retries", "1"), expect=frozenset({CLEAN}), message="2 attempts"),
        Case("500-in-coding-then-ok", "bounds", {"coding:data.py": (err500,)}),
        Case("dropped-connection-then-ok", "bounds", {"plan": ({"drop": True},)}),
        Case("slow-answer-timeout", "bounds", {"plan": ({"text": GOOD_PLAN, "delay": 5},)},
             repeat=True, args=("--timeout", "1", "--max-retries", "0"),
             expect=frozenset({CLEAN}), message="1 attempt"),
    ]
    return out


# -- the other half's classes (bench only here) ----------------------------
def fs_cases() -> list[Case]:
    names = ("repo-link", "log-link", "tmp-link", "artifacts-link", "run-json-link",
             "analysis-artifact-link", "repo-file-link")
    out = [Case(f"fs-{n}", "fs", prepare=n, expect=frozenset({CLEAN, REPAIRED}), ours=False)
           for n in names]
    out.append(Case("fs-resume-reads-link", "fs", between="repo-file-to-secret",
                    expect=frozenset({CLEAN, REPAIRED}), ours=False))
    return out


def console_cases() -> list[Case]:
    markup = "[/] [bold red]x[/bold red] [link=file:///etc/passwd]y[/link]"
    esc = "".join(ESCAPES)
    return [
        Case("console-markup-refusal", "console", {"plan": (
            f"I'm sorry, I can't help with that. {markup}",)},
             repeat=True, expect=frozenset({CLEAN}), ours=False),
        Case("console-markup-filename", "console", files=tuple(ph.FILES) + ("[/]odd.py",),
             expect=frozenset({REPAIRED, CLEAN}), ours=False),
        Case("console-markup-server-error", "console", {"plan": ({"status": 400, "body": {
            "error": {"message": f"bad request {markup}"}}},)}, repeat=True,
             expect=frozenset({CLEAN}), ours=False),
        Case("console-escape-server-error", "console", {"plan": ({"status": 400, "body": {
            "error": {"message": f"bad request {esc}"}}},)}, repeat=True,
             expect=frozenset({CLEAN}), ours=False),
        Case("console-escape-refusal", "console", {"plan": (
            f"I'm sorry, I can't help with that. {esc}",)},
             repeat=True, expect=frozenset({CLEAN}), ours=False),
        Case("console-markup-warning", "console", {"coding:model.py": (
            f"{markup}\n" + answer_with("", heading="data.py"),)}, repeat=True,
             expect=frozenset({CLEAN}), ours=False),
    ]


def process_cases() -> list[Case]:
    return [
        Case("concurrent-runs-one-out", "concurrency", runner="concurrent",
             expect=frozenset({REPAIRED, CLEAN}), subprocess_only=True, ours=False),
        Case("sigint-mid-run", "signal", runner="sigint", expect=frozenset({REPAIRED}),
             subprocess_only=True, ours=False),
    ]


def all_cases(include_theirs: bool = True) -> list[Case]:
    cases = (answer_cases() + extraction_cases() + path_cases() + parsing_cases()
             + shape_cases() + bound_cases())
    if include_theirs:
        cases += fs_cases() + console_cases() + process_cases()
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases


def by_id(case_id: str) -> Case:
    return next(c for c in all_cases() if c.id == case_id)


PrepareFn = Callable[[Path, Path], None]
