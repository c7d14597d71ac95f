"""A small paper and a scripted model that answers every pipeline step for it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

TINY_PAPER = """# Momentum Averaged Linear Regression

## Abstract

We fit a linear model with stochastic gradient descent with momentum and report the
averaged iterate.

## 1 Method

The loss is the mean squared error $L(w) = \\frac{1}{n}\\sum_i (x_i^\\top w - y_i)^2$.
The update is $v_{t+1} = \\beta v_t + \\nabla L(w_t)$ and $w_{t+1} = w_t - \\eta v_{t+1}$ with
learning rate $\\eta = 0.05$ and momentum $\\beta = 0.9$, for 200 steps with batch size 16.

$$\\bar w_T = \\frac{1}{T}\\sum_{t=1}^{T} w_t$$

## 2 Experiments

Synthetic data: 1000 points in 5 dimensions with Gaussian noise of standard deviation 0.1.
We report the mean squared error of the averaged iterate on 200 held-out points.

## References

- Polyak, B. Acceleration of stochastic approximation by averaging. 1992.
"""

FILES = ["utils.py", "data.py", "model.py", "main.py"]
DEPS = {"utils.py": [], "data.py": ["utils.py"], "model.py": ["utils.py"],
        "main.py": ["data.py", "model.py"]}

CODE = {
    "utils.py": 'import random\n\n\ndef seed_all(seed: int) -> None:\n    """Seed."""\n'
                "    random.seed(seed)\n",
    "data.py": "from utils import seed_all\n\n\ndef make_data(n: int, d: int):\n"
               '    """Synthetic regression data."""\n    seed_all(0)\n    return [], []\n',
    "model.py": "from utils import seed_all\n\n\nclass Regressor:\n"
                '    """Linear model trained with momentum SGD."""\n\n'
                "    def fit(self, xs, ys, lr: float = 0.05) -> None:\n"
                "        seed_all(1)\n        self.w = [0.0]\n",
    "main.py": "from data import make_data\nfrom model import Regressor\n\n\ndef main() -> None:"
               "\n    xs, ys = make_data(10, 5)\n    Regressor().fit(xs, ys)\n\n\n"
               'if __name__ == "__main__":\n    main()\n',
}


def architecture(files: list[str] | None = None) -> str:
    return "[CONTENT]\n" + json.dumps({
        "Implementation approach": "Plain Python.",
        "File list": files or FILES,
        "Data structures and interfaces": "classDiagram\n    class Regressor {\n +fit()\n }",
        "Program call flow": "sequenceDiagram\n    main->>Regressor: fit()",
        "Anything UNCLEAR": "Nothing.",
    }) + "\n[/CONTENT]"


REQUIREMENTS = [
    {"id": "R1", "category": "objective", "statement": "The loss is the mean squared error.",
     "quote": "The loss is the mean squared error", "section": "1 Method"},
    {"id": "R2", "category": "algorithm", "statement": "Momentum SGD: v = beta v + grad, "
     "w = w - eta v.", "quote": "The update is v_{t+1} = β v_t + ∇L(w_t)",
     "section": "1 Method"},
    {"id": "R3", "category": "training", "statement": "Learning rate 0.05, momentum 0.9.",
     "quote": "with learning rate η = 0.05 and momentum β = 0.9", "section": "1 Method"},
    {"id": "R4", "category": "data", "statement": "1000 synthetic points in 5 dimensions.",
     "quote": "Synthetic data: 1000 points in 5 dimensions", "section": "2 Experiments"},
    {"id": "R5", "category": "evaluation", "statement": "Report the MSE of the averaged "
     "iterate on 200 held-out points.", "quote": "We report the mean squared error of the "
     "averaged iterate on 200 held-out points.", "section": "2 Experiments"},
]
"""The small paper's contract: every quote is in TINY_PAPER (LaTeX there, Unicode here)."""
REQ_MAP = {"model.py": ["R1", "R2", "R3"], "data.py": ["R4"], "main.py": ["R5"]}
EVIDENCE = {"model.py": "class Regressor:", "data.py": "def make_data(n: int, d: int):",
            "main.py": "Regressor().fit(xs, ys)"}


def requirements_answer(reqs: list[dict[str, Any]] | None = None) -> str:
    return json.dumps({"requirements": REQUIREMENTS if reqs is None else reqs})


def audit_answer(file: str, verdict: str = "met", evidence: str | None = None) -> str:
    """The judge's grades of ``file``'s requirements, all ``verdict``, with evidence."""
    quote = EVIDENCE[file] if evidence is None else evidence
    return json.dumps({"requirements": [
        {"id": r, "verdict": verdict, "evidence": [{"file": file, "quote": quote}],
         "reason": f"{verdict} as the paper says"} for r in REQ_MAP[file]]})


def logic(deps: dict[str, list[str]] | None = None,
          mapping: dict[str, list[str]] | None = None) -> str:
    deps = deps or DEPS
    mapping = REQ_MAP if mapping is None else mapping
    return json.dumps({
        "required_packages": ["numpy>=1.24"],
        "logic_analysis": [{"file": f, "notes": f"Notes for {f}.", "depends_on": d,
                            "requirements": mapping.get(f, [])}
                           for f, d in deps.items()],
        "task_list": list(reversed(list(deps))),  # deliberately wrong: the program sorts
        "shared_knowledge": "Seeds come from utils.",
        "anything_unclear": "",
    })


CONFIG = "Here is the config:\n```yaml\ntraining:\n  learning_rate: 0.05  # Sec. 1\n" \
         "  momentum: 0.9  # Sec. 1\n  steps: 200\n```\nDone."


def code_answer(file: str) -> str:
    return f"Here it is.\n\n## Code: {file}\n```python\n{CODE[file]}```\n"


def script(**overrides: Any) -> dict[str, Any]:
    s: dict[str, Any] = {
        "plan": "## Plan\nImplement momentum SGD (Sec. 1) and averaging.",
        "architecture": architecture(),
        "logic": logic(),
        "config": CONFIG,
        "requirements": requirements_answer(),
    }
    for f in FILES:
        s[f"analysis:{f}"] = f"# Analysis of {f}\nImplements part of Sec. 1 for {f}."
        s[f"coding:{f}"] = code_answer(f)
    for f in REQ_MAP:
        s[f"audit:{f}"] = audit_answer(f)
    s.update(overrides)
    return s


def write_fixture(tmp: Path, **overrides: Any) -> tuple[Path, Path]:
    paper = tmp / "paper.md"
    paper.write_text(TINY_PAPER, encoding="utf-8")
    sc = tmp / "script.json"
    sc.write_text(json.dumps(script(**overrides)), encoding="utf-8")
    return paper, sc


_STEP = {"Step 1 of the plan": "plan", "Step 2 of the plan": "architecture",
         "Step 3 of the plan": "logic", "Step 4 of the plan": "config"}


def answer_for_messages(messages: list[dict[str, Any]], **overrides: Any) -> str:
    """The scripted answer for an OpenAI-style request (for loopback server tests)."""
    last = messages[-1]["content"]
    if isinstance(last, list):
        last = " ".join(part.get("text", "") for part in last)
    s = script(**overrides)
    for marker, step in _STEP.items():
        if marker in last:
            return s[step]
    if "List the requirements of this paper" in last:
        return s["requirements"]
    m = re.search(r"^Audit (\S+) against the paper", last)
    if m:
        return s[f"audit:{m.group(1)}"]
    m = re.search(r"^An audit of (\S+) against the paper", last)
    if m:
        return s[f"repair:{m.group(1)}"]
    m = re.search(r"detailed logic analysis for (\S+), the file", last)
    if m:
        return s[f"analysis:{m.group(1)}"]
    m = re.search(r"Now write (\S+)\. Follow the paper", last)
    if m:
        return s[f"coding:{m.group(1)}"]
    return "I cannot tell which step this is."


CONTRACT_MARKERS = ("List the requirements of this paper",
                    "against the paper. The requirements this file was planned",
                    "An audit of ", "a file of a repository that implements a paper, against",
                    "Your audit of ")


def is_contract_call(request_text: str) -> bool:
    """Whether a logged or sent request is the paper contract's (requirements, audit, repair):
    for tests that count the published method's calls."""
    return any(m in request_text for m in CONTRACT_MARKERS)


def respond(body: dict[str, Any]) -> str:
    """A loopback-server responder: answers each pipeline step of the small paper."""
    return answer_for_messages(body.get("messages") or [])
