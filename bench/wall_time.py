"""Wall time of one run against the critical-path bound, with realistic model latency.

A loopback OpenAI-compatible server (a separate process, tests/fakes/replay.py) replays the
recorded Claude 3.7 Sonnet run on the Transformer paper (../shared/recordings/...). Each
answer takes a time to first token plus its length (the fakes' token count) over a generation
rate. The run goes through the real OpenAI SDK, the Caller, the store and the stages.

Printed:
  (a) the published order: every call one after another (full context, one plain turn);
  (b) papercoder's default (scoped context, stable prefix, --concurrency 4);
  the critical-path bound: the planning steps, then the longest analysis, then the longest
  chain of dependent files (each file's latency from its recorded answer);
  the ratios b/a and b/bound, and the pipeline's own CPU time per call.

Time is compressed by --scale (default 10): a model with a 1 s time to first token and 60
tokens/s is simulated as 0.1 s and 600 tokens/s, so the run takes a tenth of the time. The
pipeline's own CPU time is not compressed, so the compressed ratios are slightly pessimistic.

Usage: python bench/wall_time.py [--scale 10] [--ttft 1.0] [--rate 60] [RECORDING_DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from papercoder.models import get_model  # noqa: E402
from papercoder.paper import load_paper  # noqa: E402
from papercoder.pipeline import RunOptions, run_pipeline  # noqa: E402
from papercoder.store import Store  # noqa: E402
from tests.fakes.replay import latency, load_recording, start_process  # noqa: E402

SHARED = Path(os.environ.get("PAPERCODER_SHARED") or ROOT.parent / "shared")
DEFAULT_REC = SHARED / "recordings" / "transformer-claude-3-7-sonnet"
PAPER = SHARED / "papers" / "transformer" / "paper.tex"


def run_variant(url: str, paper: Any, tmp: Path, name: str, **opts: Any) -> dict[str, Any]:
    model = get_model("openai/claude-3-7-sonnet", base_url=url)
    ro = RunOptions(paper=str(PAPER), out=tmp / name, quiet=True, **opts)
    cpu0, t0 = time.process_time(), time.perf_counter()
    m = run_pipeline(ro, model=model, store=Store(tmp / f"{name}.db"), paper=paper)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if m.status != "done":
        raise SystemExit(f"replay {name} failed: {m.status} {m.error}")
    calls = m.totals.calls
    return {"wall": wall, "cpu": cpu, "calls": calls, "manifest": m,
            "stages": {k: v.get("seconds", 0.0) for k, v in m.stages.items()}}


def longest_chain(order: list[str], deps: dict[str, list[str]],
                  cost: dict[str, float]) -> tuple[float, list[str]]:
    best: dict[str, tuple[float, list[str]]] = {}
    for f in order:  # topological
        prev = max((best[d] for d in deps.get(f, []) if d in best), default=(0.0, []),
                   key=lambda x: x[0])
        best[f] = (prev[0] + cost[f], prev[1] + [f])
    return max(best.values(), key=lambda x: x[0])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("recording", nargs="?", type=Path, default=DEFAULT_REC)
    ap.add_argument("--scale", type=float, default=10.0)
    ap.add_argument("--ttft", type=float, default=1.0, help="seconds, real time")
    ap.add_argument("--rate", type=float, default=60.0, help="tokens/s, real time")
    args = ap.parse_args()
    if not args.recording.is_dir() or not PAPER.is_file():
        print(f"skipped: {args.recording} or {PAPER} is absent")
        return 0
    ttft, rate = args.ttft / args.scale, args.rate * args.scale
    script = load_recording(args.recording)
    lat = {k: latency(v, ttft, rate) for k, v in script.items()}
    t0 = time.perf_counter()
    paper = load_paper(PAPER)
    read_s = time.perf_counter() - t0
    os.environ.pop("OPENAI_API_KEY", None)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        proc, url = start_process(args.recording, tmp, "--ttft", str(ttft), "--rate", str(rate))
        try:
            a = run_variant(url, paper, tmp, "a", context="full", layout="plain",
                            concurrency=1)
            b = run_variant(url, paper, tmp, "b")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    m = b["manifest"]
    deps = {f: list(s.depends_on or []) for f, s in m.files.items()}
    code_lat = {f: lat[f"coding:{f}"] for f in m.order}
    chain_s, chain = longest_chain(m.order, deps, code_lat)
    planning = sum(lat[k] for k in ("plan", "architecture", "logic", "config"))
    analysis = max(lat[f"analysis:{f}"] for f in m.order)
    bound = planning + analysis + chain_s
    sequential = sum(lat.values())

    print(f"Recording: {args.recording.name}; latency {args.ttft:g} s to first token + "
          f"{args.rate:g} tokens/s, time compressed {args.scale:g}x (all seconds below are "
          f"compressed; multiply by {args.scale:g} for real time). Paper read in "
          f"{read_s:.2f} s, not counted.\n")
    rows = [
        ("(a) published order, measured", a["wall"]),
        ("    sum of all answer latencies", sequential),
        ("(b) papercoder default, measured", b["wall"]),
        ("critical-path bound", bound),
        ("    planning (4 steps)", planning),
        ("    longest analysis", analysis),
        (f"    longest chain ({' > '.join(chain)})", chain_s),
    ]
    for label, v in rows:
        print(f"{label:<70} {v:>8.2f} s")
    print()
    for name, r in (("a", a), ("b", b)):
        st = ", ".join(f"{k} {v:.2f} s" for k, v in r["stages"].items())
        print(f"({name}) stages: {st}")
    print()
    print(f"{'ratio b / a (target <= 0.60)':<70} {b['wall'] / a['wall']:>8.3f}")
    print(f"{'ratio b / bound (target <= 1.10)':<70} {b['wall'] / bound:>8.3f}")
    for name, r in (("a", a), ("b", b)):
        label = f"({name}) pipeline CPU time per call ({r['calls']} calls)"
        print(f"{label:<70} {1000 * r['cpu'] / r['calls']:>6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
