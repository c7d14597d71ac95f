"""Prompt tokens and dollars of the published layout versus papercoder's defaults.

Replays the recorded Transformer run (../shared/recordings/transformer-claude-3-7-sonnet)
through planning, analysis and coding twice:

  (a) as published: every earlier file in full, one plain user turn per call, no breakpoints;
  (b) papercoder's defaults: scoped context, a stable prefix, cache breakpoints.

Provider caches are simulated from the requests actually built:
  - OpenAI caches automatically: the longest prefix shared with an earlier request, from 1,024
    tokens, in steps of 128 tokens, is billed at the cached rate.
  - Anthropic caches only at explicit breakpoints: a breakpoint prefix written before is read
    at 0.1x; a new one is written at 1.25x; below 1,024 tokens nothing is cached.

Usage: python bench/context_cost.py [RECORDING_DIR]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

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


def simulate(history: list[dict[str, Any]], layout: str) -> dict[str, Any]:
    seen: list[str] = []
    written: set[str] = set()
    rows = []
    for h in history:
        msgs = h["messages"] if layout == "stable" else plain_layout(h["messages"])
        text, marks = serialize(msgs)
        total = estimate_tokens(text)
        # OpenAI: automatic prefix cache
        lcp = max((common_prefix(text, s) for s in seen), default=0)
        lcp_tok = estimate_tokens(text[:lcp])
        oa_cached = (lcp_tok // 128) * 128 if lcp_tok >= MIN_CACHE else 0
        seen.append(text)
        # Anthropic: explicit breakpoints only
        read = write = 0
        hit = 0
        for mark in reversed(marks):
            if text[:mark] in written:
                hit = mark
                break
        read = estimate_tokens(text[:hit]) if hit else 0
        if marks and marks[-1] > hit:
            last = estimate_tokens(text[:marks[-1]])
            if last >= MIN_CACHE:
                write = last - read
                for mark in marks:
                    written.add(text[:mark])
        if read < MIN_CACHE:
            read = 0
        rows.append({"stage": STAGE_OF.get(h["meta"]["stage"], h["meta"]["stage"]),
                     "prompt": total, "oa_cached": min(oa_cached, total), "an_read": read,
                     "an_write": write})
    return {"rows": rows}


def run_variant(rec: Path, context: str, layout: str) -> tuple[list[dict[str, Any]], int]:
    model = ScriptedModel.from_recording(rec)
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
    return {"oa_in": oa_in, "oa_total": oa_in + out_tokens * oa.output / 1e6,
            "an_in": an_in, "an_total": an_in + out_tokens * an.output / 1e6,
            "prompt": p, "oa_cached": oa_c, "an_read": an_r, "an_write": an_w}


def main() -> int:
    rec = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_REC
    if not rec.is_dir() or not PAPER.is_file():
        print(f"skipped: {rec} or {PAPER} is absent")
        return 0
    variants = {"a (published)": ("full", "plain"), "b (papercoder)": ("scoped", "stable")}
    results = {}
    for name, (context, layout) in variants.items():
        history, out_tokens = run_variant(rec, context, layout)
        sim = simulate(history, layout)
        per_stage: dict[str, int] = {}
        for r in sim["rows"]:
            per_stage[r["stage"]] = per_stage.get(r["stage"], 0) + r["prompt"]
        results[name] = (per_stage, dollars(sim, out_tokens), out_tokens)

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
    a, b = (r[1] for r in results.values())
    print()
    for label, key in (("prompt tokens", "prompt"), ("OpenAI $ input", "oa_in"),
                       ("OpenAI $ input+output", "oa_total"),
                       ("Anthropic $ input", "an_in"), ("Anthropic $ input+output",
                                                        "an_total")):
        print(f"ratio b/a, {label:<26} {b[key] / a[key]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
