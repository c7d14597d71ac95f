"""Checking config.yaml against the paper: values the paper never states must be marked.

A numeric setting passes when the paper states the same number, in any of the forms papers
use (``10^{-9}``, ``1e-9``, ``1.0 \\times 10^4``, ``0.1%``, ``4k``, ``2^{10}``, ``1,000``), matched
as whole numbers (5000 does not match inside 25000), or when its line carries the explicit
marker the config prompt asks for: a comment containing ``assumed`` or ``not in the paper``
(e.g. ``# assumed: not in the paper``). Any other comment is not a marker.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

from papercoder import yamlsafe

MARKER = re.compile(r"#.*\b(assumed|not\s+(?:given|stated|specified|mentioned)?\s*in\s+(?:the\s+)?"
                    r"paper)\b", re.I)
"""The explicit "assumed" marker on a config line."""

def _plan_keys() -> set[str]:
    """Every field name (and alias) of the planning artifacts: keys a config never has."""
    from papercoder.pipeline.schemas import Architecture, FileLogic, LogicDesign

    keys = {"full_api_spec", "depends_on"}
    for model in (Architecture, LogicDesign, FileLogic):
        for name, f in model.model_fields.items():
            keys.add(name)
            for alias in getattr(f.validation_alias, "choices", []) or []:
                keys.add(str(alias).strip().lower().replace(" ", "_"))
    return keys


PLAN_KEYS = _plan_keys()

_NUM = r"[-+−]?\d+(?:\.\d+)?"
# (pattern, function of the match -> values); tried on the LaTeX-ish text in this order
_SCI = re.compile(rf"({_NUM})\s*(?:\\times|\\cdot|×|·|\*|x)\s*\{{?\s*10\s*\}}?\s*\^\s*\{{?\s*"
                  rf"({_NUM})\s*\}}?")
_POW = re.compile(rf"(?<![\d.])(\d+)\s*\^\s*\{{?\s*({_NUM})\s*\}}?")
_E = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?[eE][-+]?\d+)(?![\w.])")
_GROUPED = re.compile(r"(?<![\d.,])(\d{1,3}(?:(?:,|\{,\}|\\,|\u2009)\d{3})+)(?![\d])"
                      r"(?:\.(\d+))?")
_SUFFIX = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s?([kKMB])\b")
_PERCENT = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)\s*(?:\\?%|percent\b)")
_PLAIN = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?)(?![\d]|\.\d)")
_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_WORD = re.compile(r"\b(" + "|".join(_WORDS) + r")\b", re.I)


def _f(s: str) -> float:
    return float(s.replace("−", "-"))


def paper_numbers(text: str) -> list[float]:
    """Every number the text states, in whatever form (duplicates kept; order irrelevant)."""
    out: list[float] = []
    rest = text
    for pat, conv in (
        (_SCI, lambda m: [_f(m.group(1)) * 10 ** _f(m.group(2))]),
        (_POW, lambda m: [_f(m.group(1)) ** _f(m.group(2))]
         if abs(_f(m.group(2))) < 400 else []),
        (_E, lambda m: [_f(m.group(1))]),
        (_GROUPED, lambda m: [float(re.sub(r"\D", "", m.group(1))
                                    + ("." + m.group(2) if m.group(2) else ""))]),
        (_SUFFIX, lambda m: [_f(m.group(1)) * {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9}[
            m.group(2)]] + ([_f(m.group(1)) * 1024] if m.group(2) in "kK" else [])),
        (_PERCENT, lambda m: [_f(m.group(1)) / 100, _f(m.group(1))]),
    ):
        def take(m: re.Match[str], conv: Any = conv) -> str:
            try:
                out.extend(conv(m))
            except (OverflowError, ValueError):
                pass
            return " "  # consumed: its digits are not read again as plain numbers

        rest = pat.sub(take, rest)
    out.extend(float(m.group(1)) for m in _PLAIN.finditer(rest))
    out.extend(float(_WORDS[m.group(1).lower()]) for m in _WORD.finditer(rest))
    return out


def _same(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)


class NumberIndex:
    """The paper's numbers, for whole-number lookups."""

    def __init__(self, text: str) -> None:
        self.values = sorted(set(paper_numbers(text)))

    def __contains__(self, x: float) -> bool:
        import bisect

        i = bisect.bisect_left(self.values, x - abs(x) * 1e-9 - 1e-15)
        return any(_same(x, v) for v in self.values[i:i + 3])


_LINE = re.compile(r"^\s*(?:-\s+)?([\w.\-\"' ]+?)\s*:\s*([^#\n]*?)\s*(#.*)?$")


def config_values(config_text: str) -> list[tuple[str, list[float], bool]]:
    """(key, numbers, marked as assumed) for each config line holding numbers."""
    rows = []
    path: list[tuple[int, str]] = []
    for line in config_text.splitlines():
        m = _LINE.match(line)
        if not m or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        while path and path[-1][0] >= indent:
            path.pop()
        key = m.group(1).strip().strip("\"'")
        raw = m.group(2)
        if not raw:
            path.append((indent, key))
            continue
        try:
            value = yamlsafe.load(raw)
        except (yaml.YAMLError, RecursionError):
            continue
        nums = _numbers_in(value)
        if nums:
            full = ".".join([k for _, k in path] + [key])
            rows.append((full, nums, bool(MARKER.search(m.group(3) or ""))))
    return rows


def _numbers_in(value: Any) -> list[float]:
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, list):
        return [x for v in value for x in _numbers_in(v)]
    if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value.strip()):
        return [float(value)]  # YAML 1.1 reads 1e-8 (no dot) as a string; it is a number
    return []


def unmarked_values(config_text: str, paper_text: str) -> list[str]:
    """``key=value`` for numeric settings the paper never states and no marker flags."""
    index = NumberIndex(paper_text)
    out = []
    for key, nums, marked in config_values(config_text):
        if marked:
            continue
        missing = [n for n in nums if n not in index and -n not in index]
        if missing:
            out.append(f"{key}=" + ",".join(f"{n:g}" for n in missing))
    return out


def config_problem(data: Any) -> str | None:
    """Why a parsed config is not a settings file (a weak model's plan fragments), or None."""
    if not isinstance(data, dict) or not data:
        return "it is not a mapping of settings"
    keys = {str(k).strip().lower().replace(" ", "_") for k in data}
    plan = keys & PLAN_KEYS
    if plan and 2 * len(plan) >= len(keys):  # mostly plan fragments, perhaps with a setting
        return f"it holds parts of the plan ({', '.join(sorted(plan))}), not settings"

    def leaves(v: Any) -> int:
        if isinstance(v, dict):
            return sum(leaves(x) for x in v.values())
        if isinstance(v, list):
            return sum(leaves(x) for x in v)
        return 0 if v is None else 1

    if leaves(data) == 0:
        return "it holds no setting values"
    return None
