"""Prompt tokens and dollars of the published layout versus papercoder's defaults.

Replays the recorded Transformer run (../shared/recordings/transformer-claude-3-7-sonnet)
through planning, analysis and coding twice:

  (a) as published: every earlier file in full, one plain user turn per call, no breakpoints;
  (b) papercoder's defaults: scoped context, a stable prefix, cache breakpoints.

Provider caches are simulated from the requests the backends actually build (the
structured-output form each backend picks for each call, laid out as the provider caches it):
  - OpenAI caches automatically: the longest prefix shared with an earlier request, from 1,024
    tokens, in steps of 128 tokens, is billed at the cached rate; a ``json_schema`` schema
    comes first in that prefix (OpenAI's prompt-caching guide).
  - Anthropic caches only at explicit breakpoints, over tools, then system, then messages (a
    JSON-output schema is part of the prefix too): a breakpoint prefix written before is read
    at 0.1x; a new one is written at 1.25x; below 1,024 tokens nothing is cached.

Variant b runs as papercoder does against a provider with a prompt cache (the warm-up call
before the analyses included). Its coding prompts put the earlier code in a fixed,
append-only order (pipeline/coding.py), so each extends the previous one's cached prefix.
The floor line is what b's messages would cost on OpenAI if every message any earlier request
held were read from the cache: no layout of the same content does better.

Variant b is shown twice: "b, schema first" lays structured calls out as papercoder did before
issue 20 (OpenAI json_schema on every structured call, Anthropic a forced tool ahead of the
system prompt); "b (papercoder)" as the backends build them now. Per call kind it prints the
share of calls after the first that read the paper prefix from the provider cache.

Usage: python bench/context_cost.py [RECORDING_DIR]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from papercoder.models.anthropic_api import AnthropicModel, answer_tool, to_anthropic
from papercoder.models.openai_api import OpenAIModel, to_openai
from papercoder.models.scripted import ScriptedModel
from papercoder.models.settings import price_for
from papercoder.pipeline import RunOptions, run_pipeline
from papercoder.pipeline.runner import plain_layout
from papercoder.store import Store
from papercoder.tokens import estimate_tokens

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REC = ROOT.parent / "shared" / "recordings" / "transformer-claude-3-7-sonnet"
PAPER = ROOT.parent / "shared" / "papers" / "transformer" / "paper.tex"
OPENAI, ANTHROPIC = "openai/gpt-4.1", "anthropic/claude-sonnet-4-6"
STAGE_OF = {"plan": "planning", "architecture": "planning", "logic": "planning",
            "config": "planning", "analysis": "analysis", "coding": "coding"}
MIN_CACHE = 1024


def serialize(messages: list[dict[str, Any]]) -> tuple[str, list[int]]:
    """The request as one string, and the string offset after each breakpoint message."""
    text, marks = "", []
    for m in messages:
        text += f"<|{m['role']}|>\n{m['content']}\n"
        if m.get("cache"):
            marks.append(len(text))
    return text, marks


def openai_request(h: dict[str, Any], model: OpenAIModel, before: bool) -> tuple[str, int]:
    """(the request as OpenAI's cache sees it, the offset where the paper prefix ends)."""
    msgs = [to_openai(m) for m in h["messages"]]
    head = ""
    schema = h.get("schema_json")
    if schema is not None:
        form = "json_schema" if before else model.forms(schema, h["messages"])[0]
        msgs, params = model._form(form, msgs, {}, schema)
        fmt = params.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            head = json.dumps(fmt, sort_keys=True) + "\n"
    text = head
    paper_end = 0
    for m, orig in zip(msgs, h["messages"], strict=False):
        text += f"<|{m['role']}|>\n{m['content']}\n"
        if orig.get("cache") and not paper_end:
            paper_end = len(text)
    for m in msgs[len(h["messages"]):]:
        text += f"<|{m['role']}|>\n{m['content']}\n"
    return text, paper_end


def anthropic_request(h: dict[str, Any], model: AnthropicModel,
                      before: bool) -> tuple[str, list[int], int]:
    """(the request as Anthropic's cache sees it: format, tools, system, messages; the offset
    after each breakpoint; the offset where the paper prefix ends)."""
    system, turns = to_anthropic(h["messages"])
    params: dict[str, Any] = {"messages": turns, "system": system}
    schema = h.get("schema_json")
    if schema is not None:
        if before:
            params["tools"] = [answer_tool(schema)[0]]
        else:
            params, _ = model.request(model.forms(schema, h["messages"])[0], params, schema)
    blocks: list[dict[str, Any]] = []
    fmt = (params.get("output_config") or {}).get("format")
    if fmt:
        blocks.append({"text": json.dumps(fmt, sort_keys=True)})
    blocks += [{"text": json.dumps(t, sort_keys=True)} for t in params.get("tools") or []]
    blocks += params["system"]
    for t in params["messages"]:
        blocks += [dict(b, text=f"<|{t['role']}|>" + str(b.get("text", b.get("source", ""))))
                   for b in t["content"]]
    text, marks = "", []
    for b in blocks:
        text += str(b.get("text", "")) + "\n"
        if b.get("cache_control"):
            marks.append(len(text))
    return text, marks, (marks[0] if marks else 0)


def common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    lo, hi = 0, n
    while lo < hi:  # binary search on prefix equality
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def simulate(history: list[dict[str, Any]], layout: str, before: bool = False) -> dict[str, Any]:
    os.environ.setdefault("OPENAI_API_KEY", "bench-offline")
    os.environ.setdefault("ANTHROPIC_API_KEY", "bench-offline")
    oa_model, an_model = OpenAIModel(OPENAI.split("/", 1)[1]), \
        AnthropicModel(ANTHROPIC.split("/", 1)[1])
    seen: list[str] = []
    written: set[str] = set()
    sent: set[str] = set()
    rows = []
    for h in history:
        if layout != "stable":  # as published: plain text prompts, no structured output
            h = {**h, "messages": plain_layout(h["messages"]), "schema_json": None}
        # The floor: a message any earlier request already held could at best be read from
        # the cache; text never sent before is paid in full whatever the layout.
        novel = sum(estimate_tokens(m["content"]) for m in h["messages"]
                    if m["content"] not in sent)
        sent.update(m["content"] for m in h["messages"])
        text, paper_end = openai_request(h, oa_model, before)
        total = estimate_tokens(text)
        # OpenAI: automatic prefix cache
        lcp = max((common_prefix(text, s) for s in seen), default=0)
        lcp_tok = estimate_tokens(text[:lcp])
        oa_cached = (lcp_tok // 128) * 128 if lcp_tok >= MIN_CACHE else 0
        oa_paper = bool(paper_end) and lcp >= paper_end and oa_cached > 0
        seen.append(text)
        # Anthropic: explicit breakpoints only
        atext, marks, a_paper_end = anthropic_request(h, an_model, before)
        read = write = 0
        hit = 0
        for mark in reversed(marks):
            if atext[:mark] in written:
                hit = mark
                break
        read = estimate_tokens(atext[:hit]) if hit else 0
        if marks and marks[-1] > hit:
            last = estimate_tokens(atext[:marks[-1]])
            if last >= MIN_CACHE:
                write = last - read
                for mark in marks:
                    written.add(atext[:mark])
        if read < MIN_CACHE:
            read = 0
        an_paper = bool(a_paper_end) and hit >= a_paper_end and read > 0
        rows.append({"stage": STAGE_OF.get(h["meta"]["stage"], h["meta"]["stage"]),
                     "kind": ("warm-up" if h["meta"].get("file") == "(prompt cache)"
                              else h["meta"]["stage"]),
                     "prompt": total, "oa_cached": min(oa_cached, total), "an_read": read,
                     "an_write": write, "oa_paper": oa_paper, "an_paper": an_paper,
                     "has_prefix": bool(paper_end), "novel": min(novel, total)})
    return {"rows": rows}


def run_variant(rec: Path, context: str, layout: str) -> tuple[list[dict[str, Any]], int]:
    model = ScriptedModel.from_recording(rec)
    if layout == "stable":
        # Stand in for a provider with a prompt cache, so the run sends what it sends to one
        # (the cache warm-up call before the analyses included); the warm-up answers "OK".
        model.provider = "openai"
        model._keyed["analysis:(prompt cache)"] = ["OK"]
    with tempfile.TemporaryDirectory() as tmp:
        opts = RunOptions(paper=str(PAPER), out=Path(tmp) / "out", context=context,
                          layout=layout, quiet=True, concurrency=1)
        m = run_pipeline(opts, model=model, store=Store(Path(tmp) / "s.db"))
        if m.status != "done":
            raise SystemExit(f"replay failed: {m.error}")
    out_tokens = m.totals.completion_tokens
    return model.history, out_tokens


def dollars(sim: dict[str, Any], out_tokens: int) -> dict[str, float]:
    oa, an = price_for(OPENAI), price_for(ANTHROPIC)
    assert oa and an and oa.cached_input is not None and an.cached_input is not None
    assert an.cache_write is not None
    rows = sim["rows"]
    p = sum(r["prompt"] for r in rows)
    oa_c = sum(r["oa_cached"] for r in rows)
    an_r, an_w = sum(r["an_read"] for r in rows), sum(r["an_write"] for r in rows)
    oa_in = ((p - oa_c) * oa.input + oa_c * oa.cached_input) / 1e6
    an_in = ((p - an_r - an_w) * an.input + an_r * an.cached_input + an_w * an.cache_write) / 1e6
    novel = sum(r["novel"] for r in rows)
    oa_floor = ((p - novel) * oa.cached_input + novel * oa.input) / 1e6
    return {"oa_in": oa_in, "oa_floor": oa_floor, "oa_total": oa_in + out_tokens * oa.output / 1e6,
            "an_in": an_in, "an_total": an_in + out_tokens * an.output / 1e6,
            "prompt": p, "oa_cached": oa_c, "an_read": an_r, "an_write": an_w}


def main() -> int:
    rec = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_REC
    if not rec.is_dir() or not PAPER.is_file():
        print(f"skipped: {rec} or {PAPER} is absent")
        return 0
    variants = {"a (published)": ("full", "plain", False),
                "b, schema first": ("scoped", "stable", True),
                "b (papercoder)": ("scoped", "stable", False)}
    results = {}
    shares: dict[str, dict[str, tuple[int, int, int]]] = {}
    runs: dict[tuple[str, str], tuple[list[dict[str, Any]], int]] = {}
    for name, (context, layout, before) in variants.items():
        if (context, layout) not in runs:
            runs[(context, layout)] = run_variant(rec, context, layout)
        history, out_tokens = runs[(context, layout)]
        sim = simulate(history, layout, before)
        per_stage: dict[str, int] = {}
        for r in sim["rows"]:
            per_stage[r["stage"]] = per_stage.get(r["stage"], 0) + r["prompt"]
        results[name] = (per_stage, dollars(sim, out_tokens), out_tokens)
        kinds: dict[str, tuple[int, int, int]] = {}
        for i, r in enumerate(sim["rows"]):
            if i == 0 or not r["has_prefix"]:
                continue
            n, o, a = kinds.get(r["kind"], (0, 0, 0))
            kinds[r["kind"]] = (n + 1, o + r["oa_paper"], a + r["an_paper"])
        shares[name] = kinds

    print(f"Recording: {rec.name}; prices: {OPENAI} and {ANTHROPIC} (token counts estimated "
          "offline)\n")
    head = f"{'':<34}" + "".join(f"{n:>18}" for n in results)
    print(head)
    for stage in ("planning", "analysis", "coding"):
        print(f"{'prompt tokens, ' + stage:<34}" + "".join(
            f"{r[0].get(stage, 0):>18,}" for r in results.values()))
    lines = [("prompt tokens, total", "prompt", "{:,}"),
             ("OpenAI: cached prompt tokens", "oa_cached", "{:,}"),
             ("Anthropic: cache-read tokens", "an_read", "{:,}"),
             ("Anthropic: cache-write tokens", "an_write", "{:,}"),
             ("OpenAI $ input", "oa_in", "${:.4f}"), ("OpenAI $ input+output", "oa_total",
                                                     "${:.4f}"),
             ("Anthropic $ input", "an_in", "${:.4f}"), ("Anthropic $ input+output",
                                                        "an_total", "${:.4f}")]
    for label, key, fmt in lines:
        print(f"{label:<34}" + "".join(f"{fmt.format(r[1][key]):>18}"
                                        for r in results.values()))
    print(f"{'output tokens (same answers)':<34}" + "".join(
        f"{r[2]:>18,}" for r in results.values()))
    print("\nCalls after the first that read the paper prefix from the provider cache "
          "(OpenAI / Anthropic):")
    kinds = sorted({k for v in shares.values() for k in v})
    print(f"{'call kind':<34}" + "".join(f"{n:>18}" for n in results if n != "a (published)"))
    for k in kinds:
        cells = []
        for name in results:
            if name == "a (published)":
                continue
            n, o, a_ = shares[name].get(k, (0, 0, 0))
            cells.append(f"{o}/{n} / {a_}/{n}" if n else "-")
        print(f"{k:<34}" + "".join(f"{c:>18}" for c in cells))
    a, before_b, b = (r[1] for r in results.values())
    print(f"\nOpenAI $ input at best for b's messages (every message sent before read from the "
          f"cache, whatever the layout): ${b['oa_floor']:.4f}, ratio "
          f"{b['oa_floor'] / a['oa_in']:.3f} against the published layout")
    print()
    for label, key in (("prompt tokens", "prompt"), ("OpenAI $ input", "oa_in"),
                       ("OpenAI $ input+output", "oa_total"),
                       ("Anthropic $ input", "an_in"), ("Anthropic $ input+output",
                                                        "an_total")):
        print(f"ratio b/a, {label:<26} schema first {before_b[key] / a[key]:.3f}   "
              f"now {b[key] / a[key]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
